"""Bulk imports: `POST /v1/imports/profiles`, `/v1/imports/events` and
`/v1/imports/consents` (CSV or NDJSON, gzip
allowed, up to 2 GiB). The body is streamed and committed every 1,000 rows (app.ingest.imports).

The file is the body itself (`Content-Type: text/csv` or `application/x-ndjson`), or a
`multipart/form-data` upload with the file in a part named `file` (what browsers' forms and
generated API clients send). An upload is spooled to a temporary file as it arrives (in memory
up to 1 MiB), then read in 1 MiB blocks like a plain body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import ClientDisconnect

from app.core.auth import Principal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import BadRequest, UnsupportedMediaType, responses
from app.ingest.imports import ImportFormat, ImportKind, run_import
from app.ingest.schemas import ImportResponse

router = APIRouter(tags=["ingest"])

_ERRORS = responses(400, 401, 403, 413, 415, 503)
_FORMATS = {
    "text/csv": ImportFormat.csv,
    "application/x-ndjson": ImportFormat.ndjson,
    "application/ndjson": ImportFormat.ndjson,
    "application/jsonl": ImportFormat.ndjson,
}
_EXAMPLES = {
    ImportKind.profiles: (
        "user_id,email,phone,first_name,plan\nu-1,jane@example.com,+14155550100,Jane,pro\n",
        '{"userId": "u-1", "traits": {"email": "jane@example.com", "plan": "pro"}}\n'
        '{"user_id": "u-2", "email": "joe@example.com", "plan": "free"}\n',
    ),
    ImportKind.events: (
        "user_id,event,timestamp,order_id,revenue,quantity\nu-1,Order Completed,2024-05-01T10:00:00Z,o-17,29.90,2\n",
        '{"type": "track", "userId": "u-1", "event": "Order Completed", "properties": {"revenue": 29.9}}\n'
        '{"user_id": "u-2", "event": "Order Completed", "timestamp": "2024-05-02", "revenue": "12.50"}\n',
    ),
    ImportKind.consents: (
        "email,purpose,channel,status,occurred_at,method,notice,notice_version,proof_ip\n"
        "jane@example.com,email_marketing,email,granted,2026-05-01T09:30:00Z,double_opt_in,privacy_policy,3,203.0.113.7\n",
        '{"email": "jane@example.com", "purpose": "email_marketing", "channel": "email", "status": "granted", '
        '"occurred_at": "2026-05-01T09:30:00Z"}\n',
    ),
}


MULTIPART = "multipart/form-data"
_SUFFIXES = {".csv": ImportFormat.csv, ".ndjson": ImportFormat.ndjson, ".jsonl": ImportFormat.ndjson}
_UPLOAD_BLOCK = 1 << 20


def _body_schema(kind: ImportKind) -> dict[str, Any]:
    csv_example, ndjson_example = _EXAMPLES[kind]
    ndjson = {"schema": {"type": "string"}, "example": ndjson_example}
    return {
        "requestBody": {
            "required": True,
            "description": "A CSV file with a header row, or NDJSON (one JSON object per line). UTF-8; "
            "`Content-Encoding: gzip` allowed. Or a multipart/form-data upload of such a file (optionally "
            "gzipped) in the part `file`. See docs/IMPORTS.md for the column mapping.",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": csv_example},
                "application/x-ndjson": ndjson,
                "application/jsonl": ndjson,
                # A named component (app.ingest.schemas.ImportUpload), not an inline schema: generated
                # clients then share one `ImportUpload` model across the three routes.
                MULTIPART: {"schema": {"$ref": "#/components/schemas/ImportUpload"}},
            },
        }
    }


def _body_format(request: Request) -> tuple[ImportFormat, bool]:
    """The format from Content-Type and whether the body is gzipped, or a 415."""
    media, _, params = request.headers.get("content-type", "").partition(";")
    fmt = _FORMATS.get(media.strip().lower())
    if fmt is None:
        raise UnsupportedMediaType(
            f"Content-Type {media.strip() or '(none)'!r} is not supported; send text/csv, application/x-ndjson "
            "or a multipart/form-data upload."
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8", "us-ascii"):
            raise UnsupportedMediaType(f"charset {charset!r} is not supported; imports are UTF-8.")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
    return fmt, encoding in ("gzip", "x-gzip")


async def _stream(request: Request) -> AsyncIterator[bytes]:
    try:
        async for data in request.stream():
            yield data
    except ClientDisconnect:
        # Nobody will read the answer, but the log shows a 400 with the counts, not a traceback.
        raise BadRequest("The client disconnected before the end of the body.", code="client_disconnected") from None


def _upload_format(upload: UploadFile, declared: Any) -> ImportFormat:
    if declared not in (None, ""):
        if declared not in ("csv", "ndjson"):
            raise BadRequest(f"format {str(declared)[:40]!r} is not csv or ndjson.", code="bad_format")
        return ImportFormat(declared)
    media = (upload.content_type or "").partition(";")[0].strip().lower()
    if media in _FORMATS:
        return _FORMATS[media]
    name = (upload.filename or "").lower().removesuffix(".gz")
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise UnsupportedMediaType(
        f"Cannot tell the format of the uploaded file {upload.filename or '(no name)'!r} "
        f"({media or 'no content type'}); name it .csv or .ndjson, or send the part `format`."
    )


async def _upload_blocks(upload: UploadFile, first: bytes) -> AsyncIterator[bytes]:
    if first:
        yield first
    while block := await upload.read(_UPLOAD_BLOCK):
        yield block


async def _import_upload(request: Request, session: AsyncSession, principal: Principal, kind: ImportKind) -> ImportResponse:
    try:
        form = await request.form(max_files=1, max_fields=5)
    except ClientDisconnect:
        raise BadRequest("The client disconnected before the end of the body.", code="client_disconnected") from None
    except (HTTPException, MultiPartException) as exc:  # Starlette's 400 for a body python-multipart cannot parse
        raise BadRequest(f"The multipart body cannot be read: {getattr(exc, 'detail', None) or exc.message}",
                         code="bad_multipart") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("Send the file in a multipart part named `file`.", code="missing_file")
        fmt = _upload_format(upload, form.get("format"))
        first = await upload.read(_UPLOAD_BLOCK)
        summary = await run_import(
            session, request.app.state.settings, workspace_id=principal.workspace_id, kind=kind, fmt=fmt,
            body=_upload_blocks(upload, first), gzip=first[:2] == b"\x1f\x8b",  # the magic number says gzip
        )
    finally:
        await form.close()
    return ImportResponse.model_validate(summary.as_dict())


async def _import(request: Request, session: AsyncSession, principal: Principal, kind: ImportKind) -> ImportResponse:
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() == MULTIPART:
        return await _import_upload(request, session, principal, kind)
    fmt, gzip = _body_format(request)
    summary = await run_import(
        session, request.app.state.settings, workspace_id=principal.workspace_id, kind=kind, fmt=fmt,
        body=_stream(request), gzip=gzip,
    )
    return ImportResponse.model_validate(summary.as_dict())


@router.post(
    "/imports/profiles", response_model=ImportResponse, responses=_ERRORS,
    openapi_extra=_body_schema(ImportKind.profiles), summary="Import profiles (CSV or NDJSON)",
)
async def import_profiles(request: Request, session: SessionDep, principal: WritePrincipal) -> ImportResponse:
    """One identify message per row: `user_id`, `anonymous_id`, `email`, `phone` identify the person,
    every other column is a trait. Committed every 1,000 rows; rows without `message_id` get a
    deterministic one, so re-running a file yields duplicates, not new rows. Needs a secret key
    with the `write` scope."""
    return await _import(request, session, principal, ImportKind.profiles)


@router.post(
    "/imports/events", response_model=ImportResponse, responses=_ERRORS,
    openapi_extra=_body_schema(ImportKind.events), summary="Import events, e.g. orders (CSV or NDJSON)",
)
async def import_events(request: Request, session: SessionDep, principal: WritePrincipal) -> ImportResponse:
    """One track message per row (`event` names it); `revenue`, `quantity`, `price`, `total` are
    numbers, `products` a JSON array, every other column a property. NDJSON lines may also be any
    Segment message. Committed every 1,000 rows; re-running a file yields duplicates. Needs a
    secret key with the `write` scope."""
    return await _import(request, session, principal, ImportKind.events)


@router.post(
    "/imports/consents", response_model=ImportResponse, responses=_ERRORS,
    openapi_extra=_body_schema(ImportKind.consents), summary="Import consent records, e.g. a CRM's opt-in list (CSV or NDJSON)",
)
async def import_consents(request: Request, session: SessionDep, principal: WritePrincipal) -> ImportResponse:
    """One ledger record per row: `user_id`, `anonymous_id`, `email` or `phone` name the person
    (unknown people are created), `purpose`, `status` and `occurred_at` are required, `channel`
    (empty: every channel), `source` (default `import`), `method`, `notice` + `notice_version`,
    `expires_at` optional; `proof_<name>` columns are evidence, stored as keyed hashes. A row
    already in the ledger (same person, purpose, channel, status and time) is not recorded twice;
    re-running a file yields duplicates. Needs a secret key with the `write` scope."""
    return await _import(request, session, principal, ImportKind.consents)
