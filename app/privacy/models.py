"""Privacy requests (access, erasure), their exports, and suppressed identifiers."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7

REQUEST_TYPES = ("access", "erasure")
REQUEST_STATUSES = ("pending", "processing", "completed", "failed")


class PrivacyRequest(SQLModel, table=True):
    """A data subject's request and its audit trail.

    The identifier is kept in clear only until the request is processed (`identifier_value`
    is then set to NULL); `identifier_hash` (HMAC, keyed per workspace) stays, so the request
    can still be matched to the person's suppression entry without holding the identifier.
    Erasure keeps this row: it is the proof that the request was honoured.
    """

    __tablename__ = "privacy_request"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.CheckConstraint(f"type IN {REQUEST_TYPES!r}", name="type"),
        sa.CheckConstraint(f"status IN {REQUEST_STATUSES!r}", name="status"),
        sa.Index("ix_privacy_request_workspace_id_identifier_hash", "workspace_id", "identifier_hash"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    # uuid7: ordering by id is ordering by creation (the list pages on it).
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    identifier_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    identifier_value: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    identifier_hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    audit: list = Field(
        default_factory=list, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb"))
    )
    result: dict | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    started_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))


class PrivacyExport(SQLModel, table=True):
    """The document an access request produced. It carries the person's `profile_id`, so a
    later erasure of the person finds and deletes it like every other table of theirs."""

    __tablename__ = "privacy_export"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["workspace_id", "request_id"], ["privacy_request.workspace_id", "privacy_request.id"], ondelete="CASCADE"
        ),
        sa.Index("ix_privacy_export_workspace_id_profile_id", "workspace_id", "profile_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    request_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    document: dict = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class Suppression(SQLModel, table=True):
    """An identifier that must not come back: ingest and imports drop messages carrying it.

    Only an HMAC-SHA256 of `type:value` (the normalised identifier) under the workspace's
    suppression key is stored, never the identifier (see app/privacy/hashing.py)."""

    __tablename__ = "suppression"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("workspace_id", "identifier_hash"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    identifier_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    identifier_hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    request_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=True))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
