"""API shapes of privacy requests, exports and suppressions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class IdentifierRef(BaseModel):
    """One of the person's identifiers, normalised as ingest does (e-mail case, E.164 phones...)."""

    # Its own title: consent has an IdentifierRef too, and generated clients name models by title.
    model_config = ConfigDict(extra="forbid", title="PrivacyIdentifierRef")
    type: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["email"],
        description="user_id, anonymous_id, email, phone, or a custom type from context.externalIds.",
    )
    value: str = Field(min_length=1, max_length=255, examples=["ann@example.com"])


class PrivacyRequestCreate(BaseModel):
    """A data subject's request: a copy of their data (access) or its deletion (erasure)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"type": "erasure", "identifier": {"type": "email", "value": "ann@example.com"}}]
    })
    type: Literal["access", "erasure"]
    identifier: IdentifierRef


class AuditEntry(BaseModel):
    """One step of a request's life."""

    model_config = ConfigDict(extra="allow")
    at: datetime
    action: str = Field(examples=["completed"], description="received, queued, processing, completed, failed, "
                        "suppression_lifted")
    detail: dict[str, Any] | None = None


class PrivacyRequestPublic(BaseModel):
    """A privacy request, its status and audit trail. The identifier itself is not shown: it is
    kept only until the request is processed (then only a keyed hash of it remains)."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    type: Literal["access", "erasure"]
    status: Literal["pending", "processing", "completed", "failed"]
    identifier_type: str
    audit: list[AuditEntry]
    result: dict[str, Any] | None = Field(
        default=None, description="What processing did: for an erasure, rows deleted by table and identifiers "
        "suppressed; for access, rows exported by table."
    )
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SuppressionPublic(BaseModel):
    """A suppressed identifier: ingest and imports drop messages that carry it."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    identifier_type: str
    hash_prefix: str = Field(description="The first hex digits of the keyed hash (the identifier is not stored).")
    request_id: uuid.UUID | None = Field(default=None, description="The erasure request that created it.")
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> SuppressionPublic:
        return cls(id=row.id, identifier_type=row.identifier_type, hash_prefix=bytes(row.identifier_hash).hex()[:16],
                   request_id=row.request_id, created_at=row.created_at)


class AccessExport(BaseModel):
    """Everything held about one person (format `clientele.access-export/1`)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "format": "clientele.access-export/1", "profile_id": "0193a4f0-0000-7000-8000-000000000001",
        "identifiers": [{"type": "email", "value": "ann@example.com", "raw": "Ann@Example.com"}],
        "traits": {"name": "Ann"}, "computed_traits": {"order_count": 3},
        "counts": {"profile": 1, "identity": 2, "event": 14}, "tables": {"profile": [{"...": "..."}]},
    }]})
    format: str
    generated_at: datetime
    workspace_id: uuid.UUID
    request_id: uuid.UUID | None = None
    profile_id: uuid.UUID = Field(description="The surviving profile.")
    profile_ids: list[uuid.UUID] = Field(description="It and every profile merged into it.")
    identifiers: list[dict[str, Any]]
    traits: dict[str, Any]
    computed_traits: dict[str, Any]
    counts: dict[str, int] = Field(description="Rows per table.")
    tables: dict[str, list[dict[str, Any]]] = Field(
        description="Every row of every table that points at the person's profiles, as stored, by table name."
    )
