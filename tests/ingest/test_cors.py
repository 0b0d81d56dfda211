"""CORS: web pages send events with the write key from any allowed origin; nothing that takes a
secret key ever answers a browser from another origin."""

from __future__ import annotations

import httpx
import orjson
import pytest

from app.core.cors import normalize_origin
from tests.conftest import WorkspaceKeys

SHOP = "https://shop.example.com"
EVIL = "https://evil.example.net"
TRACK = {"batch": [{"type": "track", "userId": "u1", "event": "Viewed", "messageId": "cors-1"}]}


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/group", "/v1/alias"])
async def test_preflight_is_answered_without_credentials(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.options(path, headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert resp.status_code == 204
    assert resp.headers["access-control-allow-origin"] == SHOP
    assert "POST" in resp.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in resp.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "content-encoding"} <= allowed
    assert "access-control-allow-credentials" not in resp.headers
    assert "Origin" in resp.headers["vary"]
    # Not a preflight (no Origin): still no 405, and Allow says what the path takes.
    plain = await client.options(path)
    assert plain.status_code == 204 and plain.headers["allow"] == "POST, OPTIONS"
    assert "access-control-allow-origin" not in plain.headers


async def test_a_page_sends_events_from_an_allowed_origin(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    # analytics.js style: the write key in the body, text/plain to avoid a preflight.
    body = {**TRACK, "writeKey": workspace.write_key}
    resp = await client.post("/v1/batch", content=orjson.dumps(body),
                             headers={"Origin": SHOP, "Content-Type": "text/plain"})
    assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.text
    assert resp.headers["access-control-allow-origin"] == SHOP
    assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-credentials" not in resp.headers
    # Server SDKs send no Origin: no CORS headers at all.
    server = await client.post("/v1/batch", json=TRACK, auth=workspace.write_auth)
    assert server.status_code == 200 and "access-control-allow-origin" not in server.headers


async def test_workspace_origins_restrict_who_may_send(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    assert (await client.get("/v1/workspace", headers=workspace.admin_headers)).json()["cors_allowed_origins"] == ["*"]
    patched = await client.patch("/v1/workspace", json={"cors_allowed_origins": ["HTTPS://Shop.Example.com:443/", SHOP]},
                                 headers=workspace.admin_headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["cors_allowed_origins"] == [SHOP]

    refused = await client.post("/v1/batch", json=TRACK, auth=workspace.write_auth, headers={"Origin": EVIL})
    assert refused.status_code == 403 and refused.json()["code"] == "origin_not_allowed"
    assert EVIL in refused.json()["detail"]
    single = await client.post("/v1/track", json={"userId": "u1", "event": "E"}, auth=workspace.write_auth,
                               headers={"Origin": EVIL})
    assert single.status_code == 403
    events = (await client.get("/v1/events", headers=workspace.admin_headers)).json()["data"]
    assert events == []  # nothing stored from the refused origin

    allowed = await client.post("/v1/batch", json=TRACK, auth=workspace.write_auth, headers={"Origin": SHOP})
    assert allowed.status_code == 200 and allowed.json()["accepted"] == 1
    # No browser at all: the origin list does not apply.
    assert (await client.post("/v1/track", json={"userId": "u1", "event": "E"}, auth=workspace.write_auth)).status_code == 200

    none = await client.patch("/v1/workspace", json={"cors_allowed_origins": []}, headers=workspace.admin_headers)
    assert none.json()["cors_allowed_origins"] == []
    assert (await client.post("/v1/batch", json=TRACK, auth=workspace.write_auth, headers={"Origin": SHOP})).status_code == 403
    reset = await client.patch("/v1/workspace", json={"cors_allowed_origins": None}, headers=workspace.admin_headers)
    assert reset.json()["cors_allowed_origins"] == ["*"]
    assert (await client.post("/v1/batch", json=TRACK, auth=workspace.write_auth, headers={"Origin": EVIL})).status_code == 200


@pytest.mark.parametrize("bad", ["shop.example.com", "https://shop.example.com/path", "ftp://x.com", "https://",
                                 "https://user@x.com", "https://x.com:99999", "*.example.com"])
async def test_bad_origins_are_422(client: httpx.AsyncClient, workspace: WorkspaceKeys, bad: str) -> None:
    resp = await client.patch("/v1/workspace", json={"cors_allowed_origins": [bad]}, headers=workspace.admin_headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["pointer"] == "/cors_allowed_origins/0"


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/workspace"), ("GET", "/v1/profiles"), ("POST", "/v1/imports/events"), ("GET", "/v1/groups"),
])
async def test_secret_key_routes_never_answer_cross_origin(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, method: str, path: str
) -> None:
    preflight = await client.options(path, headers={"Origin": SHOP, "Access-Control-Request-Method": method,
                                                     "Access-Control-Request-Headers": "authorization"})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405
    resp = await client.request(method, path, headers={**workspace.admin_headers, "Origin": SHOP})
    assert "access-control-allow-origin" not in resp.headers


def test_origin_normalisation() -> None:
    assert normalize_origin("HTTP://LocalHost:3000") == "http://localhost:3000"
    assert normalize_origin("https://a.example:443") == "https://a.example"
    assert normalize_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normalize_origin(" * ") == "*"
