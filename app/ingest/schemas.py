"""API shapes of the Segment-compatible tracking API (documentation of the wire format).

The handlers parse bodies with app.ingest.parser so that one bad message is reported instead
of failing the request; these models describe the same format in the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


class SegmentMessage(BaseModel):
    """A Segment Spec message (track, identify, page, screen, group or alias)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type: Literal["track", "identify", "page", "screen", "group", "alias"] | None = Field(
        default=None, description="Required in a batch; implied by the endpoint otherwise."
    )
    messageId: str | None = Field(default=None, description="Idempotency key; generated when absent.")
    userId: str | int | None = Field(default=None, description="Your id of the user. userId or anonymousId is required.")
    anonymousId: str | int | None = Field(default=None, description="Device or cookie id of an unknown visitor.")
    event: str | None = Field(default=None, description="track: the event name.", examples=["Order Completed"])
    name: str | None = Field(default=None, description="page/screen: the page or screen name.")
    properties: dict[str, Any] | None = Field(default=None, description="track/page/screen properties.")
    traits: dict[str, Any] | None = Field(default=None, description="identify/group traits (set semantics).")
    groupId: str | int | None = Field(default=None, description="group: the account id.")
    previousId: str | int | None = Field(default=None, description="alias: the previous userId or anonymousId.")
    context: dict[str, Any] | None = Field(
        default=None,
        description="Context; `externalIds` add identifiers, `traits_set_once` / `traits_unset` refine identify.",
    )
    integrations: dict[str, Any] | None = None
    timestamp: datetime | None = Field(default=None, description="When it happened (client clock).")
    sentAt: datetime | None = Field(default=None, description="When the client sent it; used to correct clock skew.")


class SegmentBatch(BaseModel):
    """A batch of messages; `context` and `integrations` apply to every message."""

    model_config = ConfigDict(extra="allow")
    batch: list[SegmentMessage] = Field(max_length=2500)
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sentAt: datetime | None = None
    writeKey: str | None = Field(default=None, description="Alternative to HTTP Basic auth.")


class IngestRejection(BaseModel):
    """A message that was not stored, and why."""

    index: int = Field(description="Position of the message in the batch (0 for single calls).")
    messageId: str | None = None
    code: str = Field(examples=["missing_identity"])
    reason: str = Field(examples=["userId or anonymousId is required"])


class IngestResponse(BaseModel):
    """What happened to the messages of a request."""

    success: bool = True
    accepted: int = Field(description="Messages stored now.")
    duplicates: int = Field(description="Messages already stored (same messageId): nothing changed.")
    suppressed: int = Field(
        default=0, description="Messages dropped because they carry an identifier suppressed by an erasure request."
    )
    rejected: list[IngestRejection] = Field(default_factory=list)




class ImportRejection(BaseModel):
    """A row of a bulk import that was not stored, and why."""

    row: int = Field(
        description="CSV: 1-based data row (the header is row 0, blank lines are not counted). NDJSON: 1-based line number."
    )
    messageId: str | None = Field(
        default=None, description="The row's messageId (given or generated); absent when the row could not be read."
    )
    code: str = Field(examples=["bad_number"])
    reason: str = Field(examples=["revenue 'abc' is not a number"])


class ImportResponse(BaseModel):
    """Outcome of a bulk import. Rows are committed in chunks of 1,000; re-running the same file is safe."""

    accepted: int = Field(description="Rows stored now.")
    duplicates: int = Field(description="Rows already stored (same messageId, e.g. an earlier run of the same file).")
    suppressed: int = Field(
        default=0, description="Rows dropped because they carry an identifier suppressed by an erasure request."
    )
    rejected_count: int = Field(description="Rows not stored.")
    rejected: list[ImportRejection] = Field(
        default_factory=list, description="The first 1,000 rejected rows, in row order."
    )
    rejected_truncated: bool = Field(default=False, description="True when more rows were rejected than listed.")


class ImportUpload(BaseModel):
    """A file to import, sent as multipart/form-data: what browsers' forms and generated API clients
    send (openapi-python-client has no model for a text/csv or NDJSON body, so this is the import
    route it generates). One model for the three import routes."""

    file: bytes = Field(description="The CSV or NDJSON file, optionally gzipped.")
    format: Literal["csv", "ndjson"] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=lambda schema: schema.pop("default", None),
        description="Default: from the file's content type, else its name (.csv, .ndjson, .jsonl, each optionally .gz).",
    )


EXTRA_SCHEMAS = (SegmentMessage, SegmentBatch, ImportUpload)
