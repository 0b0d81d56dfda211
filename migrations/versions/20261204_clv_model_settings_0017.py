"""clv_model: the purchase model in use, the fit's settings, its observation end and comparison

A workspace's CLV model can now be BG/NBD, modified BG/NBD or Pareto/NBD (`model`), chosen by a
calibration/holdout comparison (`comparison`). The fit's request (`settings`) is kept so that
automatic refits reuse it, and `observation_end` records up to when histories were read.

Existing models were all BG/NBD and were scored as of their fit, and their request was not
kept: they get `model = 'bgnbd'`, `observation_end = fitted_at` and empty settings (every
field at its default rule), which is what their next automatic refit used anyway.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 15:40:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('clv_model', sa.Column('model', sa.Text(), nullable=True))
    op.add_column('clv_model', sa.Column('observation_end', sa.DateTime(timezone=True), nullable=True))
    op.add_column('clv_model', sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('clv_model', sa.Column('comparison', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.execute("UPDATE clv_model SET model = 'bgnbd', observation_end = fitted_at, settings = '{}'::jsonb")
    op.alter_column('clv_model', 'model', nullable=False)
    op.alter_column('clv_model', 'observation_end', nullable=False)
    op.alter_column('clv_model', 'settings', nullable=False)
    op.create_check_constraint(
        op.f('ck_clv_model_model'), 'clv_model', "model IN ('bgnbd', 'mbgnbd', 'pareto_nbd')"
    )


def downgrade() -> None:
    # Only BG/NBD parameters fit the old shape: other models are dropped (the next refresh refits).
    op.execute("DELETE FROM clv_model WHERE model <> 'bgnbd'")
    op.drop_constraint(op.f('ck_clv_model_model'), 'clv_model', type_='check')
    op.drop_column('clv_model', 'comparison')
    op.drop_column('clv_model', 'settings')
    op.drop_column('clv_model', 'observation_end')
    op.drop_column('clv_model', 'model')
