"""identity: index by profile alone, so no index but the primary key leads with workspace_id

A workspace the planner's statistics do not know yet (created or grown since the last
ANALYZE) is estimated at one row. Every index that leads with workspace_id then costs the
same, and PostgreSQL picked (workspace_id, profile_id) for the identifier look-up, filtering
the workspace's every identifier for each key: 100 keys took 4.8 s in a workspace of 40,000
identifiers instead of 2 ms. With the profile index on profile_id alone, the look-up can only
use the primary key (workspace_id, type, value); queries by profile use this index and check
the workspace as a filter (app.identity.repository.BY_PROFILE).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:50:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# CONCURRENTLY: an installation with millions of identifiers keeps ingesting while the index
# builds (a plain CREATE INDEX blocks every write to the table until it is done). That cannot
# run inside a transaction, hence the autocommit block. A failed concurrent build leaves an
# invalid index behind: the new index is dropped first, so a rerun starts clean.


def _replace(drop: str, create: str, columns: list[str]) -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {create}")
        op.create_index(create, 'identity', columns, unique=False, postgresql_concurrently=True)
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {drop}")


def upgrade() -> None:
    _replace('ix_identity_workspace_id_profile_id', 'ix_identity_profile_id', ['profile_id'])


def downgrade() -> None:
    _replace('ix_identity_profile_id', 'ix_identity_workspace_id_profile_id', ['workspace_id', 'profile_id'])
