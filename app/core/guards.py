"""Pure ASGI guards in front of the routes (none of them runs on POST /v1/batch, which
core.middleware.DirectRoutes serves before they see it).

- InputGuard: a NUL in the path or query string, and a JSON body that breaks the rules of
  app.core.jsonrules (NUL, unpaired surrogate, invalid UTF-8, integer past 64 bits, number
  past a double, nesting past 64 levels, NaN/Infinity) are a 400 problem before any route
  sees them: PostgreSQL, orjson and the idempotency fingerprint cannot take them, and a route
  should never have to think about it. The tracking routes apply the same rules per message.
- MethodGuard: a path that exists but not for this method is a 405 whose `Allow` lists every
  method of that path. Starlette answers from the first route that matches the path only, and
  a static path (`/v1/profiles/lookup`) was shadowed by a parameter one (`/v1/profiles/{id}`)
  for the methods it lacks, which made `PATCH /v1/profiles/lookup` a 422.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.routing import Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import jsonrules
from app.core.errors import AppError, problem_response

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # FastAPI decodes a body without Content-Type as JSON


class InputGuard:
    """`own_rules`: path prefixes whose handlers apply the rules themselves, message by message
    or row by row (the tracking routes, imports, which also answer a wrong Content-Type)."""

    def __init__(self, app: ASGIApp, *, own_rules: Iterable[str] = ()) -> None:
        self.app = app
        rules = list(own_rules)
        self.own_paths = frozenset(r for r in rules if not r.endswith("/"))
        self.own_prefixes = tuple(r for r in rules if r.endswith("/"))  # "/v1/imports/": every path under it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if "\x00" in path or b"%00" in scope.get("query_string", b"") or b"\x00" in scope.get("query_string", b""):
            await self._refuse(scope, receive, send, "bad_character",
                               "The path or query string holds a NUL character (%00), which cannot be stored or searched for.")
            return
        if scope.get("method") not in _BODY_METHODS or (path in self.own_paths or path.startswith(self.own_prefixes)) or not _is_json(scope.get("headers", ())):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            try:
                message = await receive()
            except AppError as exc:  # the body limit, tripped while streaming
                await problem_response(
                    status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, instance=path,
                    headers=exc.headers,
                )(scope, receive, send)
                return
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body.strip():
            try:
                jsonrules.check_text(body)
                orjson.loads(body)  # JSON as RFC 8259 has it: no NaN or Infinity, which Python's json takes
            except jsonrules.JsonRuleError as exc:
                await self._refuse(scope, receive, send, exc.code, f"The JSON body is not acceptable: {exc.reason}.")
                return
            except orjson.JSONDecodeError as exc:
                await self._refuse(scope, receive, send, "malformed_json", f"The request body is not valid JSON: {exc}")
                return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, code: str, detail: str) -> None:
        await problem_response(
            status=400, code=code, title="Bad Request", detail=detail, instance=scope.get("path"),
        )(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class MethodGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[tuple[Any, int, frozenset[str]]] | None = None

    @staticmethod
    def _table(app: Any) -> list[tuple[Any, int, frozenset[str]]]:
        """(path regex, parameter count, methods) of every route: the documented operations
        (FastAPI keeps included routers behind its own route objects) and plain routes."""
        methods: dict[str, set[str]] = {}
        for path, operations in app.openapi().get("paths", {}).items():
            found = {m.upper() for m in operations if m.upper() in _HTTP_METHODS}
            methods.setdefault(path, set()).update(found | ({"HEAD"} if "GET" in found else set()))
        for route in app.routes:
            if isinstance(route, Route) and route.methods:
                methods.setdefault(route.path, set()).update(route.methods)
        table = []
        for path, allowed in methods.items():
            regex, _, convertors = compile_path(path)
            table.append((regex, len(convertors), frozenset(allowed)))
        return table

    def allowed(self, app: Any, path: str) -> frozenset[str] | None:
        """The methods of the most specific routes matching `path` (fewest parameters), or None."""
        if self._routes is None:
            self._routes = self._table(app)
        best: int | None = None
        methods: set[str] = set()
        for regex, params, route_methods in self._routes:
            if regex.match(path) is None:
                continue
            if best is None or params < best:
                best, methods = params, set(route_methods)
            elif params == best:
                methods |= route_methods
        return frozenset(methods) if best is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "")
        allowed = self.allowed(scope["app"], scope.get("path", ""))
        if allowed is not None and method not in allowed:
            await problem_response(
                status=405, code="method_not_allowed", title="Method Not Allowed",
                detail=f"Method {method} is not allowed on {scope.get('path')}; allowed: {', '.join(sorted(allowed))}.",
                instance=scope.get("path"), headers={"Allow": ", ".join(sorted(allowed))},
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)
