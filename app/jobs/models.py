"""Tracked jobs: the status of background work a user asked for (a refresh, a fit...).

The queue itself is pgqueuer's tables (installed by migration 0004). Its rows carry no
workspace and vanish when a job completes, so work a client wants to follow gets a row here:
bound to a workspace, kept after completion, with the outcome.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

from app.core.ids import uuid7

JOB_STATUSES = ("queued", "running", "done", "failed")


class Job(SQLModel, table=True):
    __tablename__ = "job"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        sa.Index("ix_job_workspace_id_task_created_at", "workspace_id", "task", "created_at"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(default_factory=uuid7, sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    task: str = Field(sa_column=sa.Column(sa.Text, nullable=False), description="Queue entrypoint, e.g. traits.refresh")
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    params: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    result: dict | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    queue_job_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, nullable=True), description="pgqueuer's job id"
    )
    attempts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    started_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True)))
