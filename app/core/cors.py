"""CORS for the public tracking endpoints, and for nothing else.

A web page sends its events with the workspace's write key (it ships in the page), so the
tracking endpoints (`/v1/batch`, `/v1/track`, ...) must answer browsers from other origins.
Everything else takes a secret key, which never belongs in a browser: those routes never
answer cross-origin (no CORS headers; a preflight to them is refused like any OPTIONS).

- A preflight carries no key, so it cannot know the workspace: it is answered for any origin
  (POST, the headers the SDKs send, no credentials). The request itself is checked against the
  workspace's allowed origins by the ingest handler (403 `origin_not_allowed`, nothing stored).
- Responses to a tracking request with an `Origin` echo that origin (never `*` with
  credentials: `Access-Control-Allow-Credentials` is never sent, cookies play no part).
- A request without `Origin` (server SDKs, curl) passes through untouched: on the hot path
  this costs a set lookup and a scan of the request's headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ANY_ORIGIN = "*"
ALLOWED_METHODS = b"POST, OPTIONS"
ALLOWED_HEADERS = b"Authorization, Content-Type, Content-Encoding, X-Request-ID"
EXPOSED_HEADERS = b"X-Request-ID, Retry-After"
PREFLIGHT_MAX_AGE = b"86400"


class PublicCorsMiddleware:
    def __init__(self, app: ASGIApp, *, paths: Iterable[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
                break
        if scope["method"] == "OPTIONS":
            await self._preflight(origin, send)
            return
        if origin is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", EXPOSED_HEADERS),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, origin: bytes | None, send: Send) -> None:
        headers = [(b"allow", ALLOWED_METHODS), (b"content-length", b"0")]
        if origin is not None:
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", ALLOWED_HEADERS),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
                (b"vary", b"Origin"),
            ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def normalize_origin(value: str) -> str:
    """`*`, or a web origin `scheme://host[:port]` in the form browsers send it (lower case, no
    default port, no path). Raises ValueError otherwise."""
    value = value.strip()
    if value == ANY_ORIGIN:
        return value
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin such as https://shop.example.com (or *).")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} is not an origin: no path, query or user, only scheme://host[:port].")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port.") from None
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}[scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def origin_allowed(allowed: Iterable[str], origin: str) -> bool:
    allowed = list(allowed)
    return ANY_ORIGIN in allowed or origin.lower() in allowed
