"""Identifiers and the merge ledger."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel


class Identity(SQLModel, table=True):
    """One normalised identifier; it maps to exactly one profile of its workspace."""

    __tablename__ = "identity"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        # Not (workspace_id, profile_id): see BY_PROFILE and migration 0008.
        sa.Index("ix_identity_profile_id", "profile_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    type: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    raw: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    source_message_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


# The identifiers of some profiles ($1 workspace, $2 profile ids). The workspace is checked
# with IS NOT DISTINCT FROM, which no index can serve: a workspace the planner's statistics do
# not know yet is estimated at one row, and with a usable workspace condition PostgreSQL may
# then read the whole workspace through the primary key instead of ix_identity_profile_id
# (migration 0008). `by_profile` is the same condition for SQLAlchemy queries.
BY_PROFILE = "profile_id = ANY($2::uuid[]) AND workspace_id IS NOT DISTINCT FROM $1"
IDENTIFIERS_OF_PROFILES = f"SELECT profile_id, type, value, raw FROM identity WHERE {BY_PROFILE}"


def by_profile(workspace_id: uuid.UUID, profile_ids: list[uuid.UUID]) -> sa.ColumnElement[bool]:
    return sa.and_(Identity.profile_id.in_(profile_ids), Identity.workspace_id.is_not_distinct_from(workspace_id))


class ProfileMerge(SQLModel, table=True):
    """The merge ledger: why two profiles became one, and what to undo on a split."""

    __tablename__ = "profile_merge"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.Index("ix_profile_merge_workspace_id_survivor_id", "workspace_id", "survivor_id"),
        sa.Index("ix_profile_merge_workspace_id_absorbed_id", "workspace_id", "absorbed_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    survivor_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    absorbed_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    rule: str = Field(sa_column=sa.Column(sa.Text, nullable=False), description="identify, alias, shared_identifier, manual, dedup")
    identifier_type: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    identifier_value: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    message_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    absorbed_identities: list = Field(
        default_factory=list, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb"))
    )
    absorbed_traits: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    survivor_traits: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        description="The survivor's traits before the merge, restored by a split.",
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    undone_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))


class IdentityConflict(SQLModel, table=True):
    """Two profiles that a message tried to join but identity limits kept apart."""

    __tablename__ = "identity_conflict"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.Index("ix_identity_conflict_workspace_id_created_at", "workspace_id", "created_at"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    other_profile_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True)))
    identifier_type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    identifier_value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    reason: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    message_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class ProfileMergeEvent(SQLModel, table=True):
    """Which events a merge moved, so a split can send exactly those back."""

    __tablename__ = "profile_merge_event"
    __table_args__ = (sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),)

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    merge_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    message_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))


class IdentityChange(SQLModel, table=True):
    """Append-only log of profiles whose identifiers moved or went away (merges, splits,
    deletions), written by a trigger on `identity` (migration 0007). Ingest's per-process
    identity cache (app/identity/cache.py) reads it to drop what may have changed. Pruned
    after an hour. No foreign key: rows outlive nothing, and a workspace's deletion cascades
    into identity deletes that log here."""

    __tablename__ = "identity_change"

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    changed_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
