"""Stored events: one row per (workspace, messageId)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        # A profile's timeline, newest first (keyset pagination on timestamp, message_id). Not
        # led by workspace_id: see of_profile() and migration 0010.
        sa.Index("ix_event_profile_id_timestamp", "profile_id", "timestamp", "message_id"),
        # The workspace's timeline and time-window scans.
        sa.Index("ix_event_workspace_id_timestamp", "workspace_id", "timestamp", "message_id"),
        # Behaviour by event name in a time window (segments, computed traits).
        sa.Index("ix_event_workspace_id_event_timestamp", "workspace_id", "event", "timestamp"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    message_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    profile_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True)))
    type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    event: str | None = Field(default=None, sa_column=sa.Column(sa.Text), description="track: event name")
    name: str | None = Field(default=None, sa_column=sa.Column(sa.Text), description="page/screen name")
    user_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    anonymous_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    group_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    previous_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    properties: dict = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    traits: dict = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    context: dict = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    integrations: dict = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    timestamp: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False),
        description="Event time corrected for client clock skew (and clamped if far in the future).",
    )
    original_timestamp: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    sent_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    received_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    timestamp_clamped: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )


def of_profile(workspace_id: uuid.UUID, profile_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """One profile's events. The workspace is checked with IS NOT DISTINCT FROM, which no index
    can serve, so the planner takes ix_event_profile_id_timestamp even for a workspace its
    statistics do not know yet (estimated at one row, which makes every index led by
    workspace_id look as cheap: it read the whole workspace's events). Migration 0010; the
    same reasoning as app.identity.models.BY_PROFILE. Raw SQL spells it the same way."""
    return sa.and_(Event.profile_id == profile_id, Event.workspace_id.is_not_distinct_from(workspace_id))
