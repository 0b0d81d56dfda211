"""De-duplication through the API: runs, candidates with evidence, auto-merge, review, quality."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from app.dedup.matcher import CandidatePair, PersonRecord, evaluate, find_candidates
from bench.dedup_synthetic import generate_synthetic_people
from tests.conftest import ROOT, WorkspaceKeys

SYNTHETIC_N = 1_000
SYNTHETIC_DUP_RATE = 0.1
SYNTHETIC_SEED = 20_240_611


# --- helpers -------------------------------------------------------------------------------


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, *batch: dict) -> None:
    resp = await client.post("/v1/batch", json={"batch": list(batch)}, auth=ws.write_auth)
    assert resp.status_code == 200, resp.text
    assert not resp.json()["rejected"], resp.text


def person(anonymous_id: str | None = None, *, user_id: str | None = None, **traits: Any) -> dict:
    """An identify call; duplicates use anonymous ids unless a test wants two user_ids."""
    msg: dict[str, Any] = {"type": "identify", "traits": traits}
    if anonymous_id:
        msg["anonymousId"] = anonymous_id
    if user_id:
        msg["userId"] = user_id
    return msg


async def profile_id(client: httpx.AsyncClient, ws: WorkspaceKeys, type_: str, value: str) -> str:
    resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": value}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


async def start_run(client: httpx.AsyncClient, ws: WorkspaceKeys, **body: Any) -> dict:
    resp = await client.post("/v1/dedup/runs", json=body, headers=ws.admin_headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def all_candidates(client: httpx.AsyncClient, ws: WorkspaceKeys, limit: int = 1000, **params: Any) -> list[dict]:
    out, cursor = [], None
    while True:
        page_params = {**params, "limit": limit} | ({"cursor": cursor} if cursor else {})
        resp = await client.get("/v1/dedup/candidates", params=page_params, headers=ws.admin_headers)
        assert resp.status_code == 200, resp.text
        out += resp.json()["data"]
        if not (cursor := resp.json()["next_cursor"]):
            return out


def pair_of(candidate: dict) -> frozenset[str]:
    return frozenset((candidate["profile_a_id"], candidate["profile_b_id"]))


JON = {"first_name": "Jonathan", "last_name": "Smith", "email": "jon.smith@gmail.com", "postcode": "SW1A 1AA",
       "address": "12 High Street", "city": "London", "birthdate": "1980-04-12"}
# The same man from another source: a typo in the first name, another e-mail, the address
# and postcode written differently.
JON_TYPO = {"first_name": "Jonathon", "last_name": "SMITH", "email": "jonathon.s@yahoo.co.uk", "postcode": "sw1a1aa",
            "address": "12, High St.", "city": "London", "birthdate": "1980-04-12"}
# And once more, in Segment's camelCase with an address object and a full name.
JON_SEGMENT = {"name": "Jonathan Smith", "address": {"street": "12 High St", "city": "London", "postalCode": "SW1A 1AA"},
               "birthday": "1980-04-12T00:00:00Z"}
MARIA = {"first_name": "María", "last_name": "García", "postcode": "EH1 1YZ", "address": "5 Park Avenue",
         "birthdate": "1975-01-30", "email": "maria.garcia@outlook.com"}
MARIA_AGAIN = {"first_name": "Maria", "last_name": "Garcia", "postcode": "EH1 1YZ", "address": "5 Park Ave",
               "birthdate": "1975-01-30"}
# A clearly different person.
NEIL = {"first_name": "Neil", "last_name": "Stone", "postcode": "M1 1AE", "address": "3 Mill Lane", "birthdate": "1962-09-01"}


# --- finding candidates ----------------------------------------------------------------------


async def test_obvious_duplicate_becomes_a_candidate_with_evidence(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("neil", **NEIL))
    # Two records sharing an e-mail: identity resolution already made them one profile.
    await send(client, workspace, person("ann-1", first_name="Ann", last_name="Lee", email="ann@example.com"),
               person("ann-2", first_name="Ann", last_name="Lee", email="ANN@example.com", postcode="E1 6AN"))
    # Two user_ids sharing an e-mail: identity refused the link and recorded a conflict. The
    # pair shares an identifier, so it is identity's business, not a dedup candidate.
    await send(client, workspace, person(user_id="bo-1", first_name="Bo", last_name="Diddley", email="bo@example.com",
                                         postcode="N1 9GU", birthdate="1928-12-30"))
    await send(client, workspace, person(user_id="bo-2", first_name="Bo", last_name="Diddley", email="bo@example.com",
                                         postcode="N1 9GU", birthdate="1928-12-30"))
    web, shop = await profile_id(client, workspace, "anonymous_id", "jon-web"), await profile_id(client, workspace, "anonymous_id", "jon-shop")
    assert await profile_id(client, workspace, "anonymous_id", "ann-1") == await profile_id(client, workspace, "anonymous_id", "ann-2")

    run = await start_run(client, workspace, threshold=None)
    assert run["status"] == "completed" and run["threshold"] is None and run["finished_at"] is not None
    counts = run["counts"]
    assert counts["profiles_scanned"] == 6  # jon x2, neil, bo x2, and ann's two records are one profile
    assert counts["candidates"] == 1 and counts["auto_merged"] == 0 and counts["shared_identifier"] == 1
    assert counts["pairs_compared"] >= 2

    [candidate] = await all_candidates(client, workspace, run_id=run["id"])
    assert pair_of(candidate) == {web, shop}
    assert candidate["profile_a_id"] < candidate["profile_b_id"]
    assert candidate["status"] == "pending" and candidate["run_id"] == run["id"] and candidate["merge_id"] is None
    assert candidate["score"] >= 0.99
    evidence = candidate["evidence"]
    assert evidence["first_name"] == "typo" and evidence["birthdate"] == "exact"
    assert evidence["location"] == "same_address" and evidence["email"] == "different"
    assert evidence["total_bits"] > 0 > evidence["prior_bits"]

    # The merge is only proposed: nothing was merged.
    ledger = (await client.get(f"/v1/profiles/{web}/merges", headers=workspace.admin_headers)).json()
    assert ledger == []

    got = (await client.get(f"/v1/dedup/runs/{run['id']}", headers=workspace.admin_headers)).json()
    assert got == run
    listed = (await client.get("/v1/dedup/runs", headers=workspace.admin_headers)).json()
    assert [r["id"] for r in listed["data"]] == [run["id"]]


async def test_trait_spellings_and_name_split(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Segment's camelCase traits, an address object and `name` map onto the same fields."""
    await send(client, workspace, person("jon-web", **JON), person("jon-segment", **JON_SEGMENT))
    run = await start_run(client, workspace, threshold=None)
    [candidate] = await all_candidates(client, workspace, run_id=run["id"])
    assert candidate["evidence"]["first_name"] == "exact" and candidate["evidence"]["birthdate"] == "exact"
    assert candidate["evidence"]["location"] == "same_address"


# --- automatic merges ------------------------------------------------------------------------


async def test_auto_merge_writes_dedup_ledger_entries_and_split_undoes_one(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, person("jon-web", **JON))
    await send(client, workspace, person("jon-shop", **JON_TYPO))
    await send(client, workspace, person("jon-segment", **JON_SEGMENT))
    await send(client, workspace, person("neil", **NEIL))
    web = await profile_id(client, workspace, "anonymous_id", "jon-web")
    shop = await profile_id(client, workspace, "anonymous_id", "jon-shop")
    segment = await profile_id(client, workspace, "anonymous_id", "jon-segment")

    preview = await start_run(client, workspace, threshold=0.8, dry_run=True)
    assert preview["dry_run"] is True and preview["counts"]["candidates"] == 3
    assert preview["counts"]["auto_merged"] == 3, "a dry run says what it would merge"
    assert (await client.get(f"/v1/profiles/{web}/merges", headers=workspace.admin_headers)).json() == []
    assert {c["status"] for c in await all_candidates(client, workspace)} == {"pending"}

    run = await start_run(client, workspace, threshold=0.8)
    assert run["counts"]["candidates"] == 3 and run["counts"]["auto_merged"] == 3
    candidates = await all_candidates(client, workspace, run_id=run["id"])
    assert {c["status"] for c in candidates} == {"merged"}, "pending pairs of the dry run moved to this run"
    # Three records of one man are one cluster: two merges into the oldest profile, and the
    # third pair was already joined through them.
    assert sum(c["merge_id"] is not None for c in candidates) == 2
    joined = [c for c in candidates if c["merge_id"] is None]
    assert len(joined) == 1 and "joined through other pairs" in joined[0]["reason"]

    ledger = (await client.get(f"/v1/profiles/{web}/merges", headers=workspace.admin_headers)).json()
    assert {e["rule"] for e in ledger} == {"dedup"}
    assert {e["absorbed_id"] for e in ledger} == {shop, segment}
    assert {e["id"] for e in ledger} == {c["merge_id"] for c in candidates if c["merge_id"]}
    merged = (await client.get(f"/v1/profiles/{shop}", headers=workspace.admin_headers)).json()
    assert merged["id"] == web and merged["requested_id"] == shop

    split = await client.post(f"/v1/profiles/{shop}/split", headers=workspace.admin_headers)
    assert split.status_code == 200, split.text
    assert split.json()["restored_id"] == shop and split.json()["survivor_id"] == web
    restored = (await client.get(f"/v1/profiles/{shop}", headers=workspace.admin_headers)).json()
    assert restored["id"] == shop and restored["traits"]["first_name"] == "Jonathon"

    # A split is a decision too: the next run does not merge the pair again.
    again = await start_run(client, workspace, threshold=0.8)
    assert again["counts"]["auto_merged"] == 0 and again["counts"]["candidates"] == 0
    assert again["counts"]["already_decided"] == 1
    assert (await client.get(f"/v1/profiles/{shop}", headers=workspace.admin_headers)).json()["id"] == shop


# --- review ----------------------------------------------------------------------------------


async def test_review_merge_and_reject_and_rejections_are_remembered(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO),
               person("maria-1", **MARIA), person("maria-2", **MARIA_AGAIN), person("neil", **NEIL))
    web, shop = await profile_id(client, workspace, "anonymous_id", "jon-web"), await profile_id(client, workspace, "anonymous_id", "jon-shop")
    maria1, maria2 = await profile_id(client, workspace, "anonymous_id", "maria-1"), await profile_id(client, workspace, "anonymous_id", "maria-2")

    run = await start_run(client, workspace, threshold=None)
    pending = await all_candidates(client, workspace, status="pending")
    assert {pair_of(c) for c in pending} == {frozenset((web, shop)), frozenset((maria1, maria2))}
    assert pending == sorted(pending, key=lambda c: -c["score"])
    jon = next(c for c in pending if pair_of(c) == {web, shop})
    maria = next(c for c in pending if pair_of(c) == {maria1, maria2})

    merged = await client.post(f"/v1/dedup/candidates/{jon['id']}/merge", headers=workspace.admin_headers)
    assert merged.status_code == 200, merged.text
    assert merged.json()["status"] == "merged" and merged.json()["decided_at"] is not None
    ledger = (await client.get(f"/v1/profiles/{web}/merges", headers=workspace.admin_headers)).json()
    assert [(e["rule"], {e["survivor_id"], e["absorbed_id"]}, e["id"]) for e in ledger] == [
        ("dedup", {web, shop}, merged.json()["merge_id"])
    ]

    rejected = await client.post(f"/v1/dedup/candidates/{maria['id']}/reject", headers=workspace.admin_headers)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"

    # Decided pairs cannot be decided again.
    twice = await client.post(f"/v1/dedup/candidates/{jon['id']}/merge", headers=workspace.admin_headers)
    assert twice.status_code == 409 and twice.json()["code"] == "candidate_decided" and "merged" in twice.json()["detail"]
    flip = await client.post(f"/v1/dedup/candidates/{maria['id']}/merge", headers=workspace.admin_headers)
    assert flip.status_code == 409 and "rejected" in flip.json()["detail"]

    second = await start_run(client, workspace, threshold=0.8)
    assert second["counts"]["candidates"] == 0 and second["counts"]["auto_merged"] == 0
    assert second["counts"]["already_decided"] == 1, "the rejected pair was found again and not proposed"
    assert await all_candidates(client, workspace, run_id=second["id"]) == []
    assert [c["id"] for c in await all_candidates(client, workspace, status="rejected")] == [maria["id"]]
    assert (await client.get(f"/v1/profiles/{maria2}", headers=workspace.admin_headers)).json()["id"] == maria2
    assert {r["id"] for r in (await client.get("/v1/dedup/runs", headers=workspace.admin_headers)).json()["data"]} == {run["id"], second["id"]}


async def test_two_user_ids_are_never_merged_and_stay_pending(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, person(user_id="crm-1", **JON), person(user_id="crm-2", **JON_TYPO))
    a, b = await profile_id(client, workspace, "user_id", "crm-1"), await profile_id(client, workspace, "user_id", "crm-2")

    run = await start_run(client, workspace, threshold=0.8)
    assert run["counts"]["candidates"] == 1 and run["counts"]["auto_merged"] == 0 and run["counts"]["merge_conflicts"] == 1
    [candidate] = await all_candidates(client, workspace, run_id=run["id"])
    assert candidate["status"] == "pending" and "user_id" in candidate["reason"]

    refused = await client.post(f"/v1/dedup/candidates/{candidate['id']}/merge", headers=workspace.admin_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "identity_conflict"
    assert candidate["id"] in refused.json()["detail"] and "2 values of user_id" in refused.json()["detail"]
    [still] = await all_candidates(client, workspace, run_id=run["id"])
    assert still["status"] == "pending"
    assert (await client.get(f"/v1/profiles/{a}/merges", headers=workspace.admin_headers)).json() == []
    assert (await client.get(f"/v1/profiles/{b}", headers=workspace.admin_headers)).json()["id"] == b


async def test_review_merge_follows_profiles_merged_since_the_run(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    for message in (person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("jon-segment", **JON_SEGMENT)):
        await send(client, workspace, message)  # one at a time: web is the oldest profile, so it survives
    web = await profile_id(client, workspace, "anonymous_id", "jon-web")
    shop = await profile_id(client, workspace, "anonymous_id", "jon-shop")
    segment = await profile_id(client, workspace, "anonymous_id", "jon-segment")
    await start_run(client, workspace, threshold=None)
    by_pair = {pair_of(c): c for c in await all_candidates(client, workspace)}

    first = await client.post(f"/v1/dedup/candidates/{by_pair[frozenset((web, shop))]['id']}/merge", headers=workspace.admin_headers)
    assert first.status_code == 200, first.text
    # shop is now part of web: merging (shop, segment) merges segment into web.
    second = await client.post(f"/v1/dedup/candidates/{by_pair[frozenset((shop, segment))]['id']}/merge", headers=workspace.admin_headers)
    assert second.status_code == 200, second.text
    assert (await client.get(f"/v1/profiles/{segment}", headers=workspace.admin_headers)).json()["id"] == web
    # (web, segment) is now one profile: nothing left to merge, and no ledger entry for it.
    third = await client.post(f"/v1/dedup/candidates/{by_pair[frozenset((web, segment))]['id']}/merge", headers=workspace.admin_headers)
    assert third.status_code == 200 and third.json()["merge_id"] is None and "already one profile" in third.json()["reason"]
    assert len((await client.get(f"/v1/profiles/{web}/merges", headers=workspace.admin_headers)).json()) == 2


async def test_candidate_pages_follow_the_cursor(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("jon-segment", **JON_SEGMENT),
               person("maria-1", **MARIA), person("maria-2", **MARIA_AGAIN))
    await start_run(client, workspace, threshold=None)
    whole = await all_candidates(client, workspace)
    paged = await all_candidates(client, workspace, limit=1)
    assert len(whole) == 4 and paged == whole
    bad = await client.get("/v1/dedup/candidates", params={"cursor": "garbage"}, headers=workspace.admin_headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"


# --- isolation, auth, validation ---------------------------------------------------------------


async def test_workspaces_are_isolated(client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys) -> None:
    # The same people in both workspaces: a run must only ever pair its own workspace's profiles.
    await send(client, workspace, person("jon-web", **JON), person("neil", **NEIL))
    await send(client, other_workspace, person("jon-shop", **JON_TYPO), person("jon-web", **JON))
    mine = {await profile_id(client, workspace, "anonymous_id", a) for a in ("jon-web", "neil")}

    run = await start_run(client, workspace, threshold=0.8)
    assert run["counts"]["profiles_scanned"] == 2 and run["counts"]["candidates"] == 0
    theirs = await start_run(client, other_workspace, threshold=None)
    [their_candidate] = await all_candidates(client, other_workspace)
    assert not pair_of(their_candidate) & mine

    h = workspace.admin_headers
    assert (await client.get(f"/v1/dedup/runs/{theirs['id']}", headers=h)).status_code == 404
    assert (await client.get("/v1/dedup/candidates", params={"run_id": theirs["id"]}, headers=h)).status_code == 404
    assert (await client.get("/v1/dedup/candidates", headers=h)).json()["data"] == []
    assert [r["id"] for r in (await client.get("/v1/dedup/runs", headers=h)).json()["data"]] == [run["id"]]
    for action in ("merge", "reject"):
        resp = await client.post(f"/v1/dedup/candidates/{their_candidate['id']}/{action}", headers=h)
        assert resp.status_code == 404, resp.text
    assert (await all_candidates(client, other_workspace))[0]["status"] == "pending"


async def test_auth_and_scopes(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO))
    assert (await client.post("/v1/dedup/runs", json={})).status_code == 401
    write_key = await client.post("/v1/dedup/runs", json={}, headers={"Authorization": f"Bearer {workspace.write_key}"})
    assert write_key.status_code == 403
    basic = await client.post("/v1/dedup/runs", json={}, auth=workspace.write_auth)
    assert basic.status_code == 401

    read_key = (await client.post("/v1/keys", json={"name": "r", "scopes": ["read"]}, headers=workspace.admin_headers)).json()["key"]
    read = {"Authorization": f"Bearer {read_key}"}
    denied = await client.post("/v1/dedup/runs", json={}, headers=read)
    assert denied.status_code == 403 and "write" in denied.json()["detail"]
    run = await start_run(client, workspace)  # defaults: review only, nothing merges on its own
    assert run["threshold"] is None and run["min_score"] == 0.5 and run["max_block_size"] == 500
    assert run["counts"]["auto_merged"] == 0 and run["counts"]["candidates"] == 1
    assert (await client.get(f"/v1/dedup/runs/{run['id']}", headers=read)).status_code == 200
    [candidate] = (await client.get("/v1/dedup/candidates", headers=read)).json()["data"]
    for action in ("merge", "reject"):
        assert (await client.post(f"/v1/dedup/candidates/{candidate['id']}/{action}", headers=read)).status_code == 403

    write_scope = (await client.post("/v1/keys", json={"name": "w", "scopes": ["write"]}, headers=workspace.admin_headers)).json()["key"]
    assert (await client.post("/v1/dedup/runs", json={}, headers={"Authorization": f"Bearer {write_scope}"})).status_code == 201


async def test_bad_requests_are_422(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    h = workspace.admin_headers
    for body, pointer in (
        ({"threshold": 1.5}, "/threshold"),
        ({"min_score": 0.01}, "/min_score"),
        ({"max_block_size": 1}, "/max_block_size"),
        ({"dry_run": "maybe"}, "/dry_run"),
        ({"thresold": 0.9}, "/thresold"),
    ):
        resp = await client.post("/v1/dedup/runs", json=body, headers=h)
        assert resp.status_code == 422, (body, resp.text)
        assert pointer in {e["pointer"] for e in resp.json()["errors"]}, resp.text
    below = await client.post("/v1/dedup/runs", json={"threshold": 0.6, "min_score": 0.7}, headers=h)
    assert below.status_code == 422 and "min_score" in below.json()["detail"]
    assert (await client.get("/v1/dedup/candidates", params={"status": "maybe"}, headers=h)).status_code == 422
    assert (await client.get("/v1/dedup/runs/not-a-uuid", headers=h)).status_code == 422
    assert (await client.post("/v1/dedup/candidates/not-a-uuid/merge", headers=h)).status_code == 422
    assert (await client.get("/v1/dedup/runs")).status_code == 401


# --- quality end to end -----------------------------------------------------------------------


def _traits(record: PersonRecord) -> dict[str, Any]:
    traits: dict[str, Any] = {
        "first_name": record.first_name, "last_name": record.last_name, "email": record.email, "phone": record.phone,
        "postcode": record.postcode, "address": record.address,
        "birthdate": record.birthdate.isoformat() if isinstance(record.birthdate, date) else None,
    }
    return {k: v for k, v in traits.items() if v is not None}


async def test_precision_and_recall_through_the_api(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """~1,000 synthetic people with known duplicates (sharing no identifier), loaded as
    profiles through /v1/batch, matched by a run, read back through the review API."""
    records, truth = generate_synthetic_people(SYNTHETIC_N, SYNTHETIC_DUP_RATE, SYNTHETIC_SEED)
    # The generator formats UK phone numbers; normalise them as UK ones, as a UK shop would.
    settings = await client.put("/v1/identity/settings", json={"default_region": "GB"}, headers=workspace.admin_headers)
    assert settings.status_code == 200, settings.text
    messages = [person(user_id=r.id, **_traits(r)) for r in records]
    for start in range(0, len(messages), 250):
        await send(client, workspace, *messages[start:start + 250])

    run = await start_run(client, workspace, threshold=None)
    counts = run["counts"]
    assert counts["profiles_scanned"] == len(records), "every record is its own profile: no shared identifiers"
    assert counts["shared_identifier"] == 0 and counts["auto_merged"] == 0 and counts["skipped_blocks"] == 0

    synthetic_id: dict[str, str] = {}
    cursor = None
    while True:
        page = (await client.get("/v1/profiles", params={"limit": 500} | ({"cursor": cursor} if cursor else {}),
                                 headers=workspace.admin_headers)).json()
        for p in page["data"]:
            synthetic_id[p["id"]] = next(i["value"] for i in p["identifiers"] if i["type"] == "user_id")
        if not (cursor := page["next_cursor"]):
            break
    candidates = await all_candidates(client, workspace, run_id=run["id"], limit=100)
    assert len(candidates) == counts["candidates"]
    found = [CandidatePair(*sorted((synthetic_id[c["profile_a_id"]], synthetic_id[c["profile_b_id"]])), c["score"], c["evidence"])
             for c in candidates]

    measured = {t: evaluate(found, truth, t) for t in (0.5, 0.8, 0.9)}
    print("\n" + json.dumps({"records": len(records), "true_pairs": len(truth), "pairs_compared": counts["pairs_compared"],
                             "candidates": len(found), **{f"p_r_f1@{t}": [round(x, 4) for x in v] for t, v in measured.items()}}))
    precision, recall, _ = measured[0.8]
    assert precision >= 0.9 and recall >= 0.8

    # Through the API or in memory, the matcher sees the same people: the trait mapping loses nothing.
    direct = find_candidates(records, min_score=0.5)
    assert {(p.left_id, p.right_id) for p in found} == {(p.left_id, p.right_id) for p in direct.pairs}


# --- CLI ---------------------------------------------------------------------------------------


def clientele(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "CLIENTELE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "clientele"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )


def test_cli_runs_the_same_service(database_url: str, live_server) -> None:
    """`clientele dedup` runs on the database directly; the API sees its run and merges."""
    created = clientele(database_url, "workspace", "create", "dedup-cli", "--json")
    assert created.returncode == 0, created.stderr
    ws = json.loads(created.stdout)
    batch = {"batch": [person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("neil", **NEIL)]}
    sent = httpx.post(f"{live_server.base_url}/v1/batch", json=batch, auth=(ws["write_key"], ""))
    assert sent.status_code == 200, sent.text

    bad = clientele(database_url, "dedup", "-w", ws["workspace_id"], "--min-score", "0.9", "--threshold", "0.8")
    assert bad.returncode == 2 and "min_score" in bad.stderr

    preview = clientele(database_url, "dedup", "-w", ws["workspace_id"], "--threshold", "0.8", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "dry run" in preview.stdout and "1 candidates" in preview.stdout and "typo" in preview.stdout

    merged = clientele(database_url, "dedup", "-w", ws["workspace_id"], "--threshold", "0.8", "--json")
    assert merged.returncode == 0, merged.stderr
    out = json.loads(merged.stdout)
    assert out["run"]["counts"]["auto_merged"] == 1 and out["run"]["threshold"] == 0.8
    assert [c["status"] for c in out["candidates"]] == ["merged"]

    headers = {"Authorization": f"Bearer {ws['secret_key']}"}
    runs = httpx.get(f"{live_server.base_url}/v1/dedup/runs", headers=headers).json()["data"]
    assert [r["id"] for r in runs][0] == out["run"]["id"] and len(runs) == 2
    ledger = httpx.get(f"{live_server.base_url}/v1/profiles/{out['candidates'][0]['profile_a_id']}/merges", headers=headers).json()
    assert [e["rule"] for e in ledger] == ["dedup"]

    review = clientele(database_url, "dedup", "-w", ws["workspace_id"], "--review-only", "--json")
    assert json.loads(review.stdout)["run"]["threshold"] is None
    unknown = clientele(database_url, "dedup", "-w", "01a207fd-0000-7000-8000-000000000000")
    assert unknown.returncode == 1 and "No workspace" in unknown.stderr


# --- CRM-style duplicates: the workspace's dedup_joins rule -----------------------------------


async def test_dedup_joins_rule_lets_a_confirmed_merge_join_two_customer_numbers(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, person(user_id="crm-1", **JON), person(user_id="crm-2", **JON_TYPO),
               person(user_id="crm-9", **NEIL))
    a, b = await profile_id(client, workspace, "user_id", "crm-1"), await profile_id(client, workspace, "user_id", "crm-2")
    rule = await client.put("/v1/identity/settings", json={"dedup_joins": ["user_id"]}, headers=workspace.admin_headers)
    assert rule.status_code == 200 and rule.json()["dedup_joins"] == ["user_id"]
    assert rule.json()["limits"]["user_id"] == 1, "the limit itself is unchanged"

    preview = await start_run(client, workspace, threshold=0.8, dry_run=True)
    assert preview["counts"]["auto_merged"] == 1 and preview["counts"]["merge_conflicts"] == 0
    run = await start_run(client, workspace, threshold=0.8)
    assert run["counts"]["auto_merged"] == 1 and run["counts"]["merge_conflicts"] == 0
    [candidate] = await all_candidates(client, workspace, run_id=run["id"])
    assert candidate["status"] == "merged" and "joins user_id crm-1, crm-2" in candidate["reason"]

    # The ledger says what the rule allowed, and split undoes it.
    # Both profiles were made in one batch, so which survives falls to their ids: read it.
    survivor = await profile_id(client, workspace, "user_id", "crm-2")
    assert survivor == await profile_id(client, workspace, "user_id", "crm-1") and survivor in (a, b)
    absorbed = b if survivor == a else a
    [entry] = (await client.get(f"/v1/profiles/{survivor}/merges", headers=workspace.admin_headers)).json()
    assert entry["rule"] == "dedup" and entry["absorbed_id"] == absorbed
    assert entry["identifier_type"] == "user_id" and entry["identifier_value"] == "crm-1, crm-2"
    split = await client.post(f"/v1/profiles/{absorbed}/split", headers=workspace.admin_headers)
    assert split.status_code == 200, split.text
    assert await profile_id(client, workspace, "user_id", "crm-2") == b
    assert await profile_id(client, workspace, "user_id", "crm-1") == a


async def test_dedup_joins_rule_does_not_weaken_ingest_or_manual_merges(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    await client.put("/v1/identity/settings", json={"dedup_joins": ["user_id"]}, headers=workspace.admin_headers)
    await send(client, workspace, person(user_id="crm-1", **JON), person(user_id="crm-2", **NEIL))
    a, b = await profile_id(client, workspace, "user_id", "crm-1"), await profile_id(client, workspace, "user_id", "crm-2")

    # Ingest: a message joining crm-3 to crm-1's e-mail is refused as before (one user_id per profile).
    await send(client, workspace, {"type": "identify", "userId": "crm-3", "traits": {"email": JON["email"]}})
    assert await profile_id(client, workspace, "user_id", "crm-3") != a
    assert await profile_id(client, workspace, "email", JON["email"]) == a
    conflicts = (await client.get("/v1/identity/conflicts", headers=workspace.admin_headers)).json()
    assert any("user_id" in c["reason"] for c in conflicts)

    # A manual merge of two customer numbers keeps the limit too.
    manual = await client.post("/v1/profiles/merge", json={"profile_ids": [a, b]}, headers=workspace.admin_headers)
    assert manual.status_code == 409 and manual.json()["code"] == "identity_conflict"


# --- what a run could not read ---------------------------------------------------------------


async def test_birthdates_in_other_forms_are_read_and_ambiguous_ones_reported(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    compact = {**JON, "birthdate": "19800412"}
    dotted = {**JON_TYPO, "birthdate": "12.04.1980"}
    ambiguous = {**NEIL, "birthdate": "04/05/1962"}
    await send(client, workspace, person("a", **compact), person("b", **dotted), person("c", **ambiguous))
    neil = await profile_id(client, workspace, "anonymous_id", "c")

    run = await start_run(client, workspace)
    [candidate] = await all_candidates(client, workspace, run_id=run["id"])
    assert candidate["evidence"]["birthdate"] == "exact"
    assert run["unreadable"]["birthdate"]["count"] == 1
    [example] = run["unreadable"]["birthdate"]["examples"]
    assert example["profile_id"] == neil and example["value"] == "04/05/1962"
    assert "day/month or month/day" in example["reason"]
    assert run["model"]["method"].startswith("fellegi-sunter") and run["model"]["comparisons"]["birthdate"]["exact"]["bits"] > 0


async def test_reviewers_decisions_are_used_by_the_next_run(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("neil", **NEIL),
               person("maria", **MARIA), person("maria-2", **MARIA_AGAIN))
    first = await start_run(client, workspace)
    assert first["model"]["decisions"] == {"same_person": 0, "different_people": 0}
    candidates = await all_candidates(client, workspace, run_id=first["id"])
    jon = next(c for c in candidates if c["evidence"].get("first_name") == "typo")
    maria = next(c for c in candidates if c["id"] != jon["id"])
    assert (await client.post(f"/v1/dedup/candidates/{jon['id']}/merge", headers=workspace.admin_headers)).status_code == 200
    assert (await client.post(f"/v1/dedup/candidates/{maria['id']}/reject", headers=workspace.admin_headers)).status_code == 200

    second = await start_run(client, workspace)
    assert second["model"]["decisions"] == {"same_person": 1, "different_people": 1}
