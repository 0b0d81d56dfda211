"""Dedup runs and their candidate pairs (the review queue)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlmodel import Field, SQLModel

RUN_STATUSES = ("queued", "running", "completed", "failed")
CANDIDATE_STATUSES = ("pending", "merged", "rejected")


class DedupRun(SQLModel, table=True):
    """One pass of the duplicate matcher over a workspace: its parameters and what it did.

    A run inside a request is stored ``completed`` (a failed one rolls back with its request);
    a background run (a workspace over ``service.MAX_SYNC_PROFILES``) goes ``queued`` ->
    ``running`` -> ``completed`` or ``failed``, and has the id of its job, which keeps the
    reason of a failure.
    """

    __tablename__ = "dedup_run"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.CheckConstraint(f"status IN {RUN_STATUSES}", name="status"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    # uuid7: ordering by id is ordering by creation, which is what the run list pages on.
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    threshold: float | None = Field(default=None, sa_column=sa.Column(sa.Double, nullable=True))
    min_score: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    max_block_size: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    dry_run: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    profiles_scanned: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    pairs_compared: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default=sa.text("0")))
    candidates: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    auto_merged: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    merge_conflicts: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    already_decided: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    shared_identifier: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    skipped_blocks: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default=sa.text("0")))
    # The Fellegi-Sunter model the run learned (m, u and weight per level, match rate, EM
    # iterations, reviewers' decisions used): what every score of the run was computed with.
    model: dict | None = Field(default=None, sa_column=sa.Column(pg.JSONB, nullable=True))
    # Trait values the run could not read, by field: {"birthdate": {"count": 3, "examples": [...]}}.
    unreadable: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))


class DedupCandidate(SQLModel, table=True):
    """Two profiles that are probably one person, and what was decided about them.

    One row per pair and workspace (``profile_a_id < profile_b_id``), whichever run found
    it: a later run refreshes a pending pair (score, evidence, ``run_id``) instead of
    queueing it twice, and leaves a merged or rejected pair alone, which is how a rejection
    is remembered.
    """

    __tablename__ = "dedup_candidate"
    __table_args__ = (
        sa.ForeignKeyConstraint(["workspace_id"], ["workspace.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id", "run_id"], ["dedup_run.workspace_id", "dedup_run.id"]),
        sa.CheckConstraint(f"status IN {CANDIDATE_STATUSES}", name="status"),
        sa.CheckConstraint("profile_a_id < profile_b_id", name="pair_order"),
        sa.UniqueConstraint("workspace_id", "profile_a_id", "profile_b_id"),
        # The review queue, best first: by run, and by status across runs (keyset on score, id).
        sa.Index("ix_dedup_candidate_workspace_id_run_id_score_id", "workspace_id", "run_id", "score", "id"),
        sa.Index("ix_dedup_candidate_workspace_id_status_score_id", "workspace_id", "status", "score", "id"),
    )

    workspace_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), primary_key=True))
    run_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    profile_a_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    profile_b_id: uuid.UUID = Field(sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=False))
    score: float = Field(sa_column=sa.Column(sa.Double, nullable=False))
    evidence: dict = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    status: str = Field(sa_column=sa.Column(sa.Text, nullable=False, server_default=sa.text("'pending'")))
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    merge_id: uuid.UUID | None = Field(default=None, sa_column=sa.Column(pg.UUID(as_uuid=True), nullable=True))
    created_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    decided_at: datetime | None = Field(default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True))
