"""Plain async factories for the decision tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import WorkspaceKeys


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, *batch: dict) -> dict:
    resp = await client.post("/v1/batch", json={"batch": list(batch)}, auth=ws.write_auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def person(client: httpx.AsyncClient, ws: WorkspaceKeys, user_id: str, *, consent: bool = True, **traits: Any) -> str:
    """A profile; with `consent`, one that agreed to personalisation (web offers need it)."""
    await send(client, ws, {"type": "identify", "userId": user_id, "traits": traits})
    resp = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": user_id}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    pid = resp.json()["id"]
    if consent:
        await grant(client, ws, pid, "personalization")
    return pid


async def grant(client: httpx.AsyncClient, ws: WorkspaceKeys, pid: str, purpose: str, status: str = "granted",
                **fields: Any) -> dict:
    resp = await client.post(f"/v1/profiles/{pid}/consents", json={"purpose": purpose, "status": status, **fields},
                             headers=ws.admin_headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def offer(client: httpx.AsyncClient, ws: WorkspaceKeys, name: str, **fields: Any) -> dict:
    body = {"name": name, "channels": ["web"], "content": {"headline": name}, **fields}
    resp = await client.post("/v1/offers", json=body, headers=ws.admin_headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def placement(client: httpx.AsyncClient, ws: WorkspaceKeys, name: str = "banner", **fields: Any) -> dict:
    body = {"name": name, "channel": "web", "exploration": "off", **fields}
    resp = await client.post("/v1/placements", json=body, headers=ws.admin_headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def decide(client: httpx.AsyncClient, ws: WorkspaceKeys, profile_id: str, placement: str = "banner",
                 **fields: Any) -> dict:
    resp = await client.post("/v1/decisions", json={"profile_id": profile_id, "placement": placement, **fields},
                             headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()
