"""People seen for the first time take a short path; anything that links them does not."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys


async def profile_of(client: httpx.AsyncClient, ws: WorkspaceKeys, type_: str, value: str) -> str:
    resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": value}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


async def test_new_people_in_one_batch(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [
        # A: two messages, same identifiers, nobody else's: one new profile.
        {"type": "track", "messageId": "n1", "userId": "a", "anonymousId": "a-dev", "event": "E"},
        {"type": "track", "messageId": "n2", "userId": "a", "anonymousId": "a-dev", "event": "E"},
        # B's device is also in C's message: they are linked, whatever order they come in.
        {"type": "track", "messageId": "n3", "anonymousId": "shared-dev", "event": "E"},
        {"type": "identify", "messageId": "n4", "userId": "c", "anonymousId": "shared-dev"},
        # D: a user id and an email, both new: one profile.
        {"type": "identify", "messageId": "n5", "userId": "d", "traits": {"email": "D@Example.com"}},
    ]
    resp = await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)
    assert resp.status_code == 200 and resp.json()["accepted"] == 5, resp.text
    a = await profile_of(client, workspace, "user_id", "a")
    assert a == await profile_of(client, workspace, "anonymous_id", "a-dev")
    c = await profile_of(client, workspace, "user_id", "c")
    assert c == await profile_of(client, workspace, "anonymous_id", "shared-dev")
    d = await profile_of(client, workspace, "email", "d@example.com")
    assert d == await profile_of(client, workspace, "user_id", "d")
    assert len({a, c, d}) == 3
    events = (await client.get("/v1/events", params={"limit": 10}, headers=workspace.admin_headers)).json()["data"]
    by_message = {e["message_id"]: e["profile_id"] for e in events}
    assert by_message == {"n1": a, "n2": a, "n3": c, "n4": c, "n5": d}
    merges = (await client.get(f"/v1/profiles/{c}/merges", headers=workspace.admin_headers)).json()
    assert merges == [], "linked within the batch before any profile existed: nothing to merge"


async def test_a_newcomer_over_a_limit_is_not_waved_through(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.put(
        "/v1/identity/settings", json={"limits": {"email": 1}}, headers=workspace.admin_headers
    )
    assert resp.status_code == 200, resp.text
    message = {"type": "identify", "messageId": "x1", "userId": "e",
               "traits": {"email": "one@example.com"}, "context": {"traits": {"email": "two@example.com"}}}
    resp = await client.post("/v1/batch", json={"batch": [message]}, auth=workspace.write_auth)
    assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.text
    e = await profile_of(client, workspace, "user_id", "e")
    profile = (await client.get(f"/v1/profiles/{e}", headers=workspace.admin_headers)).json()
    emails = [i["value"] for i in profile["identifiers"] if i["type"] == "email"]
    assert len(emails) == 1, "the limit of one email held for a brand-new person too"
    conflicts = (await client.get("/v1/identity/conflicts", headers=workspace.admin_headers)).json()
    assert len(conflicts) == 1, "and the refused link was recorded"
