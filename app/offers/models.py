"""The offer catalog: offers and the placements (slots on a page, an e-mail, a call-centre screen) they fill."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7

CHANNELS = ("email", "sms", "direct_mail", "push", "web", "ads")
OFFER_KINDS = ("standard", "complementary_item")


class Offer(SQLModel, table=True):
    __tablename__ = "offer"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("workspace_id", "name"),
        sa.CheckConstraint(f"kind IN {OFFER_KINDS!r}", name="kind"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    kind: str = Field(default="standard", sa_column=sa.Column(sa.Text, nullable=False, server_default="standard"))
    content: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    channels: list[str] = Field(default_factory=list, sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False))
    placements: list[str] = Field(
        default_factory=list, sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default="{}")
    )
    valid_from: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    valid_until: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    eligibility: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    value: float = Field(default=1.0, sa_column=sa.Column(sa.Double, nullable=False, server_default="1"))
    weight: float = Field(default=1.0, sa_column=sa.Column(sa.Double, nullable=False, server_default="1"))
    priority: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    prior_propensity: float | None = Field(default=None, sa_column=sa.Column(sa.Double, nullable=True))
    caps: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    tags: list[str] = Field(default_factory=list, sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default="{}"))
    paused: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class Placement(SQLModel, table=True):
    __tablename__ = "placement"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "fallback_offer_id"], ["offer.workspace_id", "offer.id"], ondelete="RESTRICT"
        ),
        sa.UniqueConstraint("workspace_id", "name"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    channel: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    max_offers: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    fallback_offer_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=True))
    # The policy: how much to explore, and which share of decisions forms the control group.
    exploration: str = Field(default="epsilon_greedy", sa_column=sa.Column(sa.Text, nullable=False, server_default="epsilon_greedy"))
    epsilon: float = Field(default=0.1, sa_column=sa.Column(sa.Double, nullable=False, server_default="0.1"))
    control_share: float = Field(default=0.0, sa_column=sa.Column(sa.Double, nullable=False, server_default="0"))
    control_mode: str = Field(default="random", sa_column=sa.Column(sa.Text, nullable=False, server_default="random"))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
