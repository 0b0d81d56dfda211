"""Authentication and authorisation: missing/unknown/revoked keys, scopes, workspace isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, WorkspaceKeys

PROBLEM = "application/problem+json"


async def test_create_workspace_requires_instance_admin_token(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/workspaces", json={"name": "x"})
    wrong = await client.post("/v1/workspaces", json={"name": "x"}, headers={"Authorization": "Bearer nope"})
    for resp in (missing, wrong):
        assert resp.status_code == 401
        assert resp.headers["content-type"] == PROBLEM
        assert resp.json()["code"] == "unauthorized"
        assert "www-authenticate" in resp.headers


async def test_create_workspace_returns_working_keys(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    assert workspace.write_key.startswith("cl_wk_")
    assert workspace.secret_key.startswith("cl_sk_")
    resp = await client.get("/v1/workspace", headers=workspace.admin_headers)
    assert resp.status_code == 200
    assert resp.json()["id"] == workspace.workspace_id


@pytest.mark.parametrize(
    "headers,detail",
    [
        ({}, "secret key is required"),
        ({"Authorization": "Bearer cl_sk_unknown"}, "unknown or revoked"),
        ({"Authorization": "Basic Zm9vOg=="}, "Bearer"),
        ({"Authorization": "Token abc"}, "Bearer"),
    ],
)
async def test_missing_or_unknown_key_is_401(client: httpx.AsyncClient, workspace: WorkspaceKeys, headers, detail) -> None:
    resp = await client.get("/v1/keys", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["content-type"] == PROBLEM
    assert detail in resp.json()["detail"]


async def test_write_key_is_refused_on_read_routes(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.get("/v1/workspace", headers={"Authorization": f"Bearer {workspace.write_key}"})
    assert resp.status_code == 403
    assert "Write keys" in resp.json()["detail"]


async def test_scope_is_enforced(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    created = await client.post(
        "/v1/keys", json={"name": "analyst", "kind": "secret", "scopes": ["read"]}, headers=workspace.admin_headers
    )
    assert created.status_code == 201, created.text
    read_key = created.json()["key"]
    ok = await client.get("/v1/workspace", headers={"Authorization": f"Bearer {read_key}"})
    assert ok.status_code == 200
    denied = await client.get("/v1/keys", headers={"Authorization": f"Bearer {read_key}"})
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    assert "admin" in denied.json()["detail"]


async def test_revoked_key_gets_401(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    created = (await client.post("/v1/keys", json={"name": "temp", "scopes": ["admin"]}, headers=workspace.admin_headers)).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    revoked = await client.delete(f"/v1/keys/{created['id']}", headers=workspace.admin_headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = await client.get("/v1/keys", headers=headers)
    assert after.status_code == 401


async def test_keys_are_listed_without_secret_and_stored_hashed(client: httpx.AsyncClient, workspace: WorkspaceKeys, session) -> None:
    import sqlalchemy as sa

    resp = await client.get("/v1/keys", headers=workspace.admin_headers)
    assert resp.status_code == 200
    keys = resp.json()
    assert {k["kind"] for k in keys} == {"write", "secret"}
    assert all("key" not in k and "key_hash" not in k for k in keys)
    assert any(workspace.secret_key.startswith(k["prefix"]) for k in keys)
    stored = (await session.execute(sa.text("SELECT key_hash FROM api_key"))).scalars().all()
    assert workspace.secret_key not in stored and workspace.write_key not in stored


async def test_workspace_isolation_on_keys(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    theirs = (await client.get("/v1/keys", headers=other_workspace.admin_headers)).json()
    mine = (await client.get("/v1/keys", headers=workspace.admin_headers)).json()
    assert not {k["id"] for k in theirs} & {k["id"] for k in mine}
    # Workspace A cannot revoke workspace B's key: it does not exist for A.
    resp = await client.delete(f"/v1/keys/{theirs[0]['id']}", headers=workspace.admin_headers)
    assert resp.status_code == 404
    still = (await client.get("/v1/keys", headers=other_workspace.admin_headers)).json()
    assert all(k["revoked_at"] is None for k in still)
    ws = (await client.get("/v1/workspace", headers=workspace.admin_headers)).json()
    assert ws["id"] == workspace.workspace_id != other_workspace.workspace_id


async def test_workspace_id_in_body_is_rejected(client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys) -> None:
    resp = await client.post(
        "/v1/keys", json={"name": "x", "workspace_id": other_workspace.workspace_id}, headers=workspace.admin_headers
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["pointer"] == "/workspace_id"


async def test_admin_token_is_not_a_workspace_key(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/keys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 401
