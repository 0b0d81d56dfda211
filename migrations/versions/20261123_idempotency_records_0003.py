"""idempotency records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:25:18.543223+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('idempotency_record',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_idempotency_record_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'key', name=op.f('pk_idempotency_record'))
    )


def downgrade() -> None:
    op.drop_table('idempotency_record')
