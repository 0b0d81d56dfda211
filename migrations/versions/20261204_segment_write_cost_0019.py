"""segment_member and segment_change: fewer checks and indexes per written membership

A full refresh writes each member twice (its `segment_member` row and its `entered` change).
Measured on 50,000 profiles (EXPLAIN ANALYZE of the refresh statement, docs/BENCHMARKS.md), the
foreign key from `segment_member` to `profile` cost about 30 µs per member (a locking probe of
the profile row for every inserted row) and each index of `segment_change` about 10 µs.

- The foreign key to `profile` goes, as the one to `segment` already had: an erasure takes
  every segment's refresh lock (no refresh that read the person can still write after it),
  then deletes the person's rows from every table with a `profile_id` (app/privacy, found from
  the catalog); a merged profile is not deleted and exits at the next refresh.
- `segment_change`'s two indexes on a person, (workspace, segment, profile, seq) for membership
  at a time and (workspace, profile) for erasure and access exports, become one:
  (workspace, profile, segment, seq) serves both.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 19:10:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0019'
down_revision: str | Sequence[str] | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint('fk_segment_member_workspace_id_profile', 'segment_member', type_='foreignkey')
    op.create_index(
        'ix_segment_change_workspace_id_profile_id_segment_id_seq', 'segment_change',
        ['workspace_id', 'profile_id', 'segment_id', 'seq'], unique=False,
    )
    op.drop_index('ix_segment_change_workspace_id_segment_id_profile_id_seq', table_name='segment_change')
    op.drop_index('ix_segment_change_workspace_id_profile_id', table_name='segment_change')


def downgrade() -> None:
    op.create_index('ix_segment_change_workspace_id_profile_id', 'segment_change', ['workspace_id', 'profile_id'], unique=False)
    op.create_index(
        'ix_segment_change_workspace_id_segment_id_profile_id_seq', 'segment_change',
        ['workspace_id', 'segment_id', 'profile_id', 'seq'], unique=False,
    )
    op.drop_index('ix_segment_change_workspace_id_profile_id_segment_id_seq', table_name='segment_change')
    # Memberships of profiles deleted meanwhile would break the key: drop them first.
    op.execute(
        "DELETE FROM segment_member AS m WHERE NOT EXISTS "
        "(SELECT 1 FROM profile AS p WHERE p.workspace_id = m.workspace_id AND p.id = m.profile_id)"
    )
    op.create_foreign_key(
        'fk_segment_member_workspace_id_profile', 'segment_member', 'profile',
        ['workspace_id', 'profile_id'], ['workspace_id', 'id'], ondelete='CASCADE',
    )
