"""Consent from ingest: Segment's categoryPreferences and GPC (context.gpc or the Sec-GPC
header) become ledger records once per change, not once per event, on every parser path."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import WorkspaceKeys
from tests.consent.test_consent_api import profile_id, send, state


async def history(client: httpx.AsyncClient, ws: WorkspaceKeys, pid: str) -> list[dict]:
    resp = await client.get(f"/v1/profiles/{pid}/consents/history", headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def track(anon: str, context: dict | None = None, **extra) -> dict:
    msg = {"type": "track", "event": "Page Viewed", "anonymousId": anon, "messageId": str(uuid.uuid4()),
           "timestamp": "2026-12-01T10:00:00Z", **extra}
    if context is not None:
        msg["context"] = context
    return msg


async def test_gpc_is_recorded_once_and_opts_out_of_advertising(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    gpc = {"gpc": True, "userAgent": "Mozilla/5.0"}
    result = await send(client, workspace, track("a1", gpc), track("a1", gpc), track("a1", gpc, event="Clicked"))
    assert result["accepted"] == 3
    await send(client, workspace, track("a1", gpc), track("a1", {"gpc": True, "library": {"name": "analytics.js"}}))
    pid = await profile_id(client, workspace, "a1", "anonymous_id")
    records = await history(client, workspace, pid)
    assert len(records) == 1
    (gpc_record,) = records
    assert (gpc_record["purpose"], gpc_record["channel"], gpc_record["status"], gpc_record["source"],
            gpc_record["method"]) == ("advertising", None, "denied", "sdk", "gpc")
    assert gpc_record["message_id"] is not None
    now = await state(client, workspace, pid)
    for channel in ("ads", "web", "email"):
        assert now[("advertising", channel)]["allowed"] is False
        assert now[("advertising", channel)]["record"]["id"] == gpc_record["id"]
    assert now[("analytics", "web")]["allowed"] is True  # GPC concerns advertising only


async def test_sec_gpc_header_on_tracking_endpoints(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    for _ in range(2):
        resp = await client.post("/v1/track", json=track("h1"), auth=workspace.write_auth, headers={"Sec-GPC": "1"})
        assert resp.status_code == 200, resp.text
    await send(client, workspace, track("h1"), headers={"Sec-GPC": "1"})
    await send(client, workspace, track("h2"), headers={"Sec-GPC": "0"})
    pid = await profile_id(client, workspace, "h1", "anonymous_id")
    assert [(r["method"], r["status"]) for r in await history(client, workspace, pid)] == [("gpc", "denied")]
    assert await history(client, workspace, await profile_id(client, workspace, "h2", "anonymous_id")) == []


async def test_category_preferences_are_recorded_once_per_change(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    prefs = {"consent": {"categoryPreferences": {"Advertising": True, "Analytics": False, "Unmapped": True,
                                                  "Functional": "yes"}}}
    await send(client, workspace, track("c1", prefs), track("c1", prefs))
    await send(client, workspace, track("c1", prefs))
    pid = await profile_id(client, workspace, "c1", "anonymous_id")
    records = await history(client, workspace, pid)
    assert sorted((r["purpose"], r["status"], r["method"]) for r in records) == [
        ("advertising", "granted", "consent_manager"), ("analytics", "denied", "consent_manager"),
    ]
    now = await state(client, workspace, pid)
    assert now[("advertising", "ads")]["allowed"] is True and now[("analytics", "web")]["allowed"] is False
    # A change is recorded: the grant withdrawn.
    await send(client, workspace, track("c1", {"consent": {"categoryPreferences": {"advertising": False}}},
                                        timestamp="2026-12-02T10:00:00Z"))
    records = await history(client, workspace, pid)
    assert len(records) == 3 and records[0]["status"] == "withdrawn" and records[0]["purpose"] == "advertising"
    assert (await state(client, workspace, pid))[("advertising", "ads")]["allowed"] is False
    # GPC beats a grant in the same message (the stricter signal).
    await send(client, workspace, track("c2", {"gpc": True, "consent": {"categoryPreferences": {"Advertising": True}}}))
    both = await history(client, workspace, await profile_id(client, workspace, "c2", "anonymous_id"))
    assert [(r["purpose"], r["method"], r["status"]) for r in both] == [("advertising", "gpc", "denied")]


async def test_signals_on_every_parser_path(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    prefs = {"consent": {"categoryPreferences": {"Advertising": True}}}
    # identify (the general fast path), a numeric id (the plain path), a batch-level context.
    await send(client, workspace, {"type": "identify", "userId": "p1", "traits": {"plan": "pro"}, "context": prefs,
                                   "messageId": "m-p1"})
    await send(client, workspace, {"type": "track", "event": "E", "userId": 42, "context": prefs, "messageId": "m-42"})
    resp = await client.post("/v1/batch", json={"batch": [{"type": "page", "anonymousId": "p3"}], "context": prefs},
                             auth=workspace.write_auth)
    assert resp.status_code == 200 and resp.json()["accepted"] == 1
    for value, type_ in (("p1", "user_id"), ("42", "user_id"), ("p3", "anonymous_id")):
        records = await history(client, workspace, await profile_id(client, workspace, value, type_))
        assert [(r["purpose"], r["status"]) for r in records] == [("advertising", "granted")], value


async def test_replayed_messages_record_nothing_new(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    msg = {"type": "identify", "userId": "r1", "messageId": "same", "context": {"gpc": True}}
    await send(client, workspace, msg)
    again = await send(client, workspace, msg)
    assert again["duplicates"] == 1
    assert len(await history(client, workspace, await profile_id(client, workspace, "r1"))) == 1


async def test_signals_stay_in_their_workspace(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, track("w1", {"gpc": True}))
    await send(client, other_workspace, track("w1"))
    theirs = await profile_id(client, other_workspace, "w1", "anonymous_id")
    assert await history(client, other_workspace, theirs) == []
