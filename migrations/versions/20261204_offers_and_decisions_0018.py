"""offers, placements, the decision ledger, feedback, cap counters, propensity models, item associations

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 15:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('decision',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('placement', sa.Text(), nullable=True),
    sa.Column('channel', sa.Text(), nullable=True),
    sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('offers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('candidates', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('exclusions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('consent', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('policy', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('features', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=True),
    sa.Column('control', sa.Boolean(), nullable=False),
    sa.Column('fallback', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('imported', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_decision_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_decision'))
    )
    op.create_index('ix_decision_workspace_id_created_at', 'decision', ['workspace_id', 'created_at'], unique=False)
    op.create_index('ix_decision_workspace_id_profile_id_created_at', 'decision', ['workspace_id', 'profile_id', 'created_at'], unique=False)
    op.create_table('item_association',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('item_id', sa.Text(), nullable=False),
    sa.Column('other_item_id', sa.Text(), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('support', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_item_association_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'item_id', 'other_item_id', name=op.f('pk_item_association'))
    )
    op.create_table('offer',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), server_default='standard', nullable=False),
    sa.Column('content', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('channels', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('placements', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('eligibility', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('value', sa.Double(), server_default='1', nullable=False),
    sa.Column('weight', sa.Double(), server_default='1', nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('prior_propensity', sa.Double(), nullable=True),
    sa.Column('caps', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('tags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('paused', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('standard', 'complementary_item')", name=op.f('ck_offer_kind')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_offer_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_offer')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_offer_workspace_id_name'))
    )
    op.create_table('offer_model',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('trained_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_offer_model_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'version', name=op.f('pk_offer_model'))
    )
    op.create_table('decision_offer',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('decision_id', sa.UUID(), nullable=False),
    sa.Column('offer_id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Double(), nullable=False),
    sa.Column('propensity', sa.Double(), nullable=True),
    sa.Column('score', sa.Double(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'decision_id'], ['decision.workspace_id', 'decision.id'], name=op.f('fk_decision_offer_workspace_id_decision'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'decision_id', 'offer_id', name=op.f('pk_decision_offer'))
    )
    op.create_index('ix_decision_offer_workspace_id_offer_id_created_at', 'decision_offer', ['workspace_id', 'offer_id', 'created_at'], unique=False)
    op.create_index('ix_decision_offer_workspace_id_profile_id', 'decision_offer', ['workspace_id', 'profile_id'], unique=False)
    op.create_table('offer_cap_counter',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('offer_id', sa.UUID(), nullable=False),
    sa.Column('period', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'offer_id'], ['offer.workspace_id', 'offer.id'], name=op.f('fk_offer_cap_counter_workspace_id_offer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'profile_id', 'offer_id', 'period', name=op.f('pk_offer_cap_counter'))
    )
    op.create_table('placement',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('max_offers', sa.Integer(), server_default='1', nullable=False),
    sa.Column('fallback_offer_id', sa.UUID(), nullable=True),
    sa.Column('exploration', sa.Text(), server_default='epsilon_greedy', nullable=False),
    sa.Column('epsilon', sa.Double(), server_default='0.1', nullable=False),
    sa.Column('control_share', sa.Double(), server_default='0', nullable=False),
    sa.Column('control_mode', sa.Text(), server_default='random', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'fallback_offer_id'], ['offer.workspace_id', 'offer.id'], name=op.f('fk_placement_workspace_id_offer'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_placement_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_placement')),
    sa.UniqueConstraint('workspace_id', 'name', name=op.f('uq_placement_workspace_id_name'))
    )
    op.create_table('decision_feedback',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('decision_id', sa.UUID(), nullable=False),
    sa.Column('offer_id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('api', 'event', 'import')", name=op.f('ck_decision_feedback_source')),
    sa.CheckConstraint("type IN ('impression', 'click', 'accept', 'decline', 'convert')", name=op.f('ck_decision_feedback_type')),
    sa.ForeignKeyConstraint(['workspace_id', 'decision_id', 'offer_id'], ['decision_offer.workspace_id', 'decision_offer.decision_id', 'decision_offer.offer_id'], name=op.f('fk_decision_feedback_workspace_id_decision_offer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_decision_feedback'))
    )
    op.create_index('ix_decision_feedback_workspace_id_decision_id', 'decision_feedback', ['workspace_id', 'decision_id', 'offer_id'], unique=False)
    op.create_index('ix_decision_feedback_workspace_id_profile_id', 'decision_feedback', ['workspace_id', 'profile_id'], unique=False)
    op.create_index('uq_decision_feedback_workspace_id_message_id', 'decision_feedback', ['workspace_id', 'message_id'], unique=True, postgresql_where=sa.text('message_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('uq_decision_feedback_workspace_id_message_id', table_name='decision_feedback', postgresql_where=sa.text('message_id IS NOT NULL'))
    op.drop_index('ix_decision_feedback_workspace_id_profile_id', table_name='decision_feedback')
    op.drop_index('ix_decision_feedback_workspace_id_decision_id', table_name='decision_feedback')
    op.drop_table('decision_feedback')
    op.drop_table('placement')
    op.drop_table('offer_cap_counter')
    op.drop_index('ix_decision_offer_workspace_id_profile_id', table_name='decision_offer')
    op.drop_index('ix_decision_offer_workspace_id_offer_id_created_at', table_name='decision_offer')
    op.drop_table('decision_offer')
    op.drop_table('offer_model')
    op.drop_table('offer')
    op.drop_table('item_association')
    op.drop_index('ix_decision_workspace_id_profile_id_created_at', table_name='decision')
    op.drop_index('ix_decision_workspace_id_created_at', table_name='decision')
    op.drop_table('decision')
