"""Bulk imports of profiles, events and consents from CSV or NDJSON, streamed.

Shared by `POST /v1/imports/{profiles,events,consents}` and `clientele import`. A consent row
becomes an identify message (who) carrying its ledger record, which ingest's consent step
writes in the same transaction (app.consent.service.record_signals). The body is never held
whole: bytes are inflated (gzip) and split into lines as they arrive, CSV records are
reassembled across lines (quoted newlines) and chunks, and every `CHUNK_ROWS` rows are turned
into Segment messages, validated by `parser.parse_batch`, stored by `service.ingest` and
committed. An import is therefore committed chunk by chunk; it is safe to re-run because every
row without a messageId gets a deterministic one (`imp-` + a hash of the import kind, the row
number and the row), so a replay of the same file yields duplicates, never new rows.

Row numbers: CSV rows are numbered from 1 after the header (the header is row 0; blank lines are
skipped and not counted). NDJSON rows are 1-based line numbers (blank lines are skipped but
counted, so the number is the line an editor shows).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import math
import re
import uuid
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import service as consent_service
from app.consent.service import hash_proof
from app.consent.signals import Signal
from app.core import jsonrules
from app.core.config import Settings
from app.core.db import session_write_transaction
from app.core.errors import AppError, BadRequest, PayloadTooLarge
from app.identity.normalize import IdentitySettings
from app.identity.service import identity_settings_from
from app.ingest import service
from app.ingest.parser import MESSAGE_TYPES, ParseOptions, parse_batch
from app.privacy.suppression import workspace_has_suppressions
from app.workspaces.service import get_workspace

CHUNK_ROWS = 1000  # rows per transaction: bounds memory, statement size and lock time
MAX_REPORTED_REJECTIONS = 1000
MAX_RECORD_BYTES = 1024 * 1024  # a line (or a multi-line CSV record); messages are capped at 32 KB anyway
# Largest slice of (inflated) bytes handled at once: gzip bombs stay small, and the event loop
# gets control back after each slice (see _items), however the body arrives.
_INFLATE_PIECE = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_BOM = b"\xef\xbb\xbf"
_QUOTE = ord('"')


class ImportKind(StrEnum):
    profiles = "profiles"
    events = "events"
    consents = "consents"


class ImportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


@dataclass(slots=True)
class RowError:
    """A row that was not stored: its number (see the module docstring), id if known, and why."""

    row: int
    message_id: str | None
    code: str
    reason: str


# A converted row: (row number, Segment message dict), or the reason it could not be converted.
Item = tuple[int, dict[str, Any]] | RowError


# --- column mapping ----------------------------------------------------------------------------

# Known columns are matched ignoring case, spaces, `_` and `-` (so `User ID`, `userId` and
# `user_id` are the same column); every other column keeps its header as the trait/property name.
_COMMON_COLUMNS = {"userid": "user_id", "anonymousid": "anonymous_id", "messageid": "message_id", "timestamp": "timestamp"}
_COLUMNS: dict[ImportKind, dict[str, str]] = {
    ImportKind.profiles: {
        **_COMMON_COLUMNS, "email": "email", "emailaddress": "email", "phone": "phone", "phonenumber": "phone",
    },
    ImportKind.events: {
        **_COMMON_COLUMNS, "event": "event", "revenue": "revenue", "orderid": "order_id", "products": "products",
        "quantity": "quantity", "price": "price", "total": "total",
    },
    # A consent list (a CRM's opt-ins): who, which purpose and channel, what and when. Columns
    # named proof_<name> are evidence (stored as keyed hashes); other columns are ignored.
    ImportKind.consents: {
        **_COMMON_COLUMNS, "email": "email", "emailaddress": "email", "phone": "phone", "phonenumber": "phone",
        "purpose": "purpose", "channel": "channel", "status": "status", "source": "source", "method": "method",
        "notice": "notice", "noticeversion": "notice_version", "occurredat": "occurred_at",
        "expiresat": "expires_at",
    },
}
NUMERIC_PROPERTIES = frozenset({"revenue", "quantity", "price", "total"})
_NAME_NOISE = re.compile(r"[\s_\-]+")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@lru_cache(maxsize=4096)
def canonical_column(kind: ImportKind, name: str) -> str:
    """The spec name of a known column (`Order ID` -> `order_id`), else the name itself, trimmed."""
    name = name.strip()
    return _COLUMNS[kind].get(_NAME_NOISE.sub("", name.lower()), name)


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


def _number(name: str, value: Any) -> int | float:
    """CSV cells and JSON strings to numbers; ints stay ints. No locale guessing: `1,5` is rejected."""
    if isinstance(value, bool):
        raise _Reject("bad_number", f"{name} must be a number, got a boolean")
    if isinstance(value, int):
        if (problem := jsonrules.number_problem(str(value))) is not None:
            raise _Reject("bad_number", f"{name}: {problem}")
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise _Reject("bad_number", f"{name} must be a finite number")
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            if (problem := jsonrules.number_problem(text.lstrip("+"))) is not None:
                raise _Reject("bad_number", f"{name}: {problem}")
            return int(text)
        if _DECIMAL.fullmatch(text):  # float() alone would also take "nan", "inf" and "1_0"
            number = float(text)
            if math.isfinite(number):
                return number
    raise _Reject("bad_number", f"{name} {value!r} is not a number")


def _products(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise _Reject("bad_products", "products must be a JSON array of objects; the cell is not valid JSON") from None
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise _Reject("bad_products", "products must be a JSON array of objects")
    return value


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _flat_message(kind: ImportKind, row: dict[str, Any]) -> dict[str, Any]:
    """A flat row (CSV record or flat NDJSON object) to an identify or track message."""
    msg: dict[str, Any] = {"type": "identify" if kind is ImportKind.profiles else "track"}
    extra: dict[str, Any] = {}  # traits (profiles) or properties (events)
    for name, value in row.items():
        if _is_empty(value):
            continue
        column = canonical_column(kind, name)
        if column == "user_id":
            msg["userId"] = value
        elif column == "anonymous_id":
            msg["anonymousId"] = value
        elif column == "message_id":
            msg["messageId"] = value
        elif column == "timestamp":
            msg["timestamp"] = value
        elif column == "event":
            msg["event"] = value
        elif column in NUMERIC_PROPERTIES and kind is ImportKind.events:
            extra[column] = _number(column, value)
        elif column == "products" and kind is ImportKind.events:
            extra[column] = _products(value)
        else:
            extra[column] = value  # email and phone as traits: the parser takes identifiers from there
    msg["traits" if kind is ImportKind.profiles else "properties"] = extra
    return msg


_CONSENT_FIELDS = frozenset({"purpose", "channel", "status", "source", "method", "notice", "notice_version",
                             "occurred_at", "expires_at"})


def _import_time(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Reject("bad_timestamp", f"{name} must be an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Reject("bad_timestamp", f"{name} {value!r} is not an ISO 8601 date-time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()


def _consent_message(row: dict[str, Any]) -> dict[str, Any]:
    """A consent row to an identify message (who) carrying the record (what) under `_consent`,
    which the parser ignores and the importer attaches to the parsed message."""
    from app.consent.models import CHANNELS, SOURCES, STATUSES

    msg: dict[str, Any] = {"type": "identify"}
    traits: dict[str, Any] = {}
    record: dict[str, Any] = {"source": "import", "channel": None, "method": None, "notice_key": None,
                              "notice_version": None, "expires_at": None, "proof": {}}
    for name, value in row.items():
        if _is_empty(value):
            continue
        column = canonical_column(ImportKind.consents, name)
        if column == "user_id":
            msg["userId"] = value
        elif column == "anonymous_id":
            msg["anonymousId"] = value
        elif column == "message_id":
            msg["messageId"] = value
        elif column in ("email", "phone"):
            traits[column] = value
        elif column in ("timestamp", "occurred_at"):
            record["occurred_at"] = _import_time(column, value)
        elif column == "expires_at":
            record["expires_at"] = _import_time(column, value)
        elif column == "notice_version":
            number = _number(column, value)
            if not isinstance(number, int) or number < 1:
                raise _Reject("bad_number", "notice_version must be a whole number from 1")
            record["notice_version"] = number
        elif column == "notice":
            record["notice_key"] = str(value).strip()
        elif column in _CONSENT_FIELDS:
            record[column] = str(value).strip() if column == "method" else str(value).strip().lower()
        elif name.lower().startswith("proof_") and len(name) > 6:
            record["proof"][name[6:70]] = value if isinstance(value, str | int | float | bool) else orjson.dumps(value).decode()
    if "purpose" not in record:
        raise _Reject("missing_purpose", "a consent row needs a purpose")
    if record.get("status") not in STATUSES:
        raise _Reject("bad_status", f"status must be one of {', '.join(STATUSES)}, got {record.get('status')!r}")
    if record["channel"] is not None and record["channel"] not in CHANNELS:
        raise _Reject("bad_channel", f"channel must be one of {', '.join(CHANNELS)} or empty, got {record['channel']!r}")
    if record["source"] not in SOURCES:
        raise _Reject("bad_source", f"source must be one of {', '.join(SOURCES)}, got {record['source']!r}")
    if "occurred_at" not in record:
        raise _Reject("missing_occurred_at", "a consent row needs occurred_at (when the person said it)")
    if record["expires_at"] is not None and record["expires_at"] <= record["occurred_at"]:
        raise _Reject("bad_expiry", "expires_at must be after occurred_at")
    if (record["notice_key"] is None) != (record["notice_version"] is None):
        raise _Reject("bad_notice", "notice and notice_version go together")
    if len(record["proof"]) > 20:
        raise _Reject("bad_proof", "at most 20 proof_ columns")
    msg["traits"] = traits
    msg["timestamp"] = record["occurred_at"]
    msg["_consent"] = record
    return msg


def _is_segment_message(obj: dict[str, Any]) -> bool:
    # A flat row may well have a `type` column (customer type...); only a Segment type counts.
    return obj.get("type") in MESSAGE_TYPES or any(isinstance(obj.get(k), dict) for k in ("traits", "properties", "context"))


def _segment_message(kind: ImportKind, obj: dict[str, Any]) -> dict[str, Any]:
    mtype = obj.get("type")
    if kind is ImportKind.profiles:
        if mtype not in (None, "identify"):
            raise _Reject("wrong_type", f"a profiles import takes identify messages, not {mtype!r}")
        return {**obj, "type": "identify"}
    return obj if mtype is not None else {**obj, "type": "track"}


def import_message_id(kind: ImportKind, row: int, raw: Any) -> str:
    """`imp-` + hash of (kind, row number, row). The row number keeps genuinely repeated rows
    (two identical orders on one day) distinct; the same file imported again, through the API or
    the CLI, gzipped or not, gets the same ids and so deduplicates."""
    canonical = orjson.dumps([str(kind), row, raw], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return "imp-" + hashlib.sha256(canonical).hexdigest()[:32]


def convert_row(kind: ImportKind, row: int, raw: dict[str, Any], *, flat: bool) -> Item:
    """One row to a Segment message with a messageId, or a RowError. Never raises."""
    try:
        if kind is ImportKind.consents:
            msg = _consent_message(raw)
        else:
            msg = _flat_message(kind, raw) if flat else _segment_message(kind, raw)
    except _Reject as exc:
        given = raw.get("messageId") if not flat else next(
            (v for k, v in raw.items() if canonical_column(kind, k) == "message_id"), None
        )
        message_id = str(given).strip() if isinstance(given, str | int) and not _is_empty(given) else None
        return RowError(row, message_id or import_message_id(kind, row, raw), exc.code, exc.reason)
    if _is_empty(msg.get("messageId")):
        msg["messageId"] = import_message_id(kind, row, raw)
    return row, msg


# --- streaming parsing -------------------------------------------------------------------------

class _Inflater:
    """Identity or gzip (several concatenated members allowed), output in bounded pieces, with
    the import size limit applied to the inflated bytes too (a gzip bomb hits it)."""

    def __init__(self, *, gzip: bool, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._z = zlib.decompressobj(_GZIP_WBITS) if gzip else None
        self._member_started = False

    def _count(self, piece: bytes) -> bytes:
        self.total += len(piece)
        if self.total > self.limit:
            raise PayloadTooLarge(f"The import exceeds the limit of {self.limit} bytes (after decompression).")
        return piece

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            for start in range(0, len(data), _INFLATE_PIECE):
                yield self._count(data[start:start + _INFLATE_PIECE])
            return
        while data or self._member_started:
            self._member_started = True
            try:
                out = self._z.decompress(data, _INFLATE_PIECE)
            except zlib.error as exc:
                raise BadRequest(f"The body is not valid gzip: {exc}.", code="bad_encoding") from None
            if out:
                yield self._count(out)
            if self._z.eof:
                self._member_started = False
                data = self._z.unused_data
                if data:  # another gzip member follows (`cat a.gz b.gz`)
                    self._z = zlib.decompressobj(_GZIP_WBITS)
                continue
            data = self._z.unconsumed_tail
            if not data and len(out) < _INFLATE_PIECE:
                break  # input used up and zlib holds no pending output

    def finish(self) -> None:
        if self._z is not None and self._member_started and not self._z.eof:
            raise BadRequest("The gzip stream is truncated.", code="bad_encoding")


def _quote_open(line: bytes, in_quotes: bool) -> bool:
    """Whether a CSV record is still inside a quoted field at the end of `line`, by csv.reader's
    rules for the excel dialect: a quote opens a quoted field only as a field's first character,
    `""` inside one is a literal quote, and text after the closing quote runs to the next comma.
    Working on bytes is safe: `"`, `,` and `\\n` never occur inside a UTF-8 multi-byte sequence."""
    if not in_quotes and b'"' not in line:
        return False
    i, n = 0, len(line)
    while True:
        if in_quotes:
            i = _QUOTED_TEXT.match(line, i).end()  # type: ignore[union-attr]  # always matches
            if i >= n:
                return True
            in_quotes, i = False, i + 1  # past the closing quote
        elif i < n and line[i] == _QUOTE:
            in_quotes, i = True, i + 1
            continue
        comma = line.find(b",", i)
        if comma < 0:
            return False
        i = comma + 1


_QUOTED_TEXT = re.compile(rb'(?:[^"]|"")*')


class RowReader:
    """Push parser: `feed()` body bytes as they arrive and iterate the rows they complete, then
    iterate `finish()` at the end of the body. Each returned iterator must be consumed before the
    next call. Raises BadRequest/PayloadTooLarge for problems that make the rest unreadable
    (bad header, bad gzip, a runaway line); a bad row is a RowError item instead."""

    def __init__(self, kind: ImportKind, fmt: ImportFormat, *, gzip: bool = False, max_bytes: int) -> None:
        self.kind = kind
        self.fmt = fmt
        self._inflater = _Inflater(gzip=gzip, limit=max_bytes)
        self._pending = bytearray()  # the incomplete last line (a bytearray: appending tiny pieces stays linear)
        self._line_no = 0
        self._records = 0  # non-blank records seen (the CSV header included)
        self._parts: list[bytes] = []  # lines of an unfinished CSV record
        self._parts_size = 0
        self._in_quotes = False
        self._record_line = 0  # line where the unfinished CSV record starts
        self._columns: list[str] | None = None
        self._csv_row = 0

    def feed(self, data: bytes) -> Iterator[Item]:
        for piece in self.pieces(data):
            yield from self.consume(piece)

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The body's bytes, inflated, in slices of at most _INFLATE_PIECE."""
        return self._inflater.feed(data)

    def consume(self, piece: bytes) -> Iterator[Item]:
        self._pending += piece
        if b"\n" in piece:
            if not self._parts and self._pending.isspace():
                # Blank lines only (outside a quoted CSV field): counted, not split one by one.
                end = self._pending.rfind(b"\n") + 1
                self._line_no += self._pending.count(b"\n", 0, end)
                del self._pending[:end]
                return
            *lines, last = self._pending.split(b"\n")
            self._pending = bytearray(last)
            for line in lines:
                yield from self._line(bytes(line))
        self._check_pending()

    def finish(self) -> Iterator[Item]:
        self._inflater.finish()  # before the last line: a truncated stream must not import half a row
        if self._pending:
            line, self._pending = bytes(self._pending), bytearray()
            yield from self._line(line)
        if self._parts:
            self._parts = []
            unclosed = f"a quoted field opened on line {self._record_line} is never closed"
            if self._columns is None:
                raise BadRequest(f"The CSV header is malformed: {unclosed}.", code="bad_header")
            self._csv_row += 1
            yield RowError(self._csv_row, None, "malformed_csv", unclosed)
        if self._records == 0:
            raise BadRequest("The body is empty: send a CSV file with a header row, or NDJSON lines.", code="empty_body")

    def _check_pending(self) -> None:
        if len(self._pending) > MAX_RECORD_BYTES:
            raise BadRequest(
                f"Line {self._line_no + 1} is longer than {MAX_RECORD_BYTES} bytes: lines must end with \\n "
                "and a row must be a message of at most 32 KB.", code="line_too_long",
            )

    def _line(self, line: bytes) -> Iterator[Item]:
        self._line_no += 1
        if self._line_no == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]  # Excel writes one
        if self.fmt is ImportFormat.ndjson:
            if line.strip():
                self._records += 1
                yield self._ndjson(line)
            return
        if not self._parts:
            if not line.strip():
                return  # blank line between records
            self._record_line = self._line_no
        elif self._parts_size + len(line) > MAX_RECORD_BYTES:
            raise BadRequest(
                f"The quoted field opened on line {self._record_line} is not closed after {MAX_RECORD_BYTES} bytes.",
                code="malformed_csv",
            )
        self._parts.append(line)
        self._parts_size += len(line) + 1
        self._in_quotes = _quote_open(line, self._in_quotes)
        if self._in_quotes:
            return  # the record goes on on the next line
        record = b"\n".join(self._parts)
        self._parts, self._parts_size = [], 0
        self._records += 1
        item = self._csv_record(record)
        if item is not None:
            yield item

    def _ndjson(self, line: bytes) -> Item:
        row = self._line_no
        try:  # the tracking API's rules, before decoding (orjson rounds integers past 64 bits)
            jsonrules.check_text(line)
        except jsonrules.JsonRuleError as exc:
            return RowError(row, None, exc.code, exc.reason)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return RowError(row, None, "malformed_json", f"not valid JSON: {exc}")
        if not isinstance(obj, dict):
            return RowError(row, None, "not_an_object", f"a line must be a JSON object, got {type(obj).__name__}")
        return convert_row(self.kind, row, obj, flat=not _is_segment_message(obj))

    def _csv_record(self, record: bytes) -> Item | None:
        if self._columns is None:
            self._set_header(record)
            return None
        self._csv_row += 1
        row = self._csv_row
        try:
            cells = next(csv.reader((record.decode("utf-8"),)))
        except UnicodeDecodeError as exc:
            return RowError(row, None, "bad_encoding", f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the row)")
        except csv.Error as exc:
            return RowError(row, None, "malformed_csv", str(exc))
        if len(cells) > len(self._columns):
            return RowError(
                row, None, "malformed_csv", f"the row has {len(cells)} cells; the header has {len(self._columns)} columns"
            )
        # Fewer cells than columns reads as empty trailing cells, as csv.DictReader does.
        raw = {name: cell.strip() for name, cell in zip(self._columns, cells) if cell.strip()}
        return convert_row(self.kind, row, raw, flat=True)

    def _set_header(self, record: bytes) -> None:
        try:
            cells = next(csv.reader((record.decode("utf-8"),)))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"The CSV header is not valid UTF-8 ({exc.reason} at byte {exc.start}).",
                             code="bad_header") from None
        except csv.Error as exc:
            raise BadRequest(f"The CSV header is malformed: {exc}.", code="bad_header") from None
        columns: list[str] = []
        seen: dict[str, str] = {}
        for position, cell in enumerate(cells, start=1):
            name = cell.strip()
            if not name:
                raise BadRequest(f"CSV header: column {position} has no name.", code="bad_header")
            column = canonical_column(self.kind, name)
            if column in seen:
                raise BadRequest(
                    f"CSV header: columns {seen[column]!r} and {name!r} are the same column ({column!r}).",
                    code="bad_header",
                )
            seen[column] = name
            columns.append(column)
        # Profiles may be known by email or phone alone (CRM exports); events need a Segment id.
        identifying = ({"user_id", "anonymous_id", "email", "phone"} if self.kind is not ImportKind.events
                       else {"user_id", "anonymous_id"})
        required = " or ".join(sorted(identifying))
        if not identifying & seen.keys():
            raise BadRequest(f"CSV header: a {self.kind} import needs a {required} column; got {', '.join(seen.values())}.",
                             code="bad_header")
        missing = {"purpose", "status"} - seen.keys() if self.kind is ImportKind.consents else set()
        if missing:
            raise BadRequest(f"CSV header: a consents import needs {' and '.join(sorted(missing))} columns; "
                             f"got {', '.join(seen.values())}.", code="bad_header")
        if self.kind is ImportKind.events and "event" not in seen:
            raise BadRequest(f"CSV header: an events import needs an event column; got {', '.join(seen.values())}.",
                             code="bad_header")
        self._columns = columns


# --- the chunk loop ----------------------------------------------------------------------------

@dataclass(slots=True)
class ImportSummary:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    rejected_count: int = 0
    rejected: list[RowError] = field(default_factory=list)  # the first MAX_REPORTED_REJECTIONS, in row order
    committed_through_row: int = 0  # last row of the last committed chunk

    @property
    def rejected_truncated(self) -> bool:
        return self.rejected_count > len(self.rejected)

    def counts(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "suppressed": self.suppressed,
                "rejected_count": self.rejected_count}

    def as_dict(self) -> dict[str, Any]:
        """The API response shape (the CLI's --json prints the same)."""
        return {
            **self.counts(),
            "rejected": [{"row": e.row, "messageId": e.message_id, "code": e.code, "reason": e.reason} for e in self.rejected],
            "rejected_truncated": self.rejected_truncated,
        }


class _Importer:
    def __init__(
        self, session: AsyncSession, settings: Settings, workspace_id: uuid.UUID, identity: IdentitySettings,
        suppressions: bool = False,
    ) -> None:
        self.session = session
        self.settings = settings
        self.workspace_id = workspace_id
        self.identity = identity
        self.suppressions = suppressions
        self.summary = ImportSummary()
        # A consents import: the workspace's purposes and notice versions, to check rows against.
        self.consent: tuple[set[str], set[tuple[str, int]]] | None = None

    def _check_consent(self, item: tuple[int, dict[str, Any]]) -> RowError | None:
        if self.consent is None:
            return None
        row, msg = item
        record = msg["_consent"]
        purposes, notices = self.consent
        if record["purpose"] not in purposes:
            return RowError(row, msg.get("messageId"), "unknown_purpose",
                            f"no purpose {record['purpose']!r} in this workspace")
        if record["notice_key"] is not None and (record["notice_key"], record["notice_version"]) not in notices:
            return RowError(row, msg.get("messageId"), "unknown_notice",
                            f"notice {record['notice_key']!r} has no version {record['notice_version']}")
        return None

    async def store(self, chunk: list[Item]) -> None:
        """Validate, store and commit one chunk of rows."""
        rows: list[int] = []
        messages: list[dict[str, Any]] = []
        errors: list[RowError] = []
        for item in chunk:
            if isinstance(item, RowError):
                errors.append(item)
            elif (problem := self._check_consent(item)) is not None:
                errors.append(problem)
            else:
                rows.append(item[0])
                messages.append(item[1])
        received_at = datetime.now(UTC)
        parsed, rejected = parse_batch(messages, ParseOptions(
            received_at=received_at, max_message_bytes=self.settings.ingest_max_message_bytes,
            future_tolerance=timedelta(seconds=self.settings.ingest_future_tolerance_seconds), identity=self.identity,
            require_segment_id=False,
        ))
        errors += [RowError(rows[r.index], r.message_id, r.code, r.reason) for r in rejected]
        if self.consent is not None:
            for m in parsed:  # the record rides on the identify message into ingest's consent step
                record = messages[m.index]["_consent"]
                m.consent = Signal(record={**record, "proof": hash_proof(self.settings.consent_secret.get_secret_value(),
                                                                          self.workspace_id, record["proof"])})
        # No ingest gate: an import is one long, sequential request with a secret key, not SDK traffic.
        # Committed per chunk (when the transaction block ends): releases the workspace's
        # advisory lock and keeps the transaction small.
        result = await service.ingest(
            session_write_transaction(self.session), workspace_id=self.workspace_id, messages=parsed,
            identity=self.identity, received_at=received_at, suppressions=self.suppressions,
        )
        if not parsed:
            await self.session.commit()
        summary = self.summary
        summary.accepted += result.accepted
        summary.duplicates += result.duplicates
        summary.suppressed += result.suppressed
        summary.rejected_count += len(errors)
        room = MAX_REPORTED_REJECTIONS - len(summary.rejected)
        if room > 0 and errors:
            summary.rejected += sorted(errors, key=lambda e: e.row)[:room]
        last = chunk[-1]
        summary.committed_through_row = last.row if isinstance(last, RowError) else last[0]


async def _items(reader: RowReader, body: AsyncIterable[bytes]) -> AsyncIterator[Item]:
    async for data in body:
        for piece in reader.pieces(data):
            for item in reader.consume(piece):
                yield item
            # A body already received arrives without the loop getting control back in
            # between: hand it back after each slice, so no request waits on this one.
            await asyncio.sleep(0)
    for item in reader.finish():
        yield item


async def run_import(
    session: AsyncSession,
    settings: Settings,
    *,
    workspace_id: uuid.UUID,
    kind: ImportKind,
    fmt: ImportFormat,
    body: AsyncIterable[bytes],
    gzip: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Stream `body` into the workspace, committing every `chunk_rows` rows.

    An AppError raised midway (bad gzip, size limit, a runaway line, a client that went away)
    carries the counts of what was committed before it in its `extra`, so the problem response
    says how far the import got; re-running the whole file is safe.
    """
    workspace = await get_workspace(session, workspace_id=workspace_id)
    identity = identity_settings_from(workspace.settings)
    suppressions = workspace_has_suppressions(workspace.settings)
    await session.commit()  # no transaction stays open while the body trickles in
    importer = _Importer(session, settings, workspace_id, identity, suppressions)
    if kind is ImportKind.consents:
        importer.consent = (await consent_service.purpose_keys(session, workspace_id=workspace_id),
                            await consent_service.notice_versions(session, workspace_id=workspace_id))
        await session.commit()
    reader = RowReader(kind, fmt, gzip=gzip, max_bytes=settings.import_max_bytes)
    chunk: list[Item] = []
    try:
        async for item in _items(reader, body):
            chunk.append(item)
            if len(chunk) >= chunk_rows:
                await importer.store(chunk)
                chunk = []
        if chunk:
            await importer.store(chunk)
    except AppError as exc:
        summary = importer.summary
        if summary.committed_through_row:
            exc.extra.update({**summary.counts(), "committed_through_row": summary.committed_through_row})
            exc.detail += (
                f" Rows up to {summary.committed_through_row} were imported before the error; "
                "re-running the whole file is safe (they come back as duplicates)."
            )
        raise
    return importer.summary
