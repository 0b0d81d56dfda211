"""Every error is application/problem+json with a precise message."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import WorkspaceKeys

PROBLEM = "application/problem+json"


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:clientele:problem:{code}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nope"), 404, "not_found")
    assert "/v1/nope" in body["detail"]


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.put("/healthz"), 405, "method_not_allowed")
    assert "PUT" in body["detail"]


async def test_validation_error_has_json_pointers(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post("/v1/keys", json={"name": "", "kind": "root"}, headers=workspace.admin_headers)
    body = assert_problem(resp, 422, "validation_error")
    pointers = {e["pointer"] for e in body["errors"]}
    assert pointers == {"/name", "/kind"}
    assert all(e["location"] == "body" for e in body["errors"])


async def test_bad_path_parameter(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = assert_problem(await client.delete("/v1/keys/not-a-uuid", headers=workspace.admin_headers), 422, "validation_error")
    assert body["errors"][0]["location"] == "path"
    assert body["errors"][0]["pointer"] == "/key_id"


async def test_malformed_json_is_400(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post(
        "/v1/keys", content=b'{"name": ', headers={**workspace.admin_headers, "content-type": "application/json"}
    )
    assert_problem(resp, 400, "malformed_json")


async def test_oversized_body_is_413(client: httpx.AsyncClient, workspace: WorkspaceKeys, settings) -> None:
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    resp = await client.post("/v1/keys", content=big, headers={**workspace.admin_headers, "content-type": "application/json"})
    body = assert_problem(resp, 413, "payload_too_large")
    assert str(settings.max_body_bytes) in body["detail"]


async def test_oversized_streamed_body_without_length_is_413(client: httpx.AsyncClient, workspace: WorkspaceKeys, settings) -> None:
    async def chunks():
        yield b'{"name": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    resp = await client.post("/v1/keys", content=chunks(), headers={**workspace.admin_headers, "content-type": "application/json"})
    assert_problem(resp, 413, "payload_too_large")


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"


async def test_unexpected_exception_is_500_without_internals(app, client: httpx.AsyncClient, caplog) -> None:
    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM internals")

    resp = await client.get("/boom")
    body = assert_problem(resp, 500, "internal_error")
    assert "SELECT" not in resp.text and "Traceback" not in resp.text
    assert body["request_id"]


async def test_failed_commit_never_yields_2xx(client: httpx.AsyncClient, workspace: WorkspaceKeys, monkeypatch) -> None:
    """The session commits before the response is sent; if the commit fails, the client sees an error."""

    async def failing_commit(self) -> None:
        raise OperationalError("COMMIT", {}, Exception("connection lost during commit"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    resp = await client.post("/v1/keys", json={"name": "never"}, headers=workspace.admin_headers)
    assert resp.status_code == 503
    assert resp.headers["content-type"] == PROBLEM
    monkeypatch.undo()
    keys = (await client.get("/v1/keys", headers=workspace.admin_headers)).json()
    assert "never" not in {k["name"] for k in keys}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health(client: httpx.AsyncClient, path: str) -> None:
    from app.core.migrations import head_revisions

    resp = await client.get(path)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "migration": ",".join(sorted(head_revisions()))}


async def test_readyz_reports_unmigrated_database(app, client: httpx.AsyncClient, session: AsyncSession) -> None:
    import sqlalchemy as sa

    await session.execute(sa.text("UPDATE alembic_version SET version_num = 'old'"))
    await session.flush()
    body = assert_problem(await client.get("/readyz"), 503, "service_unavailable")
    assert "clientele migrate" in body["detail"]


async def test_readyz_without_database_is_503(settings) -> None:
    from app.core.config import Settings
    from app.core.db import Database, create_engine
    from app.main import create_app
    from tests.conftest import make_client

    broken = Settings(env="test", database_url="postgresql+asyncpg://nobody:x@127.0.0.1:1/none",
                      consent_secret=SecretStr("test-consent-secret"))
    application = create_app(broken)
    application.state.db = Database(create_engine(broken.database_url, broken))
    async with make_client(application) as c:
        assert_problem(await c.get("/readyz"), 503, "service_unavailable")
        live = await c.get("/healthz")  # liveness does not depend on the database
        assert live.status_code == 200 and live.json() == {"status": "ok", "migration": None}
    await application.state.db.dispose()


async def test_metrics_exposes_request_counts(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'clientele_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "clientele_http_request_duration_seconds_bucket" in text


def test_production_refuses_default_admin_token() -> None:
    from pydantic import ValidationError

    from app.core.config import Settings

    with pytest.raises(ValidationError, match="CLIENTELE_ADMIN_TOKEN"):
        Settings(env="production", database_url="postgresql://x/y")
