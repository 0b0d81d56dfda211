from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.auth import Scope


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


class WorkspaceUpdate(BaseModel):
    """Changes to the workspace. Send `ingest_rate_limit_per_second: null` to fall back to the default."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    # Strict: `false` or "5" is a mistake to report, not 0 or 5 messages/s.
    ingest_rate_limit_per_second: float | None = Field(default=None, ge=0, le=10_000_000, strict=True)


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
