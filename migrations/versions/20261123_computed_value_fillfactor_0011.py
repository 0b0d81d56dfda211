"""computed_trait_value: leave room on each page for the refresh's updates (fillfactor 70)

A refresh updates a value in place (`value`, `computed_at`); no indexed column changes. With
room on the page PostgreSQL keeps the new version there (a HOT update) and adds no entry to
either index; on a full page every update moves the row and inserts into both indexes.
bench/refresh.py, 10,000 customers each with a new order (about 82,000 values rewritten):
2.46-2.95 s at the default fillfactor (100), 2.01-2.35 s at 70, same run. Pages written from
now on keep 30% free; existing pages gain room as their rows are updated and pruned.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 20:30:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE computed_trait_value SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE computed_trait_value RESET (fillfactor)")
