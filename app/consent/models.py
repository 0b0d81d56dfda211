"""Consent: purposes, privacy notices, the append-only consent ledger, used unsubscribe tokens.

The ledger (`consent_record`) is append-only in the database: a trigger refuses UPDATE and
DELETE unless the transaction has set `clientele.erasure = 'on'` (erasure of a person) or the
row's workspace is being deleted (migration 0014).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

LAWFUL_BASES = ("consent", "legitimate_interest", "contract", "legal_obligation", "vital_interest", "public_task")
CHANNELS = ("email", "sms", "push", "direct_mail", "web", "ads")
STATUSES = ("granted", "denied", "withdrawn")
SOURCES = ("form", "api", "import", "sdk", "support")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class ConsentPurpose(SQLModel, table=True):
    """What a profile's data may be used for, per workspace (seeded on workspace creation)."""

    __tablename__ = "consent_purpose"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.CheckConstraint(_in("lawful_basis", LAWFUL_BASES), name="lawful_basis"),
        sa.CheckConstraint("default_status IN ('granted', 'denied')", name="default_status"),
        # Fail closed: a purpose that rests on consent is denied until the person says yes.
        sa.CheckConstraint("lawful_basis <> 'consent' OR default_status = 'denied'", name="opt_in_denied"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    lawful_basis: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    default_status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    sdk_categories: list[str] = Field(
        default_factory=list,
        sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'::text[]")),
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class PrivacyNotice(SQLModel, table=True):
    """One version of a privacy notice (the text or URL shown to people). Immutable once a
    consent record cites it (checked by the service and by a trigger)."""

    __tablename__ = "privacy_notice"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("workspace_id", "key", "version", name="uq_privacy_notice_workspace_id_key_version"),
        sa.CheckConstraint("version >= 1", name="version"),
        sa.CheckConstraint("url IS NOT NULL OR text IS NOT NULL", name="content"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    version: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    major: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    title: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    url: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    text: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    published_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class ConsentRecord(SQLModel, table=True):
    """One statement of a person about one purpose (on one channel, or every channel when
    `channel` is null). Append-only; see the module docstring."""

    __tablename__ = "consent_record"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "profile_id"], ["profile.workspace_id", "profile.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["workspace_id", "purpose"], ["consent_purpose.workspace_id", "consent_purpose.key"]),
        sa.ForeignKeyConstraint(
            ["workspace_id", "notice_key", "notice_version"],
            ["privacy_notice.workspace_id", "privacy_notice.key", "privacy_notice.version"],
        ),
        sa.CheckConstraint(_in("status", STATUSES), name="status"),
        sa.CheckConstraint(_in("source", SOURCES), name="source"),
        sa.CheckConstraint(f"channel IS NULL OR {_in('channel', CHANNELS)}", name="channel"),
        sa.CheckConstraint("(notice_key IS NULL) = (notice_version IS NULL)", name="notice"),
        # A person's state for a purpose: the latest records first.
        sa.Index(
            "ix_consent_record_workspace_id_profile_id_purpose", "workspace_id", "profile_id", "purpose",
            sa.text("occurred_at DESC"), sa.text("id DESC"),
        ),
        sa.Index(
            "ix_consent_record_workspace_id_notice", "workspace_id", "notice_key", "notice_version",
            postgresql_where=sa.text("notice_key IS NOT NULL"),
        ),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    purpose: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    channel: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    method: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    notice_key: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    notice_version: int | None = Field(default=None, sa_column=sa.Column(sa.Integer))
    occurred_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    proof: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    message_id: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    recorded_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class UnsubscribeTokenUse(SQLModel, table=True):
    """An unsubscribe token that has been used (a token works once)."""

    __tablename__ = "unsubscribe_token_use"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "profile_id"], ["profile.workspace_id", "profile.id"], ondelete="CASCADE"
        ),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    token_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    record_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    used_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
