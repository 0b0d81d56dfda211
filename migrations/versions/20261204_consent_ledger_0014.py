"""consent: purposes, privacy notices, the append-only consent ledger, unsubscribe token uses

- `consent_purpose` per workspace, seeded here for every existing workspace (new workspaces are
  seeded by app.consent.service.seed_workspace); opt-in purposes (lawful basis `consent`) can
  only default to denied.
- `privacy_notice` versions; a trigger refuses to change or delete a version a consent record
  cites.
- `consent_record`, append-only: a trigger refuses UPDATE, DELETE and TRUNCATE unless the
  transaction set `clientele.erasure = 'on'` (erasure of a person), or (DELETE) the row's
  workspace is being deleted (its row is already gone when the cascade reaches the ledger).
- `unsubscribe_token_use`: a one-click unsubscribe token works once.
- `profile (workspace_id, merged_into)` partial index: the profiles merged into a survivor.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 15:30:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE FUNCTION clientele_consent_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('clientele.erasure', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'UPDATE' THEN NEW ELSE OLD END;
    END IF;
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM workspace WHERE id = OLD.workspace_id) THEN
        RETURN OLD;  -- the workspace is being deleted (ON DELETE CASCADE)
    END IF;
    RAISE EXCEPTION 'consent_record is append-only: % is refused (only an erasure may remove records)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

NOTICE_CITED = """
CREATE FUNCTION clientele_privacy_notice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM workspace WHERE id = OLD.workspace_id) AND EXISTS (
        SELECT 1 FROM consent_record
        WHERE workspace_id = OLD.workspace_id AND notice_key = OLD.key AND notice_version = OLD.version
    ) THEN
        RAISE EXCEPTION 'privacy notice % version % is cited by consent records: % is refused', OLD.key, OLD.version, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'UPDATE' THEN NEW ELSE OLD END;
END
$$
"""

# The purposes every workspace starts with (app.consent.service.DEFAULT_PURPOSES, as of this
# revision): key, name, lawful basis, default, consent-manager categories.
PURPOSES = [
    ('email_marketing', 'E-mail marketing', 'consent', 'denied', []),
    ('sms_marketing', 'SMS marketing', 'consent', 'denied', []),
    ('direct_mail', 'Direct mail', 'legitimate_interest', 'granted', []),
    ('personalization', 'Personalisation', 'consent', 'denied', ['personalization', 'functional', 'preferences']),
    ('advertising', 'Advertising', 'consent', 'denied', ['advertising', 'targeting', 'marketing']),
    ('analytics', 'Analytics', 'legitimate_interest', 'granted', ['analytics', 'performance', 'statistics']),
]


def upgrade() -> None:
    op.create_table('consent_purpose',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('lawful_basis', sa.Text(), nullable=False),
    sa.Column('default_status', sa.Text(), nullable=False),
    sa.Column('sdk_categories', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("default_status IN ('granted', 'denied')", name=op.f('ck_consent_purpose_default_status')),
    sa.CheckConstraint("lawful_basis <> 'consent' OR default_status = 'denied'", name=op.f('ck_consent_purpose_opt_in_denied')),
    sa.CheckConstraint("lawful_basis IN ('consent', 'legitimate_interest', 'contract', 'legal_obligation', 'vital_interest', 'public_task')", name=op.f('ck_consent_purpose_lawful_basis')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_consent_purpose_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'key', name=op.f('pk_consent_purpose'))
    )
    op.create_table('privacy_notice',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('major', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('url IS NOT NULL OR text IS NOT NULL', name=op.f('ck_privacy_notice_content')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_privacy_notice_version')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_privacy_notice_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_privacy_notice')),
    sa.UniqueConstraint('workspace_id', 'key', 'version', name='uq_privacy_notice_workspace_id_key_version')
    )
    op.create_table('consent_record',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('method', sa.Text(), nullable=True),
    sa.Column('notice_key', sa.Text(), nullable=True),
    sa.Column('notice_version', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('proof', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("channel IS NULL OR channel IN ('email', 'sms', 'push', 'direct_mail', 'web', 'ads')", name=op.f('ck_consent_record_channel')),
    sa.CheckConstraint("source IN ('form', 'api', 'import', 'sdk', 'support')", name=op.f('ck_consent_record_source')),
    sa.CheckConstraint("status IN ('granted', 'denied', 'withdrawn')", name=op.f('ck_consent_record_status')),
    sa.CheckConstraint('(notice_key IS NULL) = (notice_version IS NULL)', name=op.f('ck_consent_record_notice')),
    sa.ForeignKeyConstraint(['workspace_id', 'notice_key', 'notice_version'], ['privacy_notice.workspace_id', 'privacy_notice.key', 'privacy_notice.version'], name=op.f('fk_consent_record_workspace_id_privacy_notice')),
    sa.ForeignKeyConstraint(['workspace_id', 'profile_id'], ['profile.workspace_id', 'profile.id'], name=op.f('fk_consent_record_workspace_id_profile'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id', 'purpose'], ['consent_purpose.workspace_id', 'consent_purpose.key'], name=op.f('fk_consent_record_workspace_id_consent_purpose')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_consent_record_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'id', name=op.f('pk_consent_record'))
    )
    op.create_index('ix_consent_record_workspace_id_notice', 'consent_record', ['workspace_id', 'notice_key', 'notice_version'], unique=False, postgresql_where=sa.text('notice_key IS NOT NULL'))
    op.create_index('ix_consent_record_workspace_id_profile_id_purpose', 'consent_record', ['workspace_id', 'profile_id', 'purpose', sa.literal_column('occurred_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('unsubscribe_token_use',
    sa.Column('workspace_id', sa.UUID(), nullable=False),
    sa.Column('token_id', sa.UUID(), nullable=False),
    sa.Column('profile_id', sa.UUID(), nullable=False),
    sa.Column('record_id', sa.UUID(), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id', 'profile_id'], ['profile.workspace_id', 'profile.id'], name=op.f('fk_unsubscribe_token_use_workspace_id_profile'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspace.id'], name=op.f('fk_unsubscribe_token_use_workspace_id_workspace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'token_id', name=op.f('pk_unsubscribe_token_use'))
    )
    op.create_index('ix_profile_workspace_id_merged_into', 'profile', ['workspace_id', 'merged_into'], unique=False, postgresql_where=sa.text('merged_into IS NOT NULL'))
    op.execute(APPEND_ONLY)
    op.execute(
        'CREATE TRIGGER consent_record_append_only BEFORE UPDATE OR DELETE ON consent_record '
        'FOR EACH ROW EXECUTE FUNCTION clientele_consent_record_append_only()'
    )
    op.execute(
        'CREATE TRIGGER consent_record_no_truncate BEFORE TRUNCATE ON consent_record '
        'FOR EACH STATEMENT EXECUTE FUNCTION clientele_consent_record_append_only()'
    )
    op.execute(NOTICE_CITED)
    op.execute(
        'CREATE TRIGGER privacy_notice_immutable BEFORE UPDATE OR DELETE ON privacy_notice '
        'FOR EACH ROW EXECUTE FUNCTION clientele_privacy_notice_immutable()'
    )
    seed = sa.text(
        """INSERT INTO consent_purpose (workspace_id, key, name, lawful_basis, default_status, sdk_categories)
           SELECT w.id, :key, :name, :basis, :default, CAST(:categories AS text[]) FROM workspace AS w
           ON CONFLICT DO NOTHING"""
    )
    for key, name, basis, default, categories in PURPOSES:
        op.get_bind().execute(seed, {"key": key, "name": name, "basis": basis, "default": default,
                                     "categories": categories})


def downgrade() -> None:
    op.execute('DROP TRIGGER privacy_notice_immutable ON privacy_notice')
    op.execute('DROP FUNCTION clientele_privacy_notice_immutable()')
    op.execute('DROP TRIGGER consent_record_no_truncate ON consent_record')
    op.execute('DROP TRIGGER consent_record_append_only ON consent_record')
    op.drop_index('ix_profile_workspace_id_merged_into', table_name='profile', postgresql_where=sa.text('merged_into IS NOT NULL'))
    op.drop_table('unsubscribe_token_use')
    op.drop_index('ix_consent_record_workspace_id_profile_id_purpose', table_name='consent_record')
    op.drop_index('ix_consent_record_workspace_id_notice', table_name='consent_record', postgresql_where=sa.text('notice_key IS NOT NULL'))
    op.drop_table('consent_record')
    op.drop_table('privacy_notice')
    op.drop_table('consent_purpose')
    op.execute('DROP FUNCTION clientele_consent_record_append_only()')
