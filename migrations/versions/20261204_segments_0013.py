"""segments: definitions, versions, materialised membership, change stream, refreshes; the
value conversions the rule compiler uses

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04 15:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The numeric value of a jsonb value: a number, or a string holding a plain decimal number (the
# exponent capped so "1e999999" cannot blow up); anything else is NULL. Simple SQL functions
# are inlined by the planner.
NUMERIC = r"""
CREATE FUNCTION clientele_numeric(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE jsonb_typeof(v)
    WHEN 'number' THEN v::numeric
    WHEN 'string' THEN CASE WHEN (v #>> '{}') ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$'
                            THEN (v #>> '{}')::numeric END
END
$$
"""

# The instant of a jsonb value: an ISO 8601 date or date-time string (UTC without an offset),
# or a number of Unix seconds (milliseconds above 1e11). Impossible dates (2023-02-29) and
# anything else are NULL, never an error. Nested CASEs fix the order of the checks.
TIMESTAMPTZ = r"""
CREATE FUNCTION clientele_timestamptz(v jsonb) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE jsonb_typeof(v)
    WHEN 'number' THEN CASE
        WHEN abs(v::numeric) < 1e11 THEN to_timestamp(v::float8)
        WHEN abs(v::numeric) < 1e14 THEN to_timestamp(v::float8 / 1000) END
    WHEN 'string' THEN CASE
        WHEN (v #>> '{}') ~ '^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?)?$'
        THEN CASE
            WHEN substr(v #>> '{}', 9, 2)::int > extract(day FROM make_date(substr(v #>> '{}', 1, 4)::int,
                                                   substr(v #>> '{}', 6, 2)::int, 1) + interval '1 month - 1 day')
            THEN NULL
            WHEN (v #>> '{}') ~ '[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d(:?\d\d)?)$' THEN (v #>> '{}')::timestamptz
            ELSE (v #>> '{}')::timestamp AT TIME ZONE 'UTC' END
    END
END
$$
"""

# The day of year `y` on which instant `t` (read in UTC) has its anniversary: 29 February
# falls on 28 February in other years.
ANNIVERSARY = r"""
CREATE FUNCTION clientele_anniversary(t timestamptz, y int) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT make_date(y, extract(month FROM t AT TIME ZONE 'UTC')::int,
                 least(extract(day FROM t AT TIME ZONE 'UTC')::int,
                       extract(day FROM make_date(y, extract(month FROM t AT TIME ZONE 'UTC')::int, 1)
                                         + interval '1 month - 1 day')::int))
$$
"""

# Days from `today` to the next anniversary of `t` (0 on the day itself).
DAYS_TO_ANNIVERSARY = r"""
CREATE FUNCTION clientele_days_to_anniversary(t timestamptz, today date) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN clientele_anniversary(t, extract(year FROM today)::int) >= today
    THEN clientele_anniversary(t, extract(year FROM today)::int) - today
    ELSE clientele_anniversary(t, extract(year FROM today)::int + 1) - today
END
$$
"""


def upgrade() -> None:
    op.create_table('segment',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('kind', sa.Text(), server_default='rule', nullable=False),
    sa.Column('rule', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('source', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_version', sa.Integer(), nullable=True),
    sa.Column('member_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('rule', 'fixed')", name=op.f('ck_segment_kind')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_segment_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_segment')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_segment_workspace_id_name'))
    )
    op.create_table('segment_version',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('segment_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('rule', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'segment_id'], ['segment.workspace_id', 'segment.id'], name=op.f('fk_segment_version_workspace_id_segment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'segment_id', 'version', name=op.f('pk_segment_version'))
    )
    op.create_table('segment_member',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('segment_id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'profile_id'], ['profile.workspace_id', 'profile.id'], name=op.f('fk_segment_member_workspace_id_profile'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'segment_id'], ['segment.workspace_id', 'segment.id'], name=op.f('fk_segment_member_workspace_id_segment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'segment_id', 'profile_id', name=op.f('pk_segment_member'))
    )
    op.create_index('ix_segment_member_workspace_id_profile_id', 'segment_member', ['workspace_id', 'profile_id'], unique=False)
    op.create_table('segment_change',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('segment_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('change', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("change IN ('entered', 'exited')", name=op.f('ck_segment_change_change')),
    sa.ForeignKeyConstraint(['workspace_id', 'segment_id'], ['segment.workspace_id', 'segment.id'], name=op.f('fk_segment_change_workspace_id_segment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'segment_id', 'seq', name=op.f('pk_segment_change'))
    )
    op.create_index('ix_segment_change_workspace_id_profile_id', 'segment_change', ['workspace_id', 'profile_id'], unique=False)
    op.create_index('ix_segment_change_workspace_id_segment_id_profile_id_seq', 'segment_change', ['workspace_id', 'segment_id', 'profile_id', 'seq'], unique=False)
    op.create_table('segment_refresh',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('segment_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('mode', sa.Text(), nullable=False),
    sa.Column('profiles_checked', sa.BigInteger(), nullable=True),
    sa.Column('entered', sa.BigInteger(), nullable=False),
    sa.Column('exited', sa.BigInteger(), nullable=False),
    sa.Column('member_count', sa.BigInteger(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'segment_id'], ['segment.workspace_id', 'segment.id'], name=op.f('fk_segment_refresh_workspace_id_segment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'segment_id', 'id', name=op.f('pk_segment_refresh'))
    )
    for ddl in (NUMERIC, TIMESTAMPTZ, ANNIVERSARY, DAYS_TO_ANNIVERSARY):
        op.execute(ddl)


def downgrade() -> None:
    op.execute('DROP FUNCTION clientele_days_to_anniversary(timestamptz, date)')
    op.execute('DROP FUNCTION clientele_anniversary(timestamptz, int)')
    op.execute('DROP FUNCTION clientele_timestamptz(jsonb)')
    op.execute('DROP FUNCTION clientele_numeric(jsonb)')
    op.drop_table('segment_refresh')
    op.drop_index('ix_segment_change_workspace_id_segment_id_profile_id_seq', table_name='segment_change')
    op.drop_index('ix_segment_change_workspace_id_profile_id', table_name='segment_change')
    op.drop_table('segment_change')
    op.drop_index('ix_segment_member_workspace_id_profile_id', table_name='segment_member')
    op.drop_table('segment_member')
    op.drop_table('segment_version')
    op.drop_table('segment')
