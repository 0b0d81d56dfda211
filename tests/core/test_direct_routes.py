"""POST /v1/batch is served by core.middleware.DirectRoutes, around FastAPI's router: the same
responses, errors, request ids, metrics and body limits as a routed request."""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from app.core.errors import BadRequest, install_error_handlers
from app.core.middleware import DirectRoutes, RequestContextMiddleware
from tests.conftest import WorkspaceKeys, make_client


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def routed() -> Response:
        return PlainTextResponse("routed")

    @app.get("/things")
    async def listed() -> Response:
        return PlainTextResponse("listed")

    async def direct(request: Request) -> Response:
        if request.headers.get("x-fail") == "problem":
            raise BadRequest("No things today.", code="no_things")
        if request.headers.get("x-fail") == "bug":
            raise RuntimeError("a bug")
        return PlainTextResponse("direct:" + (await request.body()).decode())

    declared = next(r for r in app.routes if getattr(r, "endpoint", None) is routed)
    app.add_middleware(DirectRoutes, routes={("POST", "/things"): (direct, declared)})
    app.add_middleware(RequestContextMiddleware)
    return app


async def test_the_listed_method_and_path_skip_the_router_and_others_do_not() -> None:
    async with make_client(_app()) as c:
        direct = await c.post("/things", content=b"x")
        assert (direct.status_code, direct.text) == (200, "direct:x")
        assert direct.headers["x-request-id"]
        assert (await c.get("/things")).text == "listed"
        assert (await c.post("/things/")).status_code in (307, 404)  # not the listed path: FastAPI decides


async def test_errors_get_the_apps_exception_handlers() -> None:
    async with make_client(_app()) as c:
        resp = await c.post("/things", headers={"x-fail": "problem"})
        assert resp.status_code == 400
        assert resp.headers["content-type"] == "application/problem+json"
        body = resp.json()
        assert (body["code"], body["detail"], body["instance"]) == ("no_things", "No things today.", "/things")
        assert resp.headers["x-request-id"]
        bug = await c.post("/things", headers={"x-fail": "bug"})
        assert bug.status_code == 500
        assert bug.json()["code"] == "internal_error"


async def test_batch_takes_the_direct_path(client: httpx.AsyncClient, workspace: WorkspaceKeys,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ingest import router

    # The declared endpoint would call direct_batch too: count calls of FastAPI's endpoint
    # runner instead, which only a routed request goes through.
    import fastapi.routing

    routed: list[str] = []
    real = fastapi.routing.run_endpoint_function

    async def spy(*, dependant, values, is_coroutine):  # type: ignore[no-untyped-def]
        routed.append(dependant.call.__name__)
        return await real(dependant=dependant, values=values, is_coroutine=is_coroutine)

    monkeypatch.setattr(fastapi.routing, "run_endpoint_function", spy)
    message = {"type": "track", "messageId": "d1", "userId": "u1", "event": "Viewed"}
    resp = await client.post("/v1/batch", json={"batch": [message]}, auth=workspace.write_auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1
    assert routed == []
    assert router.batch.__name__ == "batch"
    await client.post("/v1/track", json=message, auth=workspace.write_auth)
    assert routed == ["track"]  # the spy works: single-message routes still go through FastAPI


async def test_batch_errors_ids_metrics_and_limits_on_the_direct_path(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, settings
) -> None:
    resp = await client.post("/v1/batch", content=b"{nope", auth=workspace.write_auth,
                             headers={"x-request-id": "req-123"})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["x-request-id"] == "req-123"
    assert resp.json()["code"] == "malformed_json"
    assert resp.json()["instance"] == "/v1/batch"

    anonymous = await client.post("/v1/batch", json={"batch": []})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].lower().startswith("basic")

    limit = settings.ingest_max_batch_bytes
    big = orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"p": "x" * limit}}]})
    assert (await client.post("/v1/batch", content=big, auth=workspace.write_auth)).status_code == 413
    # Announced nothing (gzip) and over the limit once decompressed: still 413, from the handler.
    packed = gzip.compress(big)
    assert len(packed) < limit
    over = await client.post("/v1/batch", content=packed, auth=workspace.write_auth,
                             headers={"content-encoding": "gzip", "content-type": "application/json"})
    assert over.status_code == 413
    assert over.headers["content-type"] == "application/problem+json"

    # Named by the declared route's full path, as a routed request is.
    text = (await client.get("/metrics")).text
    assert 'clientele_http_requests_total{method="POST",route="/v1/batch",status="400"}' in text
    assert 'clientele_http_requests_total{method="POST",route="/v1/batch",status="413"}' in text
