"""event: a profile's timeline indexed by profile alone, as identity's in 0008

A workspace the planner's statistics do not know yet is estimated at one row, and a profile's
timeline then read the whole workspace's events through (workspace_id, timestamp): 0.5 s at
200,000 events, growing with the workspace until the next ANALYZE. With the timeline index on
(profile_id, timestamp, message_id) and the workspace checked by a condition no index serves
(app.ingest.models.of_profile), queries by profile can only use it. The entries are also
16 bytes smaller, on the table every event is written to.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 17:10:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# CONCURRENTLY (in an autocommit block), as in 0008: ingest keeps writing while the index
# builds. A failed concurrent build leaves an invalid index behind: the new index is dropped
# first, so a rerun starts clean.


def _replace(drop: str, create: str, columns: list[str]) -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {create}")
        op.create_index(create, 'event', columns, unique=False, postgresql_concurrently=True)
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {drop}")


def upgrade() -> None:
    _replace('ix_event_workspace_id_profile_id_timestamp', 'ix_event_profile_id_timestamp',
             ['profile_id', 'timestamp', 'message_id'])


def downgrade() -> None:
    _replace('ix_event_profile_id_timestamp', 'ix_event_workspace_id_profile_id_timestamp',
             ['workspace_id', 'profile_id', 'timestamp', 'message_id'])
