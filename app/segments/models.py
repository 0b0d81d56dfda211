"""Segments: definitions and their versions, materialised membership, the change stream, refreshes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7

KINDS = ("rule", "fixed")
CHANGES = ("entered", "exited")


class Segment(SQLModel, table=True):
    """A named audience. `kind` rule: defined by `rule` (current version); fixed: a list of
    members saved once (a discovered cluster), with `rule` NULL."""

    __tablename__ = "segment"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("workspace_id", "name"),
        sa.CheckConstraint(f"kind IN {KINDS!r}", name="kind"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    kind: str = Field(default="rule", sa_column=sa.Column(sa.Text, nullable=False, server_default="rule"))
    rule: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    version: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    source: Any = Field(
        default=None, sa_column=sa.Column(pg.JSONB, nullable=True),
        description="Where a fixed segment came from (the discovery run and cluster).",
    )
    refreshed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True),
        description="Start of the last refresh: profiles changed since are the next incremental refresh's.",
    )
    refreshed_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    member_count: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class SegmentVersion(SQLModel, table=True):
    """Every rule a segment has had; a rule change adds one, old ones stay readable."""

    __tablename__ = "segment_version"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "segment_id"], ["segment.workspace_id", "segment.id"], ondelete="CASCADE"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    segment_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    rule: Any = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class SegmentMember(SQLModel, table=True):
    """Who is in a segment now (as of its last refresh). No foreign keys (a key check per
    written row was a third of a refresh's time, migration 0019): only refreshes write here,
    holding the segment's lock, and deleting a segment deletes its rows under the same lock; an
    erasure takes every segment's lock, then deletes a person's rows (they have `profile_id`);
    a merged profile exits at the next refresh."""

    __tablename__ = "segment_member"
    __table_args__ = (
        # A person's segments (and an erasure's delete).
        sa.Index("ix_segment_member_workspace_id_profile_id", "workspace_id", "profile_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    segment_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    entered_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class SegmentChange(SQLModel, table=True):
    """The change stream: who entered and who exited, in `seq` order per segment. Refreshes of
    one segment are serialised (an advisory lock), so seq order is commit order and a consumer
    following the cursor sees each change exactly once. No foreign keys, as for
    `segment_member`; rows of an erased person go with the erasure (they have `profile_id`)."""

    __tablename__ = "segment_change"
    __table_args__ = (
        sa.CheckConstraint(f"change IN {CHANGES!r}", name="change"),
        # One index on a person: membership at a time (their last change in a segment before
        # it), and erasure and access exports (all their rows).
        sa.Index("ix_segment_change_workspace_id_profile_id_segment_id_seq", "workspace_id", "profile_id", "segment_id", "seq"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    segment_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    change: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class SegmentRefresh(SQLModel, table=True):
    """One refresh of one segment: the member count over time (`history`)."""

    __tablename__ = "segment_refresh"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "segment_id"], ["segment.workspace_id", "segment.id"], ondelete="CASCADE"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    segment_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    mode: str = Field(sa_column=sa.Column(sa.Text, nullable=False), description="full or incremental")
    profiles_checked: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    entered: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    exited: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    member_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    refreshed_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
