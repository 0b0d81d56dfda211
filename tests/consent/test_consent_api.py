"""Consent: purposes and notices, the ledger and its state, append-only in the database, stale
notices, expiry, idempotency, unsubscribe tokens, merges, workspace isolation."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import WorkspaceKeys


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, *batch: dict, headers: dict | None = None) -> dict:
    resp = await client.post("/v1/batch", json={"batch": list(batch)}, auth=ws.write_auth, headers=headers or {})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def profile_id(client: httpx.AsyncClient, ws: WorkspaceKeys, user_id: str, type_: str = "user_id") -> str:
    resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": user_id},
                            headers=ws.admin_headers)
    if resp.status_code == 404:
        key = "userId" if type_ == "user_id" else "anonymousId"
        await send(client, ws, {"type": "identify", key: user_id, "messageId": f"id-{user_id}"})
        resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": user_id},
                                headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


async def consent(client: httpx.AsyncClient, ws: WorkspaceKeys, pid: str, **body) -> httpx.Response:
    return await client.post(f"/v1/profiles/{pid}/consents", json=body, headers=ws.admin_headers)


async def state(client: httpx.AsyncClient, ws: WorkspaceKeys, pid: str, **params) -> dict[tuple[str, str], dict]:
    resp = await client.get(f"/v1/profiles/{pid}/consents", params=params, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return {(i["purpose"], i["channel"]): i for i in resp.json()["items"]}


async def test_workspace_is_seeded_and_opt_in_purposes_are_denied_by_default(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    purposes = (await client.get("/v1/consent/purposes", headers=workspace.admin_headers)).json()
    assert {p["key"]: (p["lawful_basis"], p["default_status"]) for p in purposes} == {
        "email_marketing": ("consent", "denied"), "sms_marketing": ("consent", "denied"),
        "direct_mail": ("legitimate_interest", "granted"), "personalization": ("consent", "denied"),
        "advertising": ("consent", "denied"), "analytics": ("legitimate_interest", "granted"),
    }
    pid = await profile_id(client, workspace, "ann")
    now = await state(client, workspace, pid)
    assert len(now) == 6 * 6
    email = now[("email_marketing", "email")]
    assert email["allowed"] is False and email["status"] == "default_denied" and email["record"] is None
    assert email["reason"] == "no record; opt-in purpose denied by default"
    assert now[("analytics", "web")]["allowed"] is True and now[("analytics", "web")]["status"] == "default_granted"
    # An opt-in purpose cannot default to granted, through the API or in the database.
    bad = await client.post("/v1/consent/purposes", json={"key": "surveys", "name": "Surveys", "lawful_basis": "consent",
                                                          "default_status": "granted"}, headers=workspace.admin_headers)
    assert bad.status_code == 422 and bad.json()["code"] == "opt_in_default"
    patch = await client.patch("/v1/consent/purposes/email_marketing", json={"default_status": "granted"},
                               headers=workspace.admin_headers)
    assert patch.status_code == 422


async def test_purpose_and_notice_crud_needs_admin(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    made = await client.post("/v1/keys", json={"name": "crm", "scopes": ["write"]}, headers=workspace.admin_headers)
    writer = {"Authorization": f"Bearer {made.json()['key']}"}
    body = {"key": "loyalty", "name": "Loyalty", "lawful_basis": "contract", "default_status": "granted"}
    assert (await client.post("/v1/consent/purposes", json=body, headers=writer)).status_code == 403
    assert (await client.get("/v1/consent/purposes", headers=writer)).status_code == 200
    created = await client.post("/v1/consent/purposes", json=body, headers=workspace.admin_headers)
    assert created.status_code == 201, created.text
    dup = await client.post("/v1/consent/purposes", json=body, headers=workspace.admin_headers)
    assert dup.status_code == 409
    renamed = await client.patch("/v1/consent/purposes/loyalty", json={"name": "Loyalty club", "sdk_categories": ["Club"]},
                                 headers=workspace.admin_headers)
    assert renamed.json()["name"] == "Loyalty club" and renamed.json()["sdk_categories"] == ["club"]
    assert (await client.delete("/v1/consent/purposes/loyalty", headers=writer)).status_code == 403
    assert (await client.delete("/v1/consent/purposes/loyalty", headers=workspace.admin_headers)).status_code == 204
    assert (await client.get("/v1/consent/purposes/loyalty", headers=workspace.admin_headers)).status_code == 404
    # A purpose the ledger cites stays.
    pid = await profile_id(client, workspace, "ann")
    assert (await consent(client, workspace, pid, purpose="sms_marketing", channel="sms", status="denied")).status_code == 201
    kept = await client.delete("/v1/consent/purposes/sms_marketing", headers=workspace.admin_headers)
    assert kept.status_code == 409 and kept.json()["code"] == "purpose_in_use"

    notice = {"key": "privacy_policy", "title": "Privacy policy", "url": "https://example.com/privacy/v1"}
    assert (await client.post("/v1/consent/notices", json=notice, headers=writer)).status_code == 403
    v1 = await client.post("/v1/consent/notices", json=notice, headers=workspace.admin_headers)
    assert v1.status_code == 201 and v1.json()["version"] == 1 and v1.json()["cited"] is False
    no_content = await client.post("/v1/consent/notices", json={"key": "x", "title": "X"}, headers=workspace.admin_headers)
    assert no_content.status_code == 422
    v2 = (await client.post("/v1/consent/notices", json={**notice, "url": "https://example.com/privacy/v2"},
                            headers=workspace.admin_headers)).json()
    assert v2["version"] == 2
    edited = await client.patch(f"/v1/consent/notices/{v2['id']}", json={"title": "Privacy policy (EU)"},
                                headers=workspace.admin_headers)
    assert edited.status_code == 200 and edited.json()["title"] == "Privacy policy (EU)"
    assert (await client.delete(f"/v1/consent/notices/{v2['id']}", headers=workspace.admin_headers)).status_code == 204
    listed = (await client.get("/v1/consent/notices", params={"key": "privacy_policy"}, headers=writer)).json()
    assert [n["version"] for n in listed] == [1]


async def test_record_state_history_and_proof_is_hashed(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    pid = await profile_id(client, workspace, "ann")
    granted = await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="granted",
                            source="form", method="double_opt_in", occurred_at="2026-05-01T09:30:00Z",
                            proof={"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11)"})
    assert granted.status_code == 201, granted.text
    record = granted.json()
    assert record["proof"]["ip"].startswith("hmac-sha256:") and "203.0.113.7" not in granted.text
    stored = (await connection.execute(sa.text("SELECT proof::text FROM consent_record WHERE id = :id"),
                                       {"id": record["id"]})).scalar_one()
    assert "203.0.113.7" not in stored and "Mozilla" not in stored
    # The same proof in the same workspace hashes the same (it can be compared later).
    again = await consent(client, workspace, pid, purpose="sms_marketing", channel="sms", status="denied",
                          proof={"ip": "203.0.113.7"})
    assert again.json()["proof"]["ip"] == record["proof"]["ip"]

    now = await state(client, workspace, pid)
    item = now[("email_marketing", "email")]
    assert item["allowed"] is True and item["record"]["id"] == record["id"]
    assert item["reason"] == "granted 2026-05-01 via double_opt_in"
    assert now[("email_marketing", "sms")]["allowed"] is False  # granted on e-mail only

    # Withdrawal after the grant wins; the grant is still in the history.
    withdrawn = await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="withdrawn",
                              source="support", occurred_at="2026-06-01T00:00:00Z")
    assert withdrawn.status_code == 201
    item = (await state(client, workspace, pid))[("email_marketing", "email")]
    assert item["allowed"] is False and item["status"] == "withdrawn" and item["record"]["id"] == withdrawn.json()["id"]
    # As of a time between the two, the grant held.
    before = await state(client, workspace, pid, at="2026-05-15T00:00:00Z")
    assert before[("email_marketing", "email")]["allowed"] is True
    history = (await client.get(f"/v1/profiles/{pid}/consents/history", headers=workspace.admin_headers)).json()
    assert [r["status"] for r in history["data"]] == ["denied", "withdrawn", "granted"]
    page = (await client.get(f"/v1/profiles/{pid}/consents/history", params={"limit": 2},
                             headers=workspace.admin_headers)).json()
    rest = (await client.get(f"/v1/profiles/{pid}/consents/history", params={"cursor": page["next_cursor"]},
                             headers=workspace.admin_headers)).json()
    assert [r["id"] for r in page["data"] + rest["data"]] == [r["id"] for r in history["data"]]


async def test_bad_records_are_precise_problems(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await profile_id(client, workspace, "ann")
    cases = [
        ({"purpose": "nope", "status": "granted"}, 422, "unknown_purpose"),
        ({"purpose": "email_marketing", "channel": "fax", "status": "granted"}, 422, "validation_error"),
        ({"purpose": "email_marketing", "status": "maybe"}, 422, "validation_error"),
        ({"purpose": "email_marketing", "status": "granted", "notice_version": 1}, 422, "unknown_notice"),
        ({"purpose": "email_marketing", "status": "granted", "occurred_at": "2999-01-01T00:00:00Z"}, 422,
         "future_occurred_at"),
        ({"purpose": "email_marketing", "status": "granted", "occurred_at": "2026-01-02T00:00:00Z",
          "expires_at": "2026-01-01T00:00:00Z"}, 422, "bad_expiry"),
        ({"purpose": "email_marketing", "status": "granted", "proof": {f"k{i}": "v" for i in range(21)}}, 422,
         "validation_error"),
    ]
    for body, status, code in cases:
        resp = await consent(client, workspace, pid, **body)
        assert resp.status_code == status and resp.json()["code"] == code, (body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    missing = await consent(client, workspace, str(uuid.uuid4()), purpose="email_marketing", status="granted")
    assert missing.status_code == 404
    write_key = await client.post(f"/v1/profiles/{pid}/consents", json={"purpose": "email_marketing", "status": "granted"},
                                  headers={"Authorization": f"Bearer {workspace.write_key}"})
    assert write_key.status_code == 403


async def test_idempotency_key_replays_the_first_record(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await profile_id(client, workspace, "ann")
    body = {"purpose": "email_marketing", "channel": "email", "status": "granted"}
    headers = {**workspace.admin_headers, "Idempotency-Key": "form-17"}
    first = await client.post(f"/v1/profiles/{pid}/consents", json=body, headers=headers)
    second = await client.post(f"/v1/profiles/{pid}/consents", json=body, headers=headers)
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    other = await client.post(f"/v1/profiles/{pid}/consents", json={**body, "status": "denied"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    history = (await client.get(f"/v1/profiles/{pid}/consents/history", headers=workspace.admin_headers)).json()
    assert len(history["data"]) == 1


async def test_consent_by_identifier_creates_unknown_people(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = {"identifier": {"type": "email", "value": " Jane@Example.com "}, "purpose": "email_marketing",
            "channel": "email", "status": "granted", "source": "form"}
    made = await client.post("/v1/consents", json=body, headers=workspace.admin_headers)
    assert made.status_code == 201, made.text
    found = await client.get("/v1/profiles/lookup", params={"type": "email", "value": "jane@example.com"},
                             headers=workspace.admin_headers)
    assert found.status_code == 200 and found.json()["id"] == made.json()["profile_id"]
    # The same person again: the same profile.
    again = await client.post("/v1/consents", json={**body, "status": "withdrawn"}, headers=workspace.admin_headers)
    assert again.json()["profile_id"] == made.json()["profile_id"]
    # Once known through ingest, too.
    await send(client, workspace, {"type": "identify", "userId": "j1", "traits": {"email": "jane@example.com"}})
    assert await profile_id(client, workspace, "j1") == made.json()["profile_id"]
    bad = await client.post("/v1/consents", json={**body, "identifier": {"type": "email", "value": "not-an-email"}},
                            headers=workspace.admin_headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_identifier"


async def test_the_ledger_is_append_only_in_the_database(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    pid = await profile_id(client, workspace, "ann")
    rid = (await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="granted")).json()["id"]
    for statement in (
        "UPDATE consent_record SET status = 'denied' WHERE id = :id",
        "DELETE FROM consent_record WHERE id = :id",
        "DELETE FROM profile WHERE id = (SELECT profile_id FROM consent_record WHERE id = :id)",
        "TRUNCATE consent_record",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with connection.begin_nested():
                await connection.execute(sa.text(statement), {"id": rid})
    assert (await connection.execute(sa.text("SELECT status FROM consent_record WHERE id = :id"),
                                     {"id": rid})).scalar_one() == "granted"
    # An erasure (the one exception) may delete, inside its own transaction only.
    async with connection.begin_nested():
        await connection.execute(sa.text("SET LOCAL clientele.erasure = 'on'"))
        await connection.execute(sa.text("DELETE FROM consent_record WHERE id = :id"), {"id": rid})
        await connection.execute(sa.text("SET LOCAL clientele.erasure = 'off'"))
    assert (await connection.execute(sa.text("SELECT count(*) FROM consent_record WHERE id = :id"),
                                     {"id": rid})).scalar_one() == 0


async def test_a_major_notice_version_makes_older_consents_stale(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    pid = await profile_id(client, workspace, "ann")
    notice = {"key": "privacy_policy", "title": "Privacy policy", "published_at": "2026-01-01T00:00:00Z"}
    v1 = (await client.post("/v1/consent/notices", json={**notice, "url": "https://e.com/v1"},
                            headers=workspace.admin_headers)).json()
    granted = await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="granted",
                            notice_version=1, occurred_at="2026-02-01T00:00:00Z")  # the only notice: key implied
    assert granted.status_code == 201 and granted.json()["notice_key"] == "privacy_policy"
    # v1 is cited now: immutable, through the API and in the database.
    refused = await client.patch(f"/v1/consent/notices/{v1['id']}", json={"title": "New"}, headers=workspace.admin_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "notice_cited"
    assert (await client.delete(f"/v1/consent/notices/{v1['id']}", headers=workspace.admin_headers)).status_code == 409
    with pytest.raises(DBAPIError, match="cited"):
        async with connection.begin_nested():
            await connection.execute(sa.text("UPDATE privacy_notice SET title = 'x' WHERE id = :id"), {"id": v1["id"]})
    # A minor version keeps the grant; a major one published later makes it stale from then on.
    await client.post("/v1/consent/notices", json={**notice, "url": "https://e.com/v2", "published_at": "2026-03-01T00:00:00Z"},
                      headers=workspace.admin_headers)
    assert (await state(client, workspace, pid))[("email_marketing", "email")]["allowed"] is True
    await client.post("/v1/consent/notices", json={**notice, "url": "https://e.com/v3", "major": True,
                                                   "published_at": "2026-04-01T00:00:00Z"}, headers=workspace.admin_headers)
    item = (await state(client, workspace, pid))[("email_marketing", "email")]
    assert item["allowed"] is False and item["status"] == "stale" and "stale since" in item["reason"]
    assert (await state(client, workspace, pid, at="2026-03-15T00:00:00Z"))[("email_marketing", "email")]["allowed"]
    # Consent given again under v3 counts.
    await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="granted",
                  notice="privacy_policy", notice_version=3, occurred_at="2026-04-02T00:00:00Z")
    item = (await state(client, workspace, pid))[("email_marketing", "email")]
    assert item["allowed"] is True and item["reason"].endswith("under notice privacy_policy v3")


async def test_expired_grant_denies(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await profile_id(client, workspace, "ann")
    await consent(client, workspace, pid, purpose="sms_marketing", channel="sms", status="granted",
                  occurred_at="2026-01-01T00:00:00Z", expires_at="2026-07-01T00:00:00Z")
    assert (await state(client, workspace, pid, at="2026-06-30T00:00:00Z"))[("sms_marketing", "sms")]["allowed"] is True
    item = (await state(client, workspace, pid, at="2026-07-02T00:00:00Z"))[("sms_marketing", "sms")]
    assert item["allowed"] is False and item["status"] == "expired"


async def test_unsubscribe_token_works_once_expires_and_is_scoped(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = await profile_id(client, workspace, "ann")
    for purpose, channel in (("email_marketing", "email"), ("sms_marketing", "sms"), ("email_marketing", "sms")):
        await consent(client, workspace, pid, purpose=purpose, channel=channel, status="granted",
                      occurred_at="2026-01-01T00:00:00Z")
    issued = await client.post("/v1/consent/unsubscribe-tokens", json={"profile_id": pid, "purpose": "email_marketing",
                                                                       "channel": "email"}, headers=workspace.admin_headers)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    before = await client.get(f"/v1/profiles/{pid}", headers=workspace.admin_headers)
    used = await client.post(issued.json()["path"], content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert used.status_code == 200 and used.json() == {"unsubscribed": True, "purpose": "email_marketing", "channel": "email"}
    now = await state(client, workspace, pid)
    assert now[("email_marketing", "email")]["status"] == "withdrawn"
    assert now[("email_marketing", "email")]["record"]["method"] == "one_click_unsubscribe"
    assert now[("sms_marketing", "sms")]["allowed"] and now[("email_marketing", "sms")]["allowed"]  # scoped
    after = await client.get(f"/v1/profiles/{pid}", headers=workspace.admin_headers)
    assert after.json()["traits"] == before.json()["traits"] and after.json()["updated_at"] == before.json()["updated_at"]
    again = await client.post(f"/v1/unsubscribe/{token}")
    assert again.status_code == 409 and again.json()["code"] == "token_used"
    history = (await client.get(f"/v1/profiles/{pid}/consents/history", headers=workspace.admin_headers)).json()
    assert [r["status"] for r in history["data"]].count("withdrawn") == 1
    # Tampered: another channel in the payload with the old signature.
    payload, _, mac = token.partition(".")
    import base64

    import orjson
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(orjson.dumps({**claims, "c": "sms"})).decode().rstrip("=")
    assert (await client.post(f"/v1/unsubscribe/{forged}.{mac}")).status_code == 404
    assert (await client.post("/v1/unsubscribe/garbage")).status_code == 404
    # Expired: a fresh token presented after its expiry.
    fresh = (await client.post("/v1/consent/unsubscribe-tokens", json={"profile_id": pid, "purpose": "sms_marketing",
                                                                       "channel": "sms", "expires_in_days": 1},
                               headers=workspace.admin_headers)).json()
    real_time = time.time
    monkeypatch.setattr("app.consent.service.time.time", lambda: real_time() + 2 * 86400)
    expired = await client.post(fresh["path"])
    assert expired.status_code == 410 and expired.json()["code"] == "token_expired"
    monkeypatch.undo()
    assert (await state(client, workspace, pid))[("sms_marketing", "sms")]["allowed"] is True
    # Unknown purpose: no token.
    bad = await client.post("/v1/consent/unsubscribe-tokens", json={"profile_id": pid, "purpose": "nope", "channel": "sms"},
                            headers=workspace.admin_headers)
    assert bad.status_code == 422


async def test_merged_profiles_keep_their_consents_and_the_stricter_wins(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    web, crm = await profile_id(client, workspace, "web-1", "anonymous_id"), await profile_id(client, workspace, "crm-1")
    # web granted e-mail (and, later in time, SMS); crm denied e-mail; only crm said yes to direct mail.
    await consent(client, workspace, web, purpose="email_marketing", channel="email", status="granted",
                  occurred_at="2026-03-01T00:00:00Z")
    await consent(client, workspace, crm, purpose="email_marketing", channel="email", status="denied",
                  occurred_at="2026-02-01T00:00:00Z")
    await consent(client, workspace, web, purpose="sms_marketing", channel="sms", status="granted",
                  occurred_at="2026-03-01T00:00:00Z")
    await consent(client, workspace, crm, purpose="personalization", channel="push", status="granted",
                  occurred_at="2026-03-01T00:00:00Z")
    merged = await client.post("/v1/profiles/merge", json={"profile_ids": [web, crm], "survivor_id": web},
                               headers=workspace.admin_headers)
    assert merged.status_code == 200, merged.text
    now = await state(client, workspace, web)
    email = now[("email_marketing", "email")]
    assert email["allowed"] is False and email["record"]["profile_id"] == crm  # stricter, though older
    assert "stricter" in email["reason"]
    assert now[("sms_marketing", "sms")]["allowed"] is True
    assert now[("personalization", "push")]["allowed"] is True and now[("personalization", "push")]["record"]["profile_id"] == crm
    # The absorbed id answers for the survivor; history holds both profiles' records.
    via_absorbed = await client.get(f"/v1/profiles/{crm}/consents", headers=workspace.admin_headers)
    assert via_absorbed.json()["profile_id"] == web and via_absorbed.json()["requested_id"] == crm
    history = (await client.get(f"/v1/profiles/{web}/consents/history", headers=workspace.admin_headers)).json()
    assert {r["profile_id"] for r in history["data"]} == {web, crm}
    # After the merge the person speaks for both: a new grant decides.
    await consent(client, workspace, web, purpose="email_marketing", channel="email", status="granted")
    assert (await state(client, workspace, web))[("email_marketing", "email")]["allowed"] is True


async def test_workspace_isolation_on_every_route(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    pid = await profile_id(client, workspace, "ann")
    await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="granted")
    notice = (await client.post("/v1/consent/notices", json={"key": "pp", "title": "PP", "text": "..."},
                                headers=workspace.admin_headers)).json()
    await client.post("/v1/consent/purposes", json={"key": "loyalty", "name": "L", "lawful_basis": "contract",
                                                    "default_status": "granted"}, headers=workspace.admin_headers)
    theirs = other_workspace.admin_headers
    body = {"purpose": "email_marketing", "channel": "email", "status": "denied"}
    assert (await client.post(f"/v1/profiles/{pid}/consents", json=body, headers=theirs)).status_code == 404
    assert (await client.get(f"/v1/profiles/{pid}/consents", headers=theirs)).status_code == 404
    assert (await client.get(f"/v1/profiles/{pid}/consents/history", headers=theirs)).status_code == 404
    assert (await client.get(f"/v1/consent/notices/{notice['id']}", headers=theirs)).status_code == 404
    assert (await client.patch(f"/v1/consent/notices/{notice['id']}", json={"title": "x"}, headers=theirs)).status_code == 404
    assert (await client.delete(f"/v1/consent/notices/{notice['id']}", headers=theirs)).status_code == 404
    assert (await client.get("/v1/consent/notices", headers=theirs)).json() == []
    assert (await client.get("/v1/consent/purposes/loyalty", headers=theirs)).status_code == 404
    assert (await client.patch("/v1/consent/purposes/loyalty", json={"name": "x"}, headers=theirs)).status_code == 404
    assert (await client.delete("/v1/consent/purposes/loyalty", headers=theirs)).status_code == 404
    assert "loyalty" not in {p["key"] for p in (await client.get("/v1/consent/purposes", headers=theirs)).json()}
    token = await client.post("/v1/consent/unsubscribe-tokens", json={"profile_id": pid, "purpose": "email_marketing",
                                                                      "channel": "email"}, headers=theirs)
    assert token.status_code == 404
    # The same identifier in the other workspace is another person.
    by_identifier = await client.post("/v1/consents", json={**body, "identifier": {"type": "user_id", "value": "ann"}},
                                      headers=theirs)
    assert by_identifier.status_code == 201 and by_identifier.json()["profile_id"] != pid
    assert (await state(client, workspace, pid))[("email_marketing", "email")]["allowed"] is True
    # Nor can the other workspace's token secret sign for this one: tokens carry their workspace.
    mine = (await client.post("/v1/consent/unsubscribe-tokens", json={"profile_id": pid, "purpose": "email_marketing",
                                                                      "channel": "email"},
                              headers=workspace.admin_headers)).json()
    payload, _, mac = mine["token"].partition(".")
    import base64

    import orjson
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    moved = base64.urlsafe_b64encode(orjson.dumps({**claims, "w": other_workspace.workspace_id})).decode().rstrip("=")
    assert (await client.post(f"/v1/unsubscribe/{moved}.{mac}")).status_code == 404


async def test_unauthenticated_routes_are_refused(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await profile_id(client, workspace, "ann")
    for method, path in (("GET", "/v1/consent/purposes"), ("GET", "/v1/consent/notices"),
                         ("GET", f"/v1/profiles/{pid}/consents"), ("POST", "/v1/consent/unsubscribe-tokens"),
                         ("POST", "/v1/consents")):
        assert (await client.request(method, path, json={})).status_code == 401

