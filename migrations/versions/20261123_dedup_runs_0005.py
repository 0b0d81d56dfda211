"""dedup runs and candidates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dedup_run',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('min_score', sa.Double(), nullable=False),
    sa.Column('max_block_size', sa.Integer(), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('profiles_scanned', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('pairs_compared', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('candidates', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('auto_merged', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('merge_conflicts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('already_decided', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('shared_identifier', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('skipped_blocks', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'completed', 'failed')", name=op.f('ck_dedup_run_status')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_dedup_run_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_dedup_run'))
    )
    op.create_table('dedup_candidate',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('profile_a_id', sa.UUID(), nullable=False),
    sa.Column('profile_b_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'pending'"), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('merge_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'merged', 'rejected')", name=op.f('ck_dedup_candidate_status')),
    sa.CheckConstraint('profile_a_id < profile_b_id', name=op.f('ck_dedup_candidate_pair_order')),
    sa.ForeignKeyConstraint(['workspace_id', 'run_id'], ['dedup_run.workspace_id', 'dedup_run.id'], name=op.f('fk_dedup_candidate_workspace_id_dedup_run')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_dedup_candidate_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_dedup_candidate')),
    sa.UniqueConstraint('workspace_id', 'profile_a_id', 'profile_b_id', name=op.f('uq_dedup_candidate_workspace_id_profile_a_id_profile_b_id'))
    )
    op.create_index('ix_dedup_candidate_workspace_id_run_id_score_id', 'dedup_candidate', ['workspace_id', 'run_id', 'score', 'id'], unique=False)
    op.create_index('ix_dedup_candidate_workspace_id_status_score_id', 'dedup_candidate', ['workspace_id', 'status', 'score', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dedup_candidate_workspace_id_status_score_id', table_name='dedup_candidate')
    op.drop_index('ix_dedup_candidate_workspace_id_run_id_score_id', table_name='dedup_candidate')
    op.drop_table('dedup_candidate')
    op.drop_table('dedup_run')
