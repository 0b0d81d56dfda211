"""profiles identities events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:01:18.870104+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('group_id', sa.Text(), nullable=False),
    sa.Column('traits', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_account_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'group_id', name=op.f('pk_account'))
    )
    op.create_table('event',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=True),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('event', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('anonymous_id', sa.Text(), nullable=True),
    sa.Column('group_id', sa.Text(), nullable=True),
    sa.Column('previous_id', sa.Text(), nullable=True),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('traits', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('integrations', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('original_timestamp', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timestamp_clamped', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_event_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'message_id', name=op.f('pk_event'))
    )
    op.create_index('ix_event_workspace_id_event_timestamp', 'event', ['workspace_id', 'event', 'timestamp'], unique=False)
    op.create_index('ix_event_workspace_id_profile_id_timestamp', 'event', ['workspace_id', 'profile_id', 'timestamp', 'message_id'], unique=False)
    op.create_index('ix_event_workspace_id_timestamp', 'event', ['workspace_id', 'timestamp', 'message_id'], unique=False)
    op.create_table('identity',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('source_message_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_identity_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'type', 'value', name=op.f('pk_identity'))
    )
    op.create_index('ix_identity_workspace_id_profile_id', 'identity', ['workspace_id', 'profile_id'], unique=False)
    op.create_table('identity_conflict',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('other_profile_id', sa.UUID(), nullable=True),
    sa.Column('identifier_type', sa.Text(), nullable=False),
    sa.Column('identifier_value', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_identity_conflict_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_identity_conflict'))
    )
    op.create_index('ix_identity_conflict_workspace_id_created_at', 'identity_conflict', ['workspace_id', 'created_at'], unique=False)
    op.create_table('profile',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('traits', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('merged_into', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_profile_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_profile'))
    )
    op.create_index('ix_profile_workspace_id_updated_at', 'profile', ['workspace_id', 'updated_at', 'id'], unique=False)
    op.create_table('profile_merge',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('survivor_id', sa.UUID(), nullable=False),
    sa.Column('absorbed_id', sa.UUID(), nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.Column('identifier_type', sa.Text(), nullable=True),
    sa.Column('identifier_value', sa.Text(), nullable=True),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('absorbed_identities', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('absorbed_traits', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('survivor_traits', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_profile_merge_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_profile_merge'))
    )
    op.create_index('ix_profile_merge_workspace_id_absorbed_id', 'profile_merge', ['workspace_id', 'absorbed_id'], unique=False)
    op.create_index('ix_profile_merge_workspace_id_survivor_id', 'profile_merge', ['workspace_id', 'survivor_id'], unique=False)
    op.create_table('profile_merge_event',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('merge_id', sa.UUID(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_profile_merge_event_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'merge_id', 'message_id', name=op.f('pk_profile_merge_event'))
    )
    op.create_table('account_member',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('group_id', sa.Text(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'group_id'], ['account.workspace_id', 'account.group_id'], name=op.f('fk_account_member_workspace_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'group_id', 'profile_id', name=op.f('pk_account_member'))
    )
    op.create_index('ix_account_member_workspace_id_profile_id', 'account_member', ['workspace_id', 'profile_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_account_member_workspace_id_profile_id', table_name='account_member')
    op.drop_table('account_member')
    op.drop_table('profile_merge_event')
    op.drop_index('ix_profile_merge_workspace_id_survivor_id', table_name='profile_merge')
    op.drop_index('ix_profile_merge_workspace_id_absorbed_id', table_name='profile_merge')
    op.drop_table('profile_merge')
    op.drop_index('ix_profile_workspace_id_updated_at', table_name='profile')
    op.drop_table('profile')
    op.drop_index('ix_identity_conflict_workspace_id_created_at', table_name='identity_conflict')
    op.drop_table('identity_conflict')
    op.drop_index('ix_identity_workspace_id_profile_id', table_name='identity')
    op.drop_table('identity')
    op.drop_index('ix_event_workspace_id_timestamp', table_name='event')
    op.drop_index('ix_event_workspace_id_profile_id_timestamp', table_name='event')
    op.drop_index('ix_event_workspace_id_event_timestamp', table_name='event')
    op.drop_table('event')
    op.drop_table('account')
