"""computed_trait_dirty: one row per ingest batch (an array of profiles) instead of one per profile

Ingest marks the profiles each batch touched for the incremental computed-trait refresh. One
row per (window, profile) with ON CONFLICT made concurrent batches that touch the same people
wait on each other's uncommitted index entries, and cost one index insertion per profile. One
append-only row per batch costs one heap row and one index entry and never waits; the refresh
job takes the union when it claims a window. Pending marks are carried over.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 12:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set_aside(new_name: str) -> None:
    """Rename the current table and its constraints out of the way of the one replacing it."""
    op.execute(f'ALTER TABLE computed_trait_dirty RENAME TO {new_name}')
    op.execute(f'ALTER TABLE {new_name} RENAME CONSTRAINT pk_computed_trait_dirty TO pk_{new_name}')
    op.execute(f'ALTER TABLE {new_name} RENAME CONSTRAINT fk_computed_trait_dirty_workspace_id_workspace '
               f'TO fk_{new_name}_workspace_id_workspace')


def upgrade() -> None:
    _set_aside('computed_trait_dirty_old')
    op.create_table('computed_trait_dirty',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('profile_ids', postgresql.ARRAY(sa.UUID()), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_computed_trait_dirty_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'bucket', 'id', name=op.f('pk_computed_trait_dirty'))
    )
    op.execute(
        'INSERT INTO computed_trait_dirty (workspace_id, bucket, profile_ids) '
        'SELECT workspace_id, bucket, array_agg(profile_id ORDER BY profile_id) '
        'FROM computed_trait_dirty_old GROUP BY workspace_id, bucket'
    )
    op.drop_table('computed_trait_dirty_old')


def downgrade() -> None:
    _set_aside('computed_trait_dirty_new')
    op.create_table('computed_trait_dirty',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_computed_trait_dirty_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'bucket', 'profile_id', name=op.f('pk_computed_trait_dirty'))
    )
    op.execute(
        'INSERT INTO computed_trait_dirty (workspace_id, bucket, profile_id) '
        'SELECT DISTINCT workspace_id, bucket, p FROM computed_trait_dirty_new, unnest(profile_ids) AS p'
    )
    op.drop_table('computed_trait_dirty_new')
