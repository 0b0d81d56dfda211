"""Computed traits: definitions, per-profile values, the incremental-refresh backlog, CLV models."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7

AGGREGATIONS = ("count", "sum", "avg", "min", "max", "first", "last", "most_frequent", "distinct")


class ComputedTrait(SQLModel, table=True):
    """A workspace's definition: aggregate one property of one event over a time window."""

    __tablename__ = "computed_trait"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("workspace_id", "name"),
        sa.CheckConstraint(f"aggregation IN {AGGREGATIONS!r}", name="aggregation"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    aggregation: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    event: str = Field(sa_column=sa.Column(sa.Text, nullable=False), description="track event name")
    property: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    window_days: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, nullable=True), description="None: all time"
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class ComputedTraitValue(SQLModel, table=True):
    """One trait of one profile, as of `computed_at`. Written set-based by the refresh."""

    __tablename__ = "computed_trait_value"
    __table_args__ = (
        # Erasing a profile erases what was computed about it.
        sa.ForeignKeyConstraint(
            ["workspace_id", "profile_id"], ["profile.workspace_id", "profile.id"], ondelete="CASCADE"
        ),
        # One trait across the workspace's profiles (RFM ranking, segments).
        sa.Index("ix_computed_trait_value_workspace_id_name", "workspace_id", "name"),
        # Room on each page for refreshes to update values in place (migration 0011).
        {"postgresql_with": {"fillfactor": 70}},
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    value: Any = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    computed_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class ComputedTraitDirty(SQLModel, table=True):
    """Profiles touched by new events, waiting for the incremental refresh of their debounce window.

    `bucket` is the window (epoch seconds // delay). Append-only, one row per ingest batch: a
    batch never waits on another batch that touched the same people, and costs one row. Ingest
    only ever inserts into the current window while the job of a past window deletes its own
    rows (and takes the union of their profiles), so the two never wait on each other either.
    """

    __tablename__ = "computed_trait_dirty"
    __table_args__ = (sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),)

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    bucket: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    )
    profile_ids: list[uuid.UUID] = Field(sa_column=sa.Column(pg.ARRAY(pg.UUID(as_uuid=True)), nullable=False))


CLV_MODELS = ("bgnbd", "mbgnbd", "pareto_nbd")


class ClvModel(SQLModel, table=True):
    """A workspace's last fitted purchase model (BG/NBD, MBG/NBD or Pareto/NBD) and Gamma-Gamma
    spend model (app.traits.clv), with the settings every automatic refit reuses."""

    __tablename__ = "clv_model"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.CheckConstraint(f"model IN {CLV_MODELS!r}", name="model"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    model: str = Field(sa_column=sa.Column(sa.Text, nullable=False), description="bgnbd, mbgnbd or pareto_nbd")
    params: dict = Field(
        sa_column=sa.Column(pg.JSONB, nullable=False),
        description="The purchase model's parameters (time in weeks: r, alpha and a, b or s, beta) and "
        "Gamma-Gamma p, q, v (null when not fitted).",
    )
    log_likelihood: float = Field(sa_column=sa.Column(sa.Float, nullable=False), description="purchase model")
    gamma_gamma_log_likelihood: float | None = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    customer_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    repeat_customer_count: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    calibration_start: date | None = Field(default=None, sa_column=sa.Column(sa.Date, nullable=True))
    calibration_end: date = Field(sa_column=sa.Column(sa.Date, nullable=False))
    observation_end: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False),
        description="Customers' histories were read up to here at the fit.",
    )
    settings: dict = Field(
        sa_column=sa.Column(pg.JSONB, nullable=False),
        description="The fit's request (ClvSettings); automatic refits reuse it.",
    )
    comparison: dict | None = Field(
        default=None, sa_column=sa.Column(pg.JSONB, nullable=True),
        description="The calibration/holdout comparison that chose the model (ClvComparison).",
    )
    fitted_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
