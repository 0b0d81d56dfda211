"""Errors are data: every error leaves the service as RFC 9457 application/problem+json.

Raise an `AppError` subclass anywhere (services included); the handlers here render it.
Validation errors carry the JSON pointer of each bad field; unexpected exceptions become a 500
with the request id and nothing else (the log has the traceback).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.logging import current_request_id

log = logging.getLogger("clientele.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:clientele:problem:"


class FieldError(BaseModel):
    """One invalid field of a request."""

    pointer: str = Field(description="JSON pointer (RFC 6901) to the field inside `location`.", examples=["/traits/email"])
    location: str = Field(description="body, query, path, header or cookie.", examples=["body"])
    detail: str = Field(description="What is wrong with the value.", examples=["Field required"])
    code: str = Field(description="Machine-readable reason.", examples=["missing"])


class Problem(BaseModel):
    """An RFC 9457 problem details object, the body of every error response."""

    type: str = Field(description="URI identifying the problem type.", examples=["urn:clientele:problem:not_found"])
    title: str = Field(description="Short summary of the problem type.", examples=["Not Found"])
    status: int = Field(description="HTTP status code.", examples=[404])
    detail: str = Field(description="Explanation specific to this occurrence.", examples=["No profile with id 0191..."])
    code: str = Field(description="Stable machine-readable error code.", examples=["not_found"])
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = Field(default=None, description="Correlates with X-Request-ID and the logs.")
    errors: list[FieldError] | None = Field(default=None, description="Each invalid field (validation errors).")


class AppError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.detail = detail or self.title
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad Request"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not Found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload Too Large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported Media Type"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_error", "Unprocessable Content"


class TooManyRequests(AppError):
    status, code, title = 429, "rate_limited", "Too Many Requests"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service Unavailable"


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None,
    errors: Sequence[FieldError] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "request_id": current_request_id(),
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    if extra:
        body.update(extra)
    return body


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body = problem_body(
        status=status, code=code, title=title, detail=detail, instance=instance, errors=errors, extra=extra
    )
    return Response(
        content=orjson.dumps(body), status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=dict(headers or {})
    )


def _pointer(loc: Sequence[Any]) -> tuple[str, str]:
    location = str(loc[0]) if loc else "body"
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc[1:]]
    return location, "/" + "/".join(parts) if parts else ""


def field_errors_from_pydantic(errors: Sequence[Mapping[str, Any]], *, location: str | None = None) -> list[FieldError]:
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if location is not None:
            loc = (location, *loc)
        where, pointer = _pointer(loc)
        out.append(FieldError(pointer=pointer, location=where, detail=str(err.get("msg", "invalid")), code=str(err.get("type", "invalid"))))
    return out


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


DATABASE_RETRY_AFTER_SECONDS = 5
# The database is down, restarting or unreachable (connection refused, reset, name not
# resolved, "the database system is starting up / shutting down").
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, socket.gaierror)


def _postgres_connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
    )


def is_connection_error(exc: BaseException) -> bool:
    """Whether this exception (or what SQLAlchemy wrapped) means the database cannot be reached."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        exc = getattr(orig, "__cause__", None) or orig  # the adapter wraps the asyncpg error
    return isinstance(exc, _CONNECTION_ERRORS + _postgres_connection_errors())


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: AppError) -> Response:
        if exc.status >= 500:
            log.error("request failed", exc_info=exc)
        return problem_response(
            status=exc.status, code=exc.code, title=exc.title, detail=exc.detail,
            instance=request.url.path, errors=exc.errors, headers=exc.headers, extra=exc.extra,
        )

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, AppError):  # e.g. the body limit tripped while FastAPI parsed the body
            return await app_error(request, exc.__cause__)
        status = exc.status_code
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        detail = exc.detail if isinstance(exc.detail, str) else title
        if status == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}"
        elif status == 405:
            detail = f"Method {request.method} is not allowed on {request.url.path}"
        return problem_response(
            status=status, code=_STATUS_CODES.get(status, "http_error"), title=title, detail=detail,
            instance=request.url.path, headers=getattr(exc, "headers", None),
        )

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = field_errors_from_pydantic(exc.errors())
        if any(e.code == "json_invalid" for e in errors):
            return problem_response(
                status=400, code="malformed_json", title="Bad Request",
                detail="The request body is not valid JSON.", instance=request.url.path, errors=errors,
            )
        summary = "; ".join(f"{e.location}{e.pointer}: {e.detail}" for e in errors[:5])
        return problem_response(
            status=422, code="validation_error", title="Unprocessable Content",
            detail=f"The request is invalid: {summary}", instance=request.url.path, errors=errors,
        )

    async def pool_exhausted(request: Request, exc: Exception) -> Response:
        # Every connection is busy for longer than the pool's timeout: the service is overloaded.
        log.warning("database pool exhausted", exc_info=exc)
        return problem_response(
            status=503, code="overloaded", title="Service Unavailable",
            detail="The service is overloaded (no database connection was free in time); retry shortly.",
            instance=request.url.path, headers={"Retry-After": "1"},
        )

    async def database_unreachable(request: Request, exc: Exception) -> Response:
        if not is_connection_error(exc):
            log.error("request failed", exc_info=exc)
            return problem_response(
                status=500, code="internal_error", title="Internal Server Error",
                detail="An unexpected error occurred. Quote the request id when reporting it.",
                instance=request.url.path,
            )
        log.warning("database unreachable", exc_info=exc)
        return problem_response(
            status=503, code="database_unavailable", title="Service Unavailable",
            detail="The database cannot be reached right now; retry shortly.",
            instance=request.url.path, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    app.add_exception_handler(PoolTimeout, pool_exhausted)  # type: ignore[arg-type]
    for cls in (*_CONNECTION_ERRORS, *_postgres_connection_errors(), DBAPIError):
        app.add_exception_handler(cls, database_unreachable)  # type: ignore[arg-type]
    app.add_exception_handler(AppError, app_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error statuses a route can return."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {
            "model": Problem,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": HTTPStatus(status).phrase,
        }
    return out
