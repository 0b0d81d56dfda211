"""Groups (accounts): what Segment `group` calls wrote, read back with traits and members."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys

PROBLEM = "application/problem+json"


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, *batch: dict) -> None:
    resp = await client.post("/v1/batch", json={"batch": list(batch)}, auth=ws.write_auth)
    assert resp.status_code == 200 and not resp.json()["rejected"], resp.text


async def profile_id(client: httpx.AsyncClient, ws: WorkspaceKeys, user_id: str) -> str:
    resp = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": user_id}, headers=ws.admin_headers)
    return resp.json()["id"]


def group(user_id: str, group_id: str, **traits) -> dict:
    return {"type": "group", "userId": user_id, "groupId": group_id, "traits": traits}


async def test_group_traits_and_members(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, group("ann", "acme", name="Acme", plan="free"), group("bob", "acme"),
               group("ann", "globex", name="Globex"))
    await send(client, workspace, group("cid", "acme", plan="enterprise", seats=40))  # later traits win key by key
    ann, bob, cid = [await profile_id(client, workspace, u) for u in ("ann", "bob", "cid")]

    acme = await client.get("/v1/groups/acme", headers=workspace.admin_headers)
    assert acme.status_code == 200, acme.text
    body = acme.json()
    assert body["group_id"] == "acme"
    assert body["traits"] == {"name": "Acme", "plan": "enterprise", "seats": 40}
    assert body["member_count"] == 3
    assert sorted(m["profile_id"] for m in body["members"]) == sorted([ann, bob, cid])
    assert body["members_next_cursor"] is None

    listed = (await client.get("/v1/groups", headers=workspace.admin_headers)).json()
    assert [(g["group_id"], g["member_count"]) for g in listed["data"]] == [("acme", 3), ("globex", 1)]

    of_ann = (await client.get(f"/v1/profiles/{ann}/groups", headers=workspace.admin_headers)).json()
    assert [(g["group_id"], g["traits"].get("name")) for g in of_ann["data"]] == [("acme", "Acme"), ("globex", "Globex")]
    assert all(g["joined_at"] for g in of_ann["data"])
    of_bob = (await client.get(f"/v1/profiles/{bob}/groups", headers=workspace.admin_headers)).json()
    assert [g["group_id"] for g in of_bob["data"]] == ["acme"]


async def test_keyset_pages_cover_everything_once(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, *[group(f"u{i}", f"g{i:02d}") for i in range(7)],
               *[group(f"m{i}", "big") for i in range(5)], *[group("m0", f"g{i:02d}") for i in range(7)])

    async def walk(path: str, key: str, limit: int) -> list[str]:
        seen, cursor = [], None
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(path, params=params, headers=workspace.admin_headers)).json()
            assert len(page["data"]) <= limit
            seen += [item[key] for item in page["data"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return seen

    groups = await walk("/v1/groups", "group_id", 3)
    assert groups == sorted(groups) and len(groups) == len(set(groups)) == 8
    members = await walk("/v1/groups/big/members", "profile_id", 2)
    assert members == sorted(members) and len(set(members)) == 5
    m0 = await profile_id(client, workspace, "m0")
    assert await walk(f"/v1/profiles/{m0}/groups", "group_id", 3) == ["big", *[f"g{i:02d}" for i in range(7)]]
    detail = (await client.get("/v1/groups/big", headers=workspace.admin_headers)).json()
    assert detail["member_count"] == 5 and len(detail["members"]) == 5

    bad = await client.get("/v1/groups", params={"cursor": "not-a-cursor"}, headers=workspace.admin_headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    bad = await client.get("/v1/groups/big/members", params={"cursor": "WyJ4Il0"}, headers=workspace.admin_headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"  # ["x"] is no profile id


async def test_unknown_group_or_profile_is_404(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    for path in ("/v1/groups/nope", "/v1/groups/nope/members",
                 "/v1/profiles/00000000-0000-0000-0000-000000000000/groups"):
        resp = await client.get(path, headers=workspace.admin_headers)
        assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM, path
    assert (await client.get("/v1/groups", headers=workspace.admin_headers)).json() == {"data": [], "next_cursor": None}


async def test_group_ids_with_spaces_and_unicode(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, group("ann", "Team Zürich #1", city="Zürich"))
    resp = await client.get("/v1/groups/Team%20Z%C3%BCrich%20%231", headers=workspace.admin_headers)
    assert resp.status_code == 200 and resp.json()["traits"] == {"city": "Zürich"}


async def test_memberships_follow_a_merge(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, {"type": "group", "anonymousId": "cookie-1", "groupId": "acme"})
    anonymous = (await client.get("/v1/profiles/lookup", params={"type": "anonymous_id", "value": "cookie-1"},
                                  headers=workspace.admin_headers)).json()["id"]
    await send(client, workspace, group("ann", "globex"))
    ann = await profile_id(client, workspace, "ann")
    merged = await client.post("/v1/profiles/merge", json={"profile_ids": [anonymous, ann], "survivor_id": ann},
                               headers=workspace.admin_headers)
    assert merged.status_code == 200, merged.text
    for pid in (ann, anonymous):  # the absorbed id answers with the survivor's groups
        groups = (await client.get(f"/v1/profiles/{pid}/groups", headers=workspace.admin_headers)).json()["data"]
        assert [g["group_id"] for g in groups] == ["acme", "globex"]
    members = (await client.get("/v1/groups/acme/members", headers=workspace.admin_headers)).json()["data"]
    assert [m["profile_id"] for m in members] == [ann]


async def test_workspaces_never_see_each_others_groups(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, group("ann", "acme", owner="first"))
    await send(client, other_workspace, group("zed", "acme", owner="second"), group("zed", "only-other"))
    ann = await profile_id(client, workspace, "ann")
    zed = await profile_id(client, other_workspace, "zed")

    mine = (await client.get("/v1/groups/acme", headers=workspace.admin_headers)).json()
    theirs = (await client.get("/v1/groups/acme", headers=other_workspace.admin_headers)).json()
    assert (mine["traits"], [m["profile_id"] for m in mine["members"]]) == ({"owner": "first"}, [ann])
    assert (theirs["traits"], [m["profile_id"] for m in theirs["members"]]) == ({"owner": "second"}, [zed])
    assert [g["group_id"] for g in (await client.get("/v1/groups", headers=workspace.admin_headers)).json()["data"]] == ["acme"]
    for path in ("/v1/groups/only-other", "/v1/groups/only-other/members", f"/v1/profiles/{zed}/groups"):
        assert (await client.get(path, headers=workspace.admin_headers)).status_code == 404, path
    # A write key reads nothing.
    denied = await client.get("/v1/groups", headers={"Authorization": f"Bearer {workspace.write_key}"})
    assert denied.status_code == 403
