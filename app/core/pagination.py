"""Keyset (cursor) pagination: stable under concurrent inserts, O(limit) per page at any depth."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import AfterValidator, BaseModel, Field

from app.core.errors import BadRequest

T = TypeVar("T")
MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-1000).")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page.")]


def in_utc(value: datetime) -> datetime:
    """A time as the database reads it back (UTC; zone-less means UTC). 0001-01-01T00:00+01:00
    is before year 1 there, which no one can store or read: a ValueError (a 422 in a query)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside years 1 to 9999 once converted to UTC") from None


Instant = Annotated[datetime, AfterValidator(in_utc)]
"""A date-time query parameter, in UTC and within the range every layer can hold."""


class CursorPage(BaseModel, Generic[T]):
    """One page of results; pass `next_cursor` back as `cursor` for the next page."""

    data: list[T]
    next_cursor: str | None = Field(default=None, description="Absent on the last page.")


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([str(v) for v in values])).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor") from None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, str) for v in values):
        raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor")
    return values
