"""privacy requests, their exports, and suppressed identifiers

`privacy_request` keeps the audit trail of access and erasure requests; `privacy_export` the
document an access request produced (with the person's profile_id, so erasure finds it);
`suppression` the keyed hashes of erased identifiers that ingest and imports drop.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 15:30:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('privacy_request',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('identifier_type', sa.Text(), nullable=False),
    sa.Column('identifier_value', sa.Text(), nullable=True),
    sa.Column('identifier_hash', sa.LargeBinary(), nullable=False),
    sa.Column('audit', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'processing', 'completed', 'failed')", name=op.f('ck_privacy_request_status')),
    sa.CheckConstraint("type IN ('access', 'erasure')", name=op.f('ck_privacy_request_type')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_privacy_request_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_privacy_request'))
    )
    op.create_index('ix_privacy_request_workspace_id_identifier_hash', 'privacy_request', ['workspace_id', 'identifier_hash'], unique=False)
    op.create_table('privacy_export',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('request_id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('document', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'request_id'], ['privacy_request.workspace_id', 'privacy_request.id'], name=op.f('fk_privacy_export_workspace_id_privacy_request'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'request_id', name=op.f('pk_privacy_export'))
    )
    op.create_index('ix_privacy_export_workspace_id_profile_id', 'privacy_export', ['workspace_id', 'profile_id'], unique=False)
    op.create_table('suppression',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('identifier_type', sa.Text(), nullable=False),
    sa.Column('identifier_hash', sa.LargeBinary(), nullable=False),
    sa.Column('request_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_suppression_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_suppression')),
    sa.UniqueConstraint('workspace_id', 'identifier_hash', name=op.f('uq_suppression_workspace_id_identifier_hash'))
    )


def downgrade() -> None:
    op.drop_table('suppression')
    op.drop_index('ix_privacy_export_workspace_id_profile_id', table_name='privacy_export')
    op.drop_table('privacy_export')
    op.drop_index('ix_privacy_request_workspace_id_identifier_hash', table_name='privacy_request')
    op.drop_table('privacy_request')
