"""Workspaces (tenants) and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7


class Workspace(SQLModel, table=True):
    __tablename__ = "workspace"

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    settings: dict = Field(
        default_factory=dict,
        sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    # Bumped by the database on every write to `offer` and `placement` (migration 0020): how
    # decisions know their cached catalog is current (app/offers/catalog.py).
    catalog_version: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0")
    )


class ApiKey(SQLModel, table=True):
    """An API key, stored only as a SHA-256 hash.

    The hash is unique across workspaces (it is how a request finds its workspace), the one
    unique key that cannot lead with workspace_id. Keys are 256-bit random tokens, so a plain
    SHA-256 is not brute-forceable and keeps authentication to one index lookup.
    """

    __tablename__ = "api_key"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('write', 'secret')", name="kind"),
        sa.Index("ix_api_key_workspace_id_created_at", "workspace_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid7, primary_key=True)
    workspace_id: uuid.UUID = Field(
        sa_column=sa.Column(pg.UUID(as_uuid=True), sa.ForeignKey("workspace.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    prefix: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    key_hash: str = Field(sa_column=sa.Column(sa.Text, nullable=False, unique=True))
    scopes: list[str] = Field(
        default_factory=list,
        sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))
