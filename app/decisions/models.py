"""The decision ledger, feedback, cap counters, propensity models and item associations.

Every table that holds something about a person carries `workspace_id` and `profile_id`, so
a person's access export and erasure find these rows from the database metadata.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7

FEEDBACK_TYPES = ("impression", "click", "accept", "decline", "convert")
FEEDBACK_SOURCES = ("api", "event", "import")
# The cap counters' key for caps over all people (`total`): no profile.
EVERYONE = uuid.UUID(int=0)


class Decision(SQLModel, table=True):
    """One answer to "what should we offer this person, here, now?", with everything behind it."""

    __tablename__ = "decision"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.Index("ix_decision_workspace_id_profile_id_created_at", "workspace_id", "profile_id", "created_at"),
        sa.Index("ix_decision_workspace_id_created_at", "workspace_id", "created_at"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    placement: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    channel: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    context: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    offers: list[Any] = Field(default_factory=list, sa_column=sa.Column(pg.JSONB, nullable=False))
    candidates: list[Any] = Field(default_factory=list, sa_column=sa.Column(pg.JSONB, nullable=False))
    exclusions: list[Any] = Field(default_factory=list, sa_column=sa.Column(pg.JSONB, nullable=False))
    consent: list[Any] = Field(default_factory=list, sa_column=sa.Column(pg.JSONB, nullable=False))
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    # The model's inputs as they were at decision time (traits, computed traits, behaviour), so
    # training learns from what the policy saw, not from what the person became later.
    features: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False))
    model_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    control: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False))
    fallback: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    imported: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class DecisionOffer(SQLModel, table=True):
    """An offer a decision returned, with the probability its policy gave it (the training rows)."""

    __tablename__ = "decision_offer"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["workspace_id", "decision_id"], ["decision.workspace_id", "decision.id"], ondelete="CASCADE"
        ),
        sa.Index("ix_decision_offer_workspace_id_offer_id_created_at", "workspace_id", "offer_id", "created_at"),
        sa.Index("ix_decision_offer_workspace_id_profile_id", "workspace_id", "profile_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    decision_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    offer_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    rank: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    probability: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    propensity: float | None = Field(default=None, sa_column=sa.Column(sa.Double, nullable=True))
    score: float | None = Field(default=None, sa_column=sa.Column(sa.Double, nullable=True))
    created_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class DecisionFeedback(SQLModel, table=True):
    """What the person did with an offer: from the API, from tracked events, or imported."""

    __tablename__ = "decision_feedback"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["workspace_id", "decision_id", "offer_id"],
            ["decision_offer.workspace_id", "decision_offer.decision_id", "decision_offer.offer_id"],
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(f"type IN {FEEDBACK_TYPES!r}", name="type"),
        sa.CheckConstraint(f"source IN {FEEDBACK_SOURCES!r}", name="source"),
        # An event's feedback is recorded once, however often the event is replayed.
        sa.Index("uq_decision_feedback_workspace_id_message_id", "workspace_id", "message_id", unique=True,
                 postgresql_where=sa.text("message_id IS NOT NULL")),
        sa.Index("ix_decision_feedback_workspace_id_decision_id", "workspace_id", "decision_id", "offer_id"),
        sa.Index("ix_decision_feedback_workspace_id_profile_id", "workspace_id", "profile_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    decision_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    offer_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    type: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    value: float | None = Field(default=None, sa_column=sa.Column(sa.Double, nullable=True))
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    message_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    occurred_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class OfferCapCounter(SQLModel, table=True):
    """How often an offer was served to a person (or to everyone: `profile_id` = EVERYONE) in a
    period (`d:2026-12-04`, `w:2026-W49`, `total`). Served offers are counted when they are
    served, under a row lock, so concurrent decisions cannot overshoot a cap."""

    __tablename__ = "offer_cap_counter"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id", "offer_id"], ["offer.workspace_id", "offer.id"], ondelete="CASCADE"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    offer_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    period: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    count: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))


class OfferModel(SQLModel, table=True):
    """One trained version of a workspace's propensity models: parameters as JSON (never pickle)."""

    __tablename__ = "offer_model"
    __table_args__ = (sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),)

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    version: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    target: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    params: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    metrics: dict[str, Any] = Field(sa_column=sa.Column(pg.JSONB, nullable=False))
    trained_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class ItemAssociation(SQLModel, table=True):
    """Item-item associations from co-purchases: for each item, its strongest neighbours."""

    __tablename__ = "item_association"
    __table_args__ = (sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),)

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    item_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    other_item_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    score: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    support: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
