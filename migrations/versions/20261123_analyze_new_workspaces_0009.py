"""Analyze the workspace-scoped tables after a fixed number of changed rows

PostgreSQL estimates a workspace its statistics do not know yet at one row, and then any
index that leads with workspace_id looks as cheap as the right one: a new workspace's profile
timeline read the whole workspace's events through the time index (0.5 s at 200,000 events,
growing with the workspace). Autovacuum analyzes a table only after 10% of it has changed,
so in an installation with 10 million events a new workspace stayed unknown for its first
million. With a fixed threshold and no scale factor, it is known after at most one
autovacuum round (a minute by default) and a bounded number of rows. Migration 0008 made
the identifier look-up independent of statistics altogether.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 17:15:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows changed between two analyses: ANALYZE reads a fixed sample (30,000 rows at the default
# statistics target), so its cost does not grow with the table.
THRESHOLDS = {"event": 200_000, "profile": 50_000, "identity": 50_000, "computed_trait_value": 50_000}


def upgrade() -> None:
    for table, rows in THRESHOLDS.items():
        op.execute(
            f"ALTER TABLE {table} SET (autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = {rows})"
        )


def downgrade() -> None:
    for table in THRESHOLDS:
        op.execute(f"ALTER TABLE {table} RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)")
