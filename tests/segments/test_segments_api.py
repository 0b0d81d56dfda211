"""Segments over the API: definitions and versions, refreshes and the change stream (across
merges), membership at a time, history, explanations, members, streamed exports, a person's
segments, and workspace isolation on every route."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.segments import service as segment_service
from tests.conftest import WorkspaceKeys
from tests.segments.helpers import create_segment, load, people, refresh

PROBLEM = "application/problem+json"


async def follow(client: httpx.AsyncClient, ws: WorkspaceKeys, segment_id: str, cursor: str | None, limit: int = 3):
    """Read the change stream from `cursor` to its end, in small pages; returns (changes, cursor)."""
    got: list[dict] = []
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        resp = await client.get(f"/v1/segments/{segment_id}/changes", params=params, headers=ws.admin_headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        got += body["data"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return got, cursor


async def set_plan(client, ws, profile_id: str, plan: str) -> None:
    resp = await client.patch(f"/v1/profiles/{profile_id}", json={"set": {"plan": plan}}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text


async def test_definitions_and_versions(client, workspace):
    h = workspace.admin_headers
    seg = await create_segment(client, workspace, "Pro", {"trait": "plan", "op": "eq", "value": "pro"})
    assert seg["version"] == 1 and seg["kind"] == "rule" and seg["refreshed_at"] is None
    assert (await client.post("/v1/segments", json={"name": "Pro", "rule": {"trait": "a", "op": "exists"}}, headers=h)).status_code == 409
    renamed = (await client.patch(f"/v1/segments/{seg['id']}", json={"name": "Pro plan", "description": "d"}, headers=h)).json()
    assert renamed["version"] == 1 and renamed["name"] == "Pro plan"
    same = (await client.patch(f"/v1/segments/{seg['id']}", json={"rule": seg["rule"]}, headers=h)).json()
    assert same["version"] == 1  # the same rule is not a new version
    new_rule = {"trait": "plan", "op": "in", "value": ["pro", "enterprise"]}
    changed = (await client.patch(f"/v1/segments/{seg['id']}", json={"rule": new_rule}, headers=h)).json()
    assert changed["version"] == 2 and changed["rule"] == new_rule
    versions = (await client.get(f"/v1/segments/{seg['id']}/versions", headers=h)).json()
    assert [(v["version"], v["rule"]) for v in versions] == [(1, seg["rule"]), (2, new_rule)]
    assert (await client.get(f"/v1/segments/{seg['id']}/versions/1", headers=h)).json()["rule"] == seg["rule"]
    assert (await client.get(f"/v1/segments/{seg['id']}/versions/3", headers=h)).status_code == 404
    assert [s["id"] for s in (await client.get("/v1/segments", headers=h)).json()] == [seg["id"]]
    assert (await client.delete(f"/v1/segments/{seg['id']}", headers=h)).status_code == 204
    resp = await client.get(f"/v1/segments/{seg['id']}", headers=h)
    assert resp.status_code == 404 and resp.headers["content-type"].startswith(PROBLEM)


async def test_change_stream_exactly_once_across_refreshes_and_merges(client, workspace):
    h = workspace.admin_headers
    persons = people(20, seed=21)
    await load(client, workspace, persons)
    # An anonymous visitor on the pro plan, to be merged into a known customer later.
    resp = await client.post("/v1/batch", json={"batch": [{"type": "identify", "anonymousId": "anon-1", "messageId": "a1",
                                                           "traits": {"plan": "pro"}}]}, auth=workspace.write_auth)
    assert resp.status_code == 200 and resp.json()["accepted"] == 1
    lookup = await client.get("/v1/profiles/lookup", params={"type": "anonymous_id", "value": "anon-1"}, headers=h)
    anonymous = lookup.json()["id"]
    seg = await create_segment(client, workspace, "Pro", {"trait": "plan", "op": "eq", "value": "pro"})
    sid = seg["id"]
    before_first = datetime.now(UTC)
    first = await refresh(client, workspace, sid)
    pro = {p.profile_id for p in persons if p.traits.get("plan") == "pro"} | {anonymous}
    assert first["mode"] == "full" and first["entered"] == len(pro) and first["exited"] == 0 and pro

    changes, cursor = await follow(client, workspace, sid, None)
    assert {c["profile_id"] for c in changes} == pro and all(c["change"] == "entered" for c in changes)
    # Nothing new: an empty page keeps the cursor.
    again, cursor2 = await follow(client, workspace, sid, cursor)
    assert again == [] and cursor2 == cursor

    outsider = next(p for p in persons if p.traits.get("plan") != "pro")
    insider = next(p for p in persons if p.profile_id in pro)
    await set_plan(client, workspace, outsider.profile_id, "pro")
    await set_plan(client, workspace, insider.profile_id, "free")
    second = await refresh(client, workspace, sid)
    assert second["mode"] == "incremental" and (second["entered"], second["exited"]) == (1, 1)
    third = await refresh(client, workspace, sid)  # nothing changed since
    assert (third["entered"], third["exited"]) == (0, 0)

    # A merge: the anonymous member is absorbed by a customer on another plan (whose own plan
    # wins), so the absorbed id exits.
    survivor = next(p for p in persons if p.traits.get("plan") == "free" and p is not insider)
    resp = await client.post("/v1/profiles/merge", json={"profile_ids": [survivor.profile_id, anonymous],
                                                         "survivor_id": survivor.profile_id}, headers=h)
    assert resp.status_code == 200, resp.text
    fourth = await refresh(client, workspace, sid)
    assert fourth["exited"] >= 1

    more, cursor = await follow(client, workspace, sid, cursor)
    everything, _ = await follow(client, workspace, sid, None, limit=1000)
    assert everything == changes + more  # resuming from a cursor misses and repeats nothing
    state: dict[str, str] = {}
    for c in everything:
        assert state.get(c["profile_id"]) != c["change"], c  # alternates: entered, exited, entered...
        state[c["profile_id"]] = c["change"]
    members = {pid for pid, ch in state.items() if ch == "entered"}
    listed = (await client.get(f"/v1/segments/{sid}/members", params={"limit": 1000}, headers=h)).json()["data"]
    assert {m["profile_id"] for m in listed} == members
    assert anonymous not in members and state[anonymous] == "exited"
    live = {p["id"] for p in (await client.get("/v1/profiles", params={"limit": 1000}, headers=h)).json()["data"]}
    assert members <= live  # no membership points at a merged-away profile

    # Membership at a time, from the stream
    def at(pid: str, when: datetime) -> bool:
        return client.get(f"/v1/segments/{sid}/members/{pid}", params={"at": when.isoformat()}, headers=h)

    assert (await at(insider.profile_id, before_first)).json()["member"] is False
    was = (await at(insider.profile_id, datetime.fromisoformat(first["refreshed_at"]) + timedelta(microseconds=1))).json()
    assert was["member"] is True and was["version"] == 1
    assert (await at(insider.profile_id, datetime.now(UTC))).json()["member"] is False
    assert (await at(outsider.profile_id, datetime.now(UTC))).json()["member"] is True

    history = (await client.get(f"/v1/segments/{sid}/history", headers=h)).json()["data"]
    assert [x["member_count"] for x in history] == [
        len(pro), len(pro), len(pro), len(pro) - fourth["exited"] + fourth["entered"]
    ]
    assert [x["mode"] for x in history][:2] == ["full", "incremental"]

    # A person's segments, also asked with the merged-away id
    mine = (await client.get(f"/v1/profiles/{outsider.profile_id}/segments", headers=h)).json()
    assert [s["segment_id"] for s in mine] == [sid]
    assert (await client.get(f"/v1/profiles/{anonymous}/segments", headers=h)).json() == \
        (await client.get(f"/v1/profiles/{survivor.profile_id}/segments", headers=h)).json()


async def test_rule_change_refreshes_fully_with_the_new_version(client, workspace):
    h = workspace.admin_headers
    persons = people(15, seed=4)
    await load(client, workspace, persons)
    seg = await create_segment(client, workspace, "Pro", {"trait": "plan", "op": "eq", "value": "pro"})
    await refresh(client, workspace, seg["id"])
    await client.patch(f"/v1/segments/{seg['id']}", json={"rule": {"trait": "plan", "op": "eq", "value": "free"}}, headers=h)
    result = await refresh(client, workspace, seg["id"])
    assert result["mode"] == "full" and result["version"] == 2
    changes, _ = await follow(client, workspace, seg["id"], None, limit=1000)
    entered_v2 = {c["profile_id"] for c in changes if c["version"] == 2 and c["change"] == "entered"}
    assert entered_v2 == {p.profile_id for p in persons if p.traits.get("plan") == "free"}


async def test_queued_refresh_runs_in_the_worker_task(client, workspace, db, settings):
    from app.jobs.worker import JobContext
    from app.segments import jobs as segment_jobs

    h = workspace.admin_headers
    persons = people(8, seed=2)
    await load(client, workspace, persons)
    seg = await create_segment(client, workspace, "Any", {"trait": "city", "op": "exists"})
    resp = await client.post(f"/v1/segments/{seg['id']}/refresh", headers=h)
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    job = resp.json()
    payload = {"workspace_id": workspace.workspace_id, "job_id": job["id"], "segment_id": seg["id"], "mode": "auto"}
    await segment_jobs.run_refresh(JobContext(db=db, settings=settings), payload)
    done = (await client.get(f"/v1/segments/jobs/{job['id']}", headers=h)).json()
    assert done["status"] == "done" and done["result"]["entered"] == len(persons)
    # and the whole workspace, as the schedule queues it
    assert (await segment_jobs.refresh_workspace(db, uuid.UUID(workspace.workspace_id)))["segments"] == 1


async def test_explain(client, workspace):
    h = workspace.admin_headers
    persons = people(20, seed=9)
    await load(client, workspace, persons)
    rule = {"and": [{"computed": "order_count", "op": "gte", "value": 3},
                    {"or": [{"trait": "plan", "op": "eq", "value": "pro"}, {"identifier": "email", "op": "exists"}]},
                    {"event": "Order Completed", "count": {"op": "gte", "value": 1}, "within_days": 10000}]}
    seg = await create_segment(client, workspace, "Loyal", rule)
    person = next(p for p in persons if len(p.orders) == 2)
    resp = await client.get(f"/v1/segments/{seg['id']}/explain/{person.profile_id}", headers=h)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    tree = body["tree"]
    assert body["matches_now"] is False and tree["result"] is False and tree["kind"] == "and"
    count_node, or_node, event_node = tree["children"]
    assert count_node["pointer"] == "/and/0" and count_node["result"] is False
    assert count_node["seen"] == {"order_count": 2} and count_node["needed"] == ">= 3"
    assert or_node["result"] == (person.traits.get("plan") == "pro" or person.email is not None)
    assert or_node["children"][0]["seen"] == {"plan": person.traits.get("plan")}
    assert event_node["result"] is True and list(event_node["seen"].values()) == [2]
    assert body["member"] is False
    unknown = await client.get(f"/v1/segments/{seg['id']}/explain/{uuid.uuid4()}", headers=h)
    assert unknown.status_code == 404


async def test_members_pages_and_fields(client, workspace):
    h = workspace.admin_headers
    persons = people(12, seed=8)
    await load(client, workspace, persons)
    seg = await create_segment(client, workspace, "All", {"trait": "city", "op": "exists"})
    await refresh(client, workspace, seg["id"])
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 5, "fields": "traits.plan,computed.order_count,identifier.email"} | ({"cursor": cursor} if cursor else {})
        body = (await client.get(f"/v1/segments/{seg['id']}/members", params=params, headers=h)).json()
        seen += body["data"]
        if not (cursor := body.get("next_cursor")):
            break
    assert [m["profile_id"] for m in seen] == sorted(p.profile_id for p in persons)
    by_id = {p.profile_id: p for p in persons}
    for m in seen:
        p = by_id[m["profile_id"]]
        assert m["values"] == {"traits.plan": p.traits.get("plan"),
                               "computed.order_count": len(p.orders) or None, "identifier.email": p.email}
    bad = await client.get(f"/v1/segments/{seg['id']}/members", params={"fields": "password"}, headers=h)
    assert bad.status_code == 422 and bad.json()["code"] == "bad_fields"


async def test_export_streams_csv_and_ndjson(client, workspace, monkeypatch):
    h = workspace.admin_headers
    persons = people(11, seed=12)
    await load(client, workspace, persons)
    seg = await create_segment(client, workspace, "All", {"trait": "city", "op": "exists"})
    await refresh(client, workspace, seg["id"])
    monkeypatch.setattr(segment_service, "EXPORT_CHUNK", 4)  # several keyset chunks
    pulled = []
    real = segment_service.repository.members_page

    def spy(*args, **kwargs):
        pulled.append(kwargs["limit"])
        return real(*args, **kwargs)

    monkeypatch.setattr(segment_service.repository, "members_page", spy)
    resp = await client.get(f"/v1/segments/{seg['id']}/export", params={"format": "csv", "fields": "traits.city,traits.tags"}, headers=h)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.text)))
    assert rows[0] == ["profile_id", "entered_at", "traits.city", "traits.tags"]
    by_id = {p.profile_id: p for p in persons}
    assert sorted(r[0] for r in rows[1:]) == sorted(by_id)
    for r in rows[1:]:
        assert r[2] == by_id[r[0]].traits["city"] and json.loads(r[3]) == by_id[r[0]].traits["tags"]
    assert pulled == [4, 4, 4]  # 11 members in chunks of 4: memory holds one chunk at a time
    resp = await client.get(f"/v1/segments/{seg['id']}/export", params={"format": "ndjson"}, headers=h)
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert {line["profile_id"] for line in lines} == set(by_id)
    assert all(line["traits"] == by_id[line["profile_id"]].traits for line in lines)
    bad = await client.get(f"/v1/segments/{seg['id']}/export", params={"fields": "traits.a,nope"}, headers=h)
    assert bad.status_code == 422


async def test_workspace_isolation_on_every_route(client, workspace, other_workspace):
    persons = people(6, seed=1)
    await load(client, workspace, persons)
    seg = await create_segment(client, workspace, "Mine", {"trait": "city", "op": "exists"})
    await refresh(client, workspace, seg["id"])
    sid, pid = seg["id"], persons[0].profile_id
    o = other_workspace.admin_headers
    for method, path, body in [
        ("GET", f"/v1/segments/{sid}", None),
        ("PATCH", f"/v1/segments/{sid}", {"name": "x"}),
        ("DELETE", f"/v1/segments/{sid}", None),
        ("GET", f"/v1/segments/{sid}/versions", None),
        ("GET", f"/v1/segments/{sid}/versions/1", None),
        ("POST", f"/v1/segments/{sid}/refresh?wait=true", None),
        ("GET", f"/v1/segments/{sid}/members", None),
        ("GET", f"/v1/segments/{sid}/members/{pid}", None),
        ("GET", f"/v1/segments/{sid}/changes", None),
        ("GET", f"/v1/segments/{sid}/history", None),
        ("GET", f"/v1/segments/{sid}/explain/{pid}", None),
        ("GET", f"/v1/segments/{sid}/export", None),
        ("GET", f"/v1/profiles/{pid}/segments", None),
    ]:
        resp = await client.request(method, path, json=body, headers=o)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
    assert (await client.get("/v1/segments", headers=o)).json() == []
    preview = (await client.post("/v1/segments/preview", json={"rule": {"trait": "city", "op": "exists"}}, headers=o)).json()
    assert preview["count"] == 0
    # A rule in another workspace cannot name this one's segment
    resp = await client.post("/v1/segments/preview", json={"rule": {"segment": sid}}, headers=o)
    assert resp.status_code == 422 and resp.json()["errors"][0]["code"] == "unknown_segment"
    # and the owner still has everything
    assert (await client.get(f"/v1/segments/{sid}", headers=workspace.admin_headers)).status_code == 200


async def test_auth_and_scopes(client, workspace):
    assert (await client.get("/v1/segments")).status_code == 401
    resp = await client.get("/v1/segments", auth=workspace.write_auth)
    assert resp.status_code in (401, 403)
    key = await client.post("/v1/keys", json={"name": "reader", "scopes": ["read"]}, headers=workspace.admin_headers)
    assert key.status_code == 201, key.text
    reader = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await client.get("/v1/segments", headers=reader)).status_code == 200
    assert (await client.post("/v1/segments/preview", json={"rule": {"trait": "a", "op": "exists"}}, headers=reader)).status_code == 200
    resp = await client.post("/v1/segments", json={"name": "x", "rule": {"trait": "a", "op": "exists"}}, headers=reader)
    assert resp.status_code == 403
