"""identity_change: the log that keeps ingest's identity cache exact

A statement-level trigger on `identity` appends the previous profile of every updated or
deleted identifier (merges, splits, deleted profiles) to `identity_change`, after taking the
workspace's exclusive identity lock, so the log has no gaps for a reader holding the shared
lock. See app/identity/cache.py.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 12:30:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 7310001 is app.identity.service.LOCK_NAMESPACE; the key is the one lock_workspace() uses.
TRIGGER_FUNCTION = """
CREATE FUNCTION clientele_identity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7310001, hashtext(w.workspace_id::text))
    FROM (SELECT DISTINCT workspace_id FROM old_rows ORDER BY workspace_id) AS w;
    INSERT INTO identity_change (workspace_id, profile_id)
    SELECT DISTINCT workspace_id, profile_id FROM old_rows;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table('identity_change',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('workspace_id', 'seq', name=op.f('pk_identity_change'))
    )
    op.execute(TRIGGER_FUNCTION)
    for event in ('UPDATE', 'DELETE'):
        op.execute(
            f'CREATE TRIGGER identity_changed_{event.lower()} AFTER {event} ON identity '
            'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION clientele_identity_changed()'
        )


def downgrade() -> None:
    for event in ('update', 'delete'):
        op.execute(f'DROP TRIGGER identity_changed_{event} ON identity')
    op.execute('DROP FUNCTION clientele_identity_changed()')
    op.drop_table('identity_change')
