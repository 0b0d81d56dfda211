"""workspace.catalog_version: a counter the database bumps on every write to offers and placements

Decisions keep each placement's offers, with their eligibility rules compiled to SQL, in a
per-process cache (app/offers/catalog.py), and read this counter in the profile read they
already make: a cached catalog whose version differs is reloaded before the decision goes
on. The counter is bumped by row triggers, so every write counts, whatever issued it (the
API, the CLI, a hand-written UPDATE). A workspace being deleted cascades to its offers; the
trigger's UPDATE then finds no workspace row and does nothing.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 13:20:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | Sequence[str] | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('workspace', sa.Column('catalog_version', sa.BigInteger(), server_default='0', nullable=False))
    op.execute(
        """
        CREATE FUNCTION bump_offer_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE workspace SET catalog_version = catalog_version + 1
            WHERE id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.workspace_id ELSE NEW.workspace_id END);
            RETURN NULL;
        END $$
        """
    )
    for table in ('offer', 'placement'):
        op.execute(
            f"CREATE TRIGGER {table}_bumps_catalog AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION bump_offer_catalog()"
        )


def downgrade() -> None:
    for table in ('offer', 'placement'):
        op.execute(f"DROP TRIGGER {table}_bumps_catalog ON {table}")
    op.execute("DROP FUNCTION bump_offer_catalog()")
    op.drop_column('workspace', 'catalog_version')
