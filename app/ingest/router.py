"""Segment-compatible tracking API: /v1/batch, /v1/track, /v1/identify, /v1/page, /v1/screen,
/v1/group, /v1/alias. Point an official Segment or RudderStack SDK at this host with the
workspace's write key and change nothing else."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from app.core import jsonrules
from app.core.auth import BasicCredentials, authenticate_write_key
from app.core.cors import origin_allowed
from app.core.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType, responses
from app.identity.service import identity_settings_from, trait_strategies_from
from app.ingest import service
from app.ingest.parser import (
    BatchBody,
    BodyTooDeep,
    MessageError,
    ParsedMessage,
    ParseOptions,
    Rejection,
    decode_batch_body,
    parse_batch,
    parse_raw_batch,
    parse_timestamp,
)
from app.ingest.schemas import IngestResponse
from app.privacy.suppression import workspace_has_suppressions
from app.workspaces.service import allowed_origins_from

router = APIRouter(tags=["ingest"])

MESSAGE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# Public endpoints (write key): the only ones that answer browsers from other origins (app.core.cors).
TRACKING_PATHS = frozenset({"/v1/batch", *(f"/v1/{t}" for t in MESSAGE_TYPES)})

_ERRORS = responses(400, 401, 403, 413, 415, 429)


def _body_schema(name: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


async def _read_body(request: Request, limit: int) -> bytes:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = decompressor.decompress(body, limit + 1)
        except zlib.error:
            raise BadRequest("The body is not valid gzip.", code="bad_encoding") from None
        if len(body) > limit or decompressor.unconsumed_tail:
            raise PayloadTooLarge(f"The decompressed body exceeds the limit of {limit} bytes.")
    elif encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
    return body


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise _too_deep() from None
        try:  # a rule of app.core.jsonrules says more than "invalid"
            jsonrules.check_text(body)
        except jsonrules.JsonRuleError as rule:
            raise BadRequest(rule.reason[0].upper() + rule.reason[1:] + ".", code=rule.code) from None
        raise BadRequest(f"The body is not valid JSON: {exc}", code="malformed_json") from None


def _too_deep() -> BadRequest:
    return BadRequest(
        f"The body nests objects and arrays too deeply (a message may nest {jsonrules.MAX_DEPTH} levels).",
        code="too_deep",
    )


async def _ingest(
    request: Request, *, write_key: Any, sent_at: Any, context: Any, integrations: Any,
    forced_type: str | None, parse: Callable[[ParseOptions], tuple[list[ParsedMessage], list[Rejection]]],
) -> IngestOutcome:
    settings = request.app.state.settings
    principal = await authenticate_write_key(request, write_key)
    origin = request.headers.get("origin")
    if origin is not None and not origin_allowed(allowed_origins_from(principal.workspace_settings), origin):
        raise Forbidden(f"Pages from {origin} may not send data to this workspace; add the origin with "
                        "PATCH /v1/workspace {\"cors_allowed_origins\": [...]}.", code="origin_not_allowed")
    received_at = datetime.now(UTC)
    try:
        batch_sent_at = parse_timestamp(sent_at, "sentAt")
    except MessageError as exc:
        raise BadRequest(exc.reason, code=exc.code) from None
    for key, value in (("context", context), ("integrations", integrations)):
        if value is not None and not isinstance(value, dict):
            raise BadRequest(f"Batch-level {key} must be a JSON object.", code="bad_field")
        if value and (problem := jsonrules.value_problem(value)) is not None:
            raise BadRequest(f"Batch-level {key}: {problem.reason}.", code=problem.code)
    identity = identity_settings_from(principal.workspace_settings)
    parsed, rejected = parse(ParseOptions(
        received_at=received_at, max_message_bytes=settings.ingest_max_message_bytes,
        future_tolerance=timedelta(seconds=settings.ingest_future_tolerance_seconds), identity=identity,
        forced_type=forced_type, batch_context=context or {}, batch_integrations=integrations or {},
        batch_sent_at=batch_sent_at,
    ))
    gate = request.app.state.ingest_gate
    workspace_rate = (principal.workspace_settings.get("ingest") or {}).get("rate_limit_per_second")
    async with gate.admit(principal.workspace_id, max(len(parsed), 1), workspace_rate):
        result = await service.ingest(
            request.app.state.db.write_transaction, workspace_id=principal.workspace_id, messages=parsed, identity=identity, received_at=received_at,
            trait_strategies=trait_strategies_from(principal.workspace_settings),
            gpc=request.headers.get("sec-gpc", "").strip() == "1",
            suppressions=workspace_has_suppressions(principal.workspace_settings),
        )
    return IngestOutcome(result.accepted, result.duplicates, rejected, result.suppressed)


@dataclass(slots=True)
class IngestOutcome:
    accepted: int
    duplicates: int
    rejected: list[Rejection]
    suppressed: int = 0

    def response(self) -> Response:
        """The IngestResponse document, serialised directly: the hot path skips re-validating
        its own output (the route's response_model still documents it)."""
        return Response(orjson.dumps({
            "success": True, "accepted": self.accepted, "duplicates": self.duplicates,
            "suppressed": self.suppressed, "rejected": [
                {"index": r.index, "messageId": r.message_id, "code": r.code, "reason": r.reason} for r in self.rejected
            ],
        }), media_type="application/json")


@router.post(
    "/batch", response_model=IngestResponse, responses=_ERRORS, openapi_extra=_body_schema("SegmentBatch"),
    summary="Send a batch of messages (Segment HTTP API)",
)
async def batch(request: Request, _: BasicCredentials) -> Response:
    """Up to 2,500 messages and 500 KB (gzip allowed). Each message is accepted, a duplicate
    (same messageId as one already stored), or rejected with its index and reason; a rejected
    message never affects the others."""
    return await direct_batch(request)


async def direct_batch(request: Request) -> Response:
    """`batch` without FastAPI's routing and dependencies: app.main serves POST /v1/batch
    through core.middleware.DirectRoutes with it (the route above documents it and takes any
    request that does not go that way). Credentials are read by authenticate_write_key."""
    settings = request.app.state.settings
    body = await _read_body(request, settings.ingest_max_batch_bytes)
    try:
        decoded = decode_batch_body(body)
    except BodyTooDeep:
        raise _too_deep() from None
    if decoded is None:
        # Not an envelope the fast decoder takes: decode it plainly, to say exactly what is
        # wrong or (should the decoders ever disagree) to ingest it message by message.
        payload = _loads(body)
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object with a `batch` array.", code="bad_batch")
        messages = payload.get("batch")
        if not isinstance(messages, list):
            raise BadRequest("`batch` must be an array of messages.", code="bad_batch")
        decoded = BatchBody(messages, payload.get("writeKey"), payload.get("sentAt"), payload.get("context"),
                            payload.get("integrations"))
        parse = parse_batch
    else:
        parse = partial(parse_raw_batch, clean=decoded.clean, refused=decoded.refused)
    if len(decoded.messages) > settings.ingest_max_batch_messages:
        raise PayloadTooLarge(
            f"The batch has {len(decoded.messages)} messages; the limit is {settings.ingest_max_batch_messages}."
        )
    # No session dependency: ingest writes through Database.write_transaction, which commits
    # before the response is sent.
    outcome = await _ingest(
        request, write_key=decoded.write_key, sent_at=decoded.sent_at, context=decoded.context,
        integrations=decoded.integrations, forced_type=None, parse=lambda opts: parse(decoded.messages, opts),
    )
    return outcome.response()


BATCH_ROUTE = next(r for r in router.routes if getattr(r, "endpoint", None) is batch)


def _single(message_type: str):
    async def handler(request: Request, _: BasicCredentials) -> Response:
        settings = request.app.state.settings
        body = await _read_body(request, settings.ingest_max_message_bytes)
        try:  # the rules a message of a batch follows, before decoding (orjson rounds big integers)
            jsonrules.check_text(body)
        except jsonrules.JsonRuleError as exc:
            raise BadRequest(f"message: {exc.reason}", code=exc.code) from None
        payload = _loads(body)
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object (one message).", code="not_an_object")
        if payload.get("type") not in (None, message_type):
            raise BadRequest(f"This endpoint takes {message_type} messages, not {payload.get('type')!r}.", code="unknown_type")
        result = await _ingest(
            request, write_key=payload.get("writeKey"), sent_at=None, context=None, integrations=None,
            forced_type=message_type, parse=lambda opts: parse_batch([payload], opts),
        )
        if result.rejected:
            r = result.rejected[0]
            raise BadRequest(r.reason, code=r.code, extra={"messageId": r.message_id})
        return result.response()

    handler.__name__ = message_type
    handler.__doc__ = f"One {message_type} message (32 KB at most). A rejected message is a 400 problem."
    return handler


for _type in MESSAGE_TYPES:
    router.add_api_route(
        f"/{_type}", _single(_type), methods=["POST"], response_model=IngestResponse, responses=_ERRORS,
        openapi_extra=_body_schema("SegmentMessage"), summary=f"Send one {_type} message", name=_type,
    )
