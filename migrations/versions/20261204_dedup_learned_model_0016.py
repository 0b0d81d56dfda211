"""dedup runs keep the model they learned and the values they could not read

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 16:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('dedup_run', sa.Column('model', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('dedup_run', sa.Column(
        'unreadable', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
    ))


def downgrade() -> None:
    op.drop_column('dedup_run', 'unreadable')
    op.drop_column('dedup_run', 'model')
