"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs too much on the ingest path).

- RequestContextMiddleware: X-Request-ID in and out, access log, Prometheus metrics, and the
  last line of defence that turns an unexpected exception into a 500 problem.
- BodySizeLimitMiddleware: 413 problem for bodies over the limit of their route, whether the
  size is announced by Content-Length or only discovered while streaming.
- DirectRoutes: the hottest route (POST /v1/batch) served by its handler without FastAPI's
  routing, dependency and exception layers, inside the two middlewares above.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge, problem_response
from app.core.logging import reset_request_id, set_request_id

log = logging.getLogger("clientele.access")

REQUESTS = Counter(
    "clientele_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "clientele_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# The request's workspace, once authentication knows it (request.state.workspace_id): the
# access log names it.
WORKSPACE_STATE = "workspace_id"

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


ROUTE_PATH = "clientele.route_path"  # set by DirectRoutes for the routes it serves


def route_template(scope: Scope) -> str:
    """The matched route's full path template (`/v1/profiles/{profile_id}`), or "unmatched".

    FastAPI keeps the route object of the router it was declared on in `scope["route"]`, whose
    path lacks the prefixes it was included under; the full template is on FastAPI's
    per-request route context."""
    direct = scope.get(ROUTE_PATH)
    if direct is not None:
        return direct
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    return path or "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = set_request_id(request_id)
        status = 500
        started = False
        sent = 0
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started, sent
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not started:
                response = problem_response(
                    status=500,
                    code="internal_error",
                    title="Internal Server Error",
                    detail="An unexpected error occurred. Quote the request id when reporting it.",
                    instance=scope.get("path"),
                )
                await response(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - t0
            route_path = route_template(scope)
            method = scope.get("method", "")
            REQUESTS.labels(method, route_path, str(status)).inc()
            LATENCY.labels(method, route_path).observe(elapsed)
            workspace = scope.get("state", {}).get(WORKSPACE_STATE)  # set by authentication
            log.info(
                "request",
                extra={
                    "method": method,
                    "path": scope.get("path"),
                    "route": route_path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "bytes": sent,
                    "workspace_id": str(workspace) if workspace is not None else None,
                },
            )
            reset_request_id(token)


class _BodyTooLarge(PayloadTooLarge):
    pass


class BodySizeLimitMiddleware:
    """`limits` maps a path prefix to its byte limit; the first matching prefix wins."""

    def __init__(self, app: ASGIApp, *, default: int, limits: Sequence[tuple[str, Callable[[], int] | int]] = ()) -> None:
        self.app = app
        self.default = default
        self.limits = list(limits)

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit() if callable(limit) else limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await problem_response(
                        status=413, code="payload_too_large", title="Payload Too Large",
                        detail=f"The request body has {declared} bytes; this endpoint accepts at most {limit}.",
                        instance=scope.get("path"),
                    )(scope, receive, send)
                    return
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(f"The request body exceeds the limit of {limit} bytes for this endpoint.")
            return message

        await self.app(scope, limited_receive, send)


DirectHandler = Callable[[Request], Awaitable[Response | None]]


class DirectRoutes:
    """Serve a few routes straight from their handler: `routes` maps (method, path) to the
    handler (an async function of the request that returns the response, or None to leave
    the request to the route, which then gets the body the handler read) and the route that
    declares it on the FastAPI router.

    On the ingest hot path FastAPI's own layers (exception middleware, router, per-request
    dependency solving, endpoint wrappers) cost about a sixth of the server's CPU. The route
    stays declared, so the OpenAPI document describes it and any request this does not take
    (another method, a path behind a root_path) still reaches it. The handler's exceptions get
    the app's own exception handlers, so its errors are the same problem documents either way,
    and the declared route names the request in the metrics and the access log."""

    def __init__(self, app: ASGIApp, *, routes: Mapping[tuple[str, str], tuple[DirectHandler, Any]]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if direct is None:
            await self.app(scope, receive, send)
            return
        handler, scope["route"] = direct
        scope[ROUTE_PATH] = scope["path"]
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            on_error = _exception_handler(scope["app"].exception_handlers, exc)
            if on_error is None:
                raise  # RequestContextMiddleware turns it into a 500 problem
            response = await on_error(request, exc)
        if response is None:  # declined: the route answers it, with the body the handler read
            del scope["route"], scope[ROUTE_PATH]
            await self.app(scope, _replay_body(await request.body(), receive), send)
            return
        await response(scope, receive, send)


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _exception_handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
