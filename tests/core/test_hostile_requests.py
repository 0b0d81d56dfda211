"""Requests that used to be 500s on the admin routes: NUL in query strings and JSON bodies,
integers past 64 bits and unpaired surrogates in bodies (the idempotency fingerprint), dates
past the range once in UTC, a database that is down, wrong methods, loose types, and an import
of blank lines that held the event loop. See app/core/guards.py and app/core/jsonrules.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.core.config import Settings
from app.core.db import Database, create_engine
from app.main import create_app
from tests.conftest import ADMIN_TOKEN, WorkspaceKeys, free_port, make_client

PROBLEM = "application/problem+json"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def a_profile(client: httpx.AsyncClient, ws: WorkspaceKeys) -> str:
    resp = await client.post("/v1/batch", json={"batch": [{"type": "identify", "userId": "p", "traits": {"a": 1}}]},
                             auth=ws.write_auth)
    assert resp.json()["accepted"] == 1
    return (await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": "p"},
                             headers=ws.admin_headers)).json()["id"]


@pytest.mark.parametrize("path", ["/v1/events?event=%00", "/v1/profiles?where=traits.a:eq:%00",
                                  "/v1/profiles/lookup?type=user_id&value=a%00b", "/v1/computed-traits/%00"])
async def test_nul_in_query_or_path_is_400(client: httpx.AsyncClient, workspace: WorkspaceKeys, path: str) -> None:
    """Reproducer 8."""
    resp = await client.get(path, headers=workspace.admin_headers)
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["code"] == "bad_character"


async def test_out_of_range_date_filters_are_422(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Reproducer 9: year 1 at +01:00 is before year 1 in UTC."""
    for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        resp = await client.get("/v1/events", params={"since": since}, headers=workspace.admin_headers)
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["pointer"] == "/since"
    ok = await client.get("/v1/events", params={"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"},
                          headers=workspace.admin_headers)
    assert ok.status_code == 200, ok.text


BODIES = {
    "nul": (b'{"name": "a\\u0000b"}', "bad_character"),
    "lone_surrogate": (b'{"name": "a\\ud800"}', "bad_character"),
    "integer_past_64_bits": (b'{"name": "a", "n": 18446744073709551616}', "bad_number"),
    "infinity": (b'{"name": "a", "n": 1e400}', "bad_number"),
    "nan_literal": (b'{"name": "a", "n": NaN}', "malformed_json"),
    "invalid_utf8": (b'{"name": "a\xff"}', "bad_encoding"),
    "deep": (b'{"name": ' + b"[" * 100 + b"]" * 100 + b"}", "too_deep"),
}


@pytest.mark.parametrize("body", sorted(BODIES))
async def test_bad_json_bodies_on_admin_routes_are_400(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, body: str
) -> None:
    """Reproducers 10 and 11, on every route that takes a JSON body."""
    content, code = BODIES[body]
    profile_id = await a_profile(client, workspace)
    routes = [
        ("POST", "/v1/computed-traits", workspace.admin_headers),
        ("PATCH", f"/v1/profiles/{profile_id}", {**workspace.admin_headers, "Idempotency-Key": "k1"}),
        ("PATCH", "/v1/workspace", workspace.admin_headers),
        ("PUT", "/v1/identity/settings", workspace.admin_headers),
        ("POST", "/v1/workspaces", ADMIN),
        ("POST", "/v1/keys", workspace.admin_headers),
    ]
    for method, path, headers in routes:
        resp = await client.request(method, path, content=content,
                                    headers={**headers, "Content-Type": "application/json"})
        assert resp.status_code == 400, (method, path, resp.text)
        assert resp.headers["content-type"] == PROBLEM
        assert resp.json()["code"] == code, (method, path, resp.json())


async def test_patch_profile_keeps_64_bit_integers(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    profile_id = await a_profile(client, workspace)
    body = {"set": {"max": 2**63 - 1, "emoji": "\U0001F600"}}
    headers = {**workspace.admin_headers, "Idempotency-Key": "k2"}
    first = await client.patch(f"/v1/profiles/{profile_id}", json=body, headers=headers)
    again = await client.patch(f"/v1/profiles/{profile_id}", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert again.json() == first.json()
    assert first.json()["traits"]["max"] == 2**63 - 1


async def test_workspace_rate_limit_takes_numbers_only(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    for wrong in (False, True, "5"):
        resp = await client.patch("/v1/workspace", json={"ingest_rate_limit_per_second": wrong},
                                  headers=workspace.admin_headers)
        assert resp.status_code == 422, (wrong, resp.text)
    for right in (5, 2.5, None):
        resp = await client.patch("/v1/workspace", json={"ingest_rate_limit_per_second": right},
                                  headers=workspace.admin_headers)
        assert resp.status_code == 200, (right, resp.text)
        assert resp.json()["ingest_rate_limit_per_second"] == right


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PATCH", "/v1/profiles/lookup", "GET, HEAD"),
    ("DELETE", "/v1/profiles/merge", "POST"),
    ("PUT", "/v1/computed-traits", "GET, HEAD, POST"),
    ("DELETE", "/v1/workspace", "GET, HEAD, PATCH"),
    ("POST", "/v1/keys/00000000-0000-0000-0000-000000000000", "DELETE"),
    ("GET", "/v1/batch", "POST"),
    ("PUT", "/v1/identity/settings", None),
    ("DELETE", "/v1/identity/settings", "GET, HEAD, PUT"),
    ("POST", "/healthz", "GET, HEAD"),
])
async def test_wrong_method_is_405_with_every_allowed_method(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, method: str, path: str, allow: str | None
) -> None:
    resp = await client.request(method, path, headers=workspace.admin_headers)
    if allow is None:  # the method exists on that path
        assert resp.status_code != 405, resp.text
        return
    assert resp.status_code == 405, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["allow"] == allow


async def test_database_down_is_503_with_retry_after(settings: Settings) -> None:
    """Reproducer 12: every route that needs the database, the hot path included, and /readyz."""
    down_url = f"postgresql+asyncpg://clientele:x@127.0.0.1:{free_port()}/nothing"
    application = create_app(settings)
    application.state.db = Database(create_engine(down_url, settings), settings)
    try:
        async with make_client(application) as c:
            requests = [
                ("POST", "/v1/batch", {"json": {"batch": [{"type": "track", "userId": "u", "event": "e"}]},
                                       "auth": ("cl_wk_x", "")}),
                ("POST", "/v1/track", {"json": {"userId": "u", "event": "e"}, "auth": ("cl_wk_x", "")}),
                ("GET", "/v1/profiles", {"headers": {"Authorization": "Bearer cl_sk_x"}}),
                ("GET", "/v1/events", {"headers": {"Authorization": "Bearer cl_sk_x"}}),
                ("POST", "/v1/workspaces", {"json": {"name": "x"}, "headers": ADMIN}),
                ("GET", "/readyz", {}),
            ]
            for method, path, kwargs in requests:
                resp = await c.request(method, path, **kwargs)
                assert resp.status_code == 503, (path, resp.status_code, resp.text)
                assert resp.headers["content-type"] == PROBLEM
                assert int(resp.headers["retry-after"]) > 0, path
            assert (await c.get("/healthz")).status_code == 200
    finally:
        await application.state.db.dispose()


async def test_an_import_of_blank_lines_does_not_hold_the_event_loop(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    """30 MB of blank lines held the loop for 8 s: /healthz now answers while it runs."""
    body = b"\n" * (30 * 1024 * 1024)
    started = asyncio.Event()

    async def stream():
        started.set()
        yield body

    upload = asyncio.create_task(client.post(
        "/v1/imports/events", content=stream(), headers={**workspace.admin_headers, "Content-Type": "application/x-ndjson"}
    ))
    await started.wait()
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert not upload.done(), "the import finished before /healthz was served: nothing shows the loop was free"
    resp = await upload
    assert resp.status_code == 400 and resp.json()["code"] == "empty_body", resp.text


async def test_import_numbers_follow_the_tracking_rules(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Reproducers 5 (NDJSON) and 6 (CSV): a 400-digit revenue, an integer past 64 bits, a
    sentAt at the end of time: rows refused alone, the others imported."""
    csv = ("user_id,event,revenue\nu1,Order Completed," + "9" * 400 + "\nu2,Order Completed,12.5\n"
           "u3,Order Completed,9223372036854775808\nu4,Order Completed,1e400\n")
    resp = await client.post("/v1/imports/events", content=csv,
                             headers={**workspace.admin_headers, "Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 1, body
    assert sorted((r["row"], r["code"]) for r in body["rejected"]) == [(1, "bad_number"), (3, "bad_number"),
                                                                        (4, "bad_number")]
    ndjson = (b'{"type":"track","userId":"n1","event":"e","timestamp":"2024-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"}\n'
              b'{"userId":"n2","event":"e","properties":{"n":18446744073709551616}}\n'
              b'{"userId":"n3","event":"e","properties":{"s":"\\ud800"}}\n'
              b'{"userId":"n4","event":"e"}\n')
    resp = await client.post("/v1/imports/events", content=ndjson,
                             headers={**workspace.admin_headers, "Content-Type": "application/x-ndjson"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 1, body
    assert sorted((r["row"], r["code"]) for r in body["rejected"]) == [(1, "bad_timestamp"), (2, "bad_number"),
                                                                        (3, "bad_character")]
