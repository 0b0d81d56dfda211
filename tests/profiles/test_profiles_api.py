"""Profiles: lookup, list/filter/sort, patch, manual merge, split, ledger, identity settings."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, *batch: dict) -> dict:
    resp = await client.post("/v1/batch", json={"batch": list(batch)}, auth=ws.write_auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def lookup(client: httpx.AsyncClient, ws: WorkspaceKeys, type_: str, value: str) -> httpx.Response:
    return await client.get("/v1/profiles/lookup", params={"type": type_, "value": value}, headers=ws.admin_headers)


async def all_events(client: httpx.AsyncClient, ws: WorkspaceKeys) -> list[dict]:
    return (await client.get("/v1/events", params={"limit": 1000}, headers=ws.admin_headers)).json()["data"]


async def test_lookup_normalises_like_ingest(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await client.put("/v1/identity/settings", json={"default_region": "GB"}, headers=workspace.admin_headers)
    await send(client, workspace, {"type": "identify", "userId": "u1", "traits": {"email": " Ann@Example.COM ", "phone": "020 7946 0018"}})
    by_email = await lookup(client, workspace, "email", "ann@example.com")
    assert by_email.status_code == 200, by_email.text
    by_phone = await lookup(client, workspace, "phone", "+44 20 7946 0018")
    by_user = await lookup(client, workspace, "user_id", "u1")
    assert by_email.json()["id"] == by_phone.json()["id"] == by_user.json()["id"]
    assert {"type": "phone", "value": "+442079460018", "raw": "020 7946 0018"} in by_email.json()["identifiers"]
    assert (await lookup(client, workspace, "email", "nobody@example.com")).status_code == 404
    bad = await lookup(client, workspace, "email", "not-an-email")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_identifier"
    blocked = await lookup(client, workspace, "email", "test@test.com")
    assert blocked.status_code == 404 and "blocked" in blocked.json()["detail"]


async def test_blocked_values_never_link(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace,
               {"type": "identify", "userId": "a", "traits": {"email": "test@test.com"}},
               {"type": "identify", "userId": "b", "traits": {"email": "TEST@test.com"}})
    a, b = await lookup(client, workspace, "user_id", "a"), await lookup(client, workspace, "user_id", "b")
    assert a.json()["id"] != b.json()["id"]
    assert all(i["type"] != "email" for i in a.json()["identifiers"])
    # A workspace's own blocked values too.
    await client.put("/v1/identity/settings", json={"blocked_values": ["noreply@acme.com"]}, headers=workspace.admin_headers)
    await send(client, workspace,
               {"type": "identify", "userId": "c", "traits": {"email": "noreply@acme.com"}},
               {"type": "identify", "userId": "d", "traits": {"email": "NoReply@acme.com"}})
    c, d = await lookup(client, workspace, "user_id", "c"), await lookup(client, workspace, "user_id", "d")
    assert c.json()["id"] != d.json()["id"]


async def test_two_user_ids_conflict_is_recorded(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, {"type": "identify", "userId": "alice", "traits": {"email": "family@example.com"}})
    await send(client, workspace, {"type": "identify", "userId": "bob", "traits": {"email": "family@example.com"}})
    alice, bob = (await lookup(client, workspace, "user_id", "alice")).json(), (await lookup(client, workspace, "user_id", "bob")).json()
    assert alice["id"] != bob["id"]
    conflicts = (await client.get("/v1/identity/conflicts", headers=workspace.admin_headers)).json()
    assert len(conflicts) == 1
    assert conflicts[0]["identifier_type"] in ("email", "user_id")
    assert "user_id" in conflicts[0]["reason"]
    assert {conflicts[0]["profile_id"], conflicts[0]["other_profile_id"]} == {alice["id"], bob["id"]}


async def test_list_filter_sort_and_cursor(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    for i in range(7):
        await send(client, workspace, {"type": "identify", "userId": f"u{i}", "traits": {"plan": "pro" if i % 2 else "free", "age": 20 + i, "city": f"Town {i}"}})
    seen, cursor = [], None
    while True:
        params = {"where": ["traits.plan:eq:pro"], "sort": "-traits.age", "limit": 2} | ({"cursor": cursor} if cursor else {})
        resp = await client.get("/v1/profiles", params=params, headers=workspace.admin_headers)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seen += [p["traits"]["age"] for p in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [25, 23, 21]
    older = (await client.get("/v1/profiles", params={"where": ["traits.age:gte:24", "traits.city:contains:town"]}, headers=workspace.admin_headers)).json()
    assert sorted(p["traits"]["age"] for p in older["data"]) == [24, 25, 26]
    bad = await client.get("/v1/profiles", params={"where": ["traits.age:between:1"]}, headers=workspace.admin_headers)
    assert bad.status_code == 422 and bad.json()["code"] == "bad_filter"
    bad_field = await client.get("/v1/profiles", params={"where": ["age:eq:1"]}, headers=workspace.admin_headers)
    assert bad_field.status_code == 422


async def test_patch_traits_with_idempotency_key(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, {"type": "identify", "userId": "u1", "traits": {"plan": "free", "tmp": 1}})
    pid = (await lookup(client, workspace, "user_id", "u1")).json()["id"]
    body = {"set": {"plan": "pro"}, "set_once": {"plan": "ignored", "source": "ads"}, "unset": ["tmp"]}
    headers = {**workspace.admin_headers, "Idempotency-Key": "patch-1"}
    first = await client.patch(f"/v1/profiles/{pid}", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["traits"] == {"plan": "pro", "source": "ads"}
    await client.patch(f"/v1/profiles/{pid}", json={"set": {"plan": "enterprise"}}, headers=workspace.admin_headers)
    replay = await client.patch(f"/v1/profiles/{pid}", json=body, headers=headers)
    assert replay.json()["traits"] == {"plan": "pro", "source": "ads"}, "a replay returns the first response"
    current = (await client.get(f"/v1/profiles/{pid}", headers=workspace.admin_headers)).json()
    assert current["traits"]["plan"] == "enterprise", "and changes nothing"
    reused = await client.patch(f"/v1/profiles/{pid}", json={"set": {"x": 1}}, headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    bad = await client.patch(f"/v1/profiles/{pid}", json={"sett": {}}, headers=workspace.admin_headers)
    assert bad.status_code == 422


async def test_manual_merge_dry_run_then_merge_then_split_round_trip(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace,
               {"type": "identify", "anonymousId": "web-1", "traits": {"color": "red"}, "messageId": "w1"},
               {"type": "track", "anonymousId": "web-1", "event": "Viewed", "messageId": "w2"})
    await send(client, workspace,
               {"type": "identify", "userId": "crm-9", "traits": {"email": "x@example.com", "color": "blue"}, "messageId": "c1"},
               {"type": "track", "userId": "crm-9", "event": "Bought", "messageId": "c2"})
    web = (await lookup(client, workspace, "anonymous_id", "web-1")).json()
    crm = (await lookup(client, workspace, "user_id", "crm-9")).json()
    before_events = {e["message_id"]: e["profile_id"] for e in await all_events(client, workspace)}

    preview = await client.post("/v1/profiles/merge", json={"profile_ids": [web["id"], crm["id"]], "dry_run": True}, headers=workspace.admin_headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["merge_ids"] == [] and preview.json()["survivor_id"] == web["id"]
    assert {e["profile_id"] for e in await all_events(client, workspace)} == {web["id"], crm["id"]}, "dry run writes nothing"

    merged = (await client.post("/v1/profiles/merge", json={"profile_ids": [web["id"], crm["id"]]}, headers=workspace.admin_headers)).json()
    assert merged["traits"]["color"] == "blue", "most recent wins by default"
    assert {e["profile_id"] for e in await all_events(client, workspace)} == {web["id"]}
    ledger = (await client.get(f"/v1/profiles/{web['id']}/merges", headers=workspace.admin_headers)).json()
    assert len(ledger) == 1 and ledger[0]["rule"] == "manual" and ledger[0]["absorbed_id"] == crm["id"]
    assert (await lookup(client, workspace, "user_id", "crm-9")).json()["id"] == web["id"]

    split = await client.post(f"/v1/profiles/{crm['id']}/split", headers=workspace.admin_headers)
    assert split.status_code == 200, split.text
    assert split.json()["events_moved"] == 2 and split.json()["identifiers_moved"] == 2
    assert {e["message_id"]: e["profile_id"] for e in await all_events(client, workspace)} == before_events
    assert (await lookup(client, workspace, "user_id", "crm-9")).json()["id"] == crm["id"]
    assert (await client.get(f"/v1/profiles/{web['id']}", headers=workspace.admin_headers)).json()["traits"] == {"color": "red"}
    assert (await client.get(f"/v1/profiles/{crm['id']}", headers=workspace.admin_headers)).json()["traits"] == {"email": "x@example.com", "color": "blue"}
    ledger = (await client.get(f"/v1/profiles/{web['id']}/merges", headers=workspace.admin_headers)).json()
    assert ledger[0]["undone_at"] is not None
    again = await client.post(f"/v1/profiles/{crm['id']}/split", headers=workspace.admin_headers)
    assert again.status_code == 404


async def test_automatic_merge_writes_ledger_and_split_undoes_it(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, {"type": "identify", "userId": "u1", "messageId": "a"})
    await send(client, workspace, {"type": "page", "anonymousId": "phone", "name": "Home", "messageId": "b"})
    anon = (await lookup(client, workspace, "anonymous_id", "phone")).json()["id"]
    await send(client, workspace, {"type": "identify", "userId": "u1", "anonymousId": "phone", "messageId": "c"})
    user = (await lookup(client, workspace, "user_id", "u1")).json()["id"]
    ledger = (await client.get(f"/v1/profiles/{user}/merges", headers=workspace.admin_headers)).json()
    assert ledger[0]["rule"] == "identify" and ledger[0]["message_id"] == "c"
    assert ledger[0]["identifier_type"] == "anonymous_id" and ledger[0]["identifier_value"] == "phone"
    await client.post(f"/v1/profiles/{anon}/split", headers=workspace.admin_headers)
    events = {e["message_id"]: e["profile_id"] for e in await all_events(client, workspace)}
    assert events["b"] == anon and events["a"] == user


async def test_merge_refuses_two_user_ids(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, {"type": "identify", "userId": "a"}, {"type": "identify", "userId": "b"})
    a, b = (await lookup(client, workspace, "user_id", "a")).json()["id"], (await lookup(client, workspace, "user_id", "b")).json()["id"]
    resp = await client.post("/v1/profiles/merge", json={"profile_ids": [a, b]}, headers=workspace.admin_headers)
    assert resp.status_code == 409 and resp.json()["code"] == "identity_conflict"


async def test_merge_trait_strategies(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await client.put("/v1/identity/settings", json={"trait_strategies": {"orders": "sum", "tags": "union", "first_source": "oldest"}},
                     headers=workspace.admin_headers)
    await send(client, workspace, {"type": "identify", "anonymousId": "x", "traits": {"orders": 2, "tags": ["a"], "first_source": "ads"}})
    await send(client, workspace, {"type": "identify", "anonymousId": "y", "traits": {"orders": 3, "tags": ["b", "a"], "first_source": "email"}})
    x, y = (await lookup(client, workspace, "anonymous_id", "x")).json()["id"], (await lookup(client, workspace, "anonymous_id", "y")).json()["id"]
    merged = (await client.post("/v1/profiles/merge", json={"profile_ids": [x, y]}, headers=workspace.admin_headers)).json()
    assert merged["traits"] == {"orders": 5, "tags": ["a", "b"], "first_source": "ads"}


async def test_identity_settings_validation_and_scope(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    bad = await client.put("/v1/identity/settings", json={"default_region": "XX", "limits": {"email": 0}}, headers=workspace.admin_headers)
    assert bad.status_code == 422
    assert {e["pointer"] for e in bad.json()["errors"]} == {"/default_region", "/limits"}
    read_key = (await client.post("/v1/keys", json={"name": "r", "scopes": ["read"]}, headers=workspace.admin_headers)).json()["key"]
    denied = await client.put("/v1/identity/settings", json={"default_region": "GB"}, headers={"Authorization": f"Bearer {read_key}"})
    assert denied.status_code == 403
    current = (await client.get("/v1/identity/settings", headers={"Authorization": f"Bearer {read_key}"})).json()
    assert current["limits"]["user_id"] == 1 and "test@test.com" in current["blocked_values"]


async def test_profiles_are_isolated_between_workspaces(client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys) -> None:
    await send(client, other_workspace, {"type": "identify", "userId": "secret", "traits": {"email": "vip@example.com"}})
    theirs = (await lookup(client, other_workspace, "user_id", "secret")).json()["id"]
    assert (await lookup(client, workspace, "user_id", "secret")).status_code == 404
    assert (await client.get("/v1/profiles", headers=workspace.admin_headers)).json()["data"] == []
    assert (await client.patch(f"/v1/profiles/{theirs}", json={"set": {"x": 1}}, headers=workspace.admin_headers)).status_code == 404
    await send(client, workspace, {"type": "identify", "userId": "mine"})
    mine = (await lookup(client, workspace, "user_id", "mine")).json()["id"]
    cross = await client.post("/v1/profiles/merge", json={"profile_ids": [mine, theirs]}, headers=workspace.admin_headers)
    assert cross.status_code == 404
    assert (await client.get(f"/v1/profiles/{theirs}/merges", headers=workspace.admin_headers)).status_code == 404
    assert (await client.post(f"/v1/profiles/{theirs}/split", headers=workspace.admin_headers)).status_code == 404
    assert (await client.get("/v1/identity/conflicts", headers=workspace.admin_headers)).json() == []
