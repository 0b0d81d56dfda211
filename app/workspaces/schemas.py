from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.auth import Scope
from app.core.cors import normalize_origin

Origin = Annotated[str, Field(max_length=300), AfterValidator(normalize_origin)]


class WorkspaceCreate(BaseModel):
    """A new workspace (tenant)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Acme Retail"])


class WorkspacePublic(BaseModel):
    """A workspace: every profile, event and key belongs to exactly one."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    created_at: datetime
    ingest_rate_limit_per_second: float | None = Field(
        default=None, description="This workspace's ingest limit (messages/s per process); null: the service default."
    )
    event_retention_days: int | None = Field(
        default=None, description="Events older than this many days are deleted by the retention job; null: kept."
    )
    cors_allowed_origins: list[str] = Field(
        default_factory=lambda: ["*"], examples=[["https://shop.example.com"]],
        description="Origins whose web pages may send data with the write key (`*`: any). Other routes never "
                    "answer cross-origin.",
    )


class WorkspaceUpdate(BaseModel):
    """Changes to the workspace. Send `ingest_rate_limit_per_second: null` to fall back to the default,
    `event_retention_days: null` to keep events forever."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    # Strict: `false` or "5" is a mistake to report, not 0 or 5 messages/s.
    ingest_rate_limit_per_second: float | None = Field(default=None, ge=0, le=10_000_000, strict=True)
    event_retention_days: int | None = Field(
        default=None, ge=1, le=36_500, examples=[730],
        description="Delete events older than this many days (hourly job); null keeps them forever.",
    )
    cors_allowed_origins: list[Origin] | None = Field(
        default=None, max_length=100, examples=[["https://shop.example.com", "http://localhost:3000"]],
        description="Origins whose web pages may send data with the write key: `scheme://host[:port]`, or `*` "
                    "for any; `[]` for none; null for the default (any).",
    )


class WorkspaceCreated(BaseModel):
    """The new workspace with its first keys. The keys are shown only this once."""

    workspace: WorkspacePublic
    write_key: str = Field(description="Ingest-only key (the Segment write key).")
    secret_key: str = Field(description="Secret key with the admin scope.")


class ApiKeyCreate(BaseModel):
    """A new API key. Write keys only ingest; secret keys carry scopes."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["website"])
    kind: Literal["write", "secret"] = "secret"
    scopes: list[Scope] = Field(
        default_factory=lambda: [Scope.read],
        description="Scopes of a secret key (admin > write > read). Ignored for write keys.",
        max_length=3,
    )


class ApiKeyPublic(BaseModel):
    """An API key's metadata. The key itself is never shown again after creation."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    kind: Literal["write", "secret"]
    prefix: str = Field(description="First characters of the key, to recognise it.")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    """The new key, including its secret value (shown only this once)."""

    key: str
