"""Groups (Segment `group` calls): accounts such as a company, household or team, with their
traits and the profiles that belong to them. Ingest writes them; this domain reads them."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel


class Account(SQLModel, table=True):
    """A Segment `group`: a company, household or team that profiles belong to."""

    __tablename__ = "account"
    __table_args__ = (sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),)

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    group_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    traits: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    updated_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )


class AccountMember(SQLModel, table=True):
    __tablename__ = "account_member"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["workspace_id", "group_id"], ["account.workspace_id", "account.group_id"], ondelete="CASCADE"
        ),
        sa.Index("ix_account_member_workspace_id_profile_id", "workspace_id", "profile_id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    group_id: str = Field(sa_column=sa.Column(sa.Text, primary_key=True))
    profile_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
