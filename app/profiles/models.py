"""Profiles: one row per person (or per absorbed duplicate, pointing at its survivor)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel


class Profile(SQLModel, table=True):
    __tablename__ = "profile"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.Index("ix_profile_workspace_id_updated_at", "workspace_id", "updated_at", "id"),
        # The profiles merged into a survivor (consent reads their records; few rows, so the
        # index costs nothing on the inserts of new, unmerged profiles). Migration 0014.
        sa.Index(
            "ix_profile_workspace_id_merged_into", "workspace_id", "merged_into",
            postgresql_where=sa.text("merged_into IS NOT NULL"),
        ),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    traits: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    merged_into: uuid.UUID | None = Field(
        default=None, sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=True),
        description="Set when this profile was absorbed by a merge: the surviving profile.",
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
