"""Every statement of the consent domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.consent.models import ConsentPurpose, ConsentRecord, PrivacyNotice
from app.identity.models import ProfileMerge
from app.profiles.models import Profile


async def list_purposes(session: AsyncSession, workspace_id: uuid.UUID) -> list[ConsentPurpose]:
    result = await session.execute(
        sa.select(ConsentPurpose).where(ConsentPurpose.workspace_id == workspace_id).order_by(ConsentPurpose.key)
    )
    return list(result.scalars())


async def get_purpose(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> ConsentPurpose | None:
    return await session.get(ConsentPurpose, (workspace_id, key))


async def purpose_cited(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> bool:
    return bool(await session.scalar(sa.select(sa.exists().where(
        ConsentRecord.workspace_id == workspace_id, ConsentRecord.purpose == key
    ))))


async def list_notices(session: AsyncSession, workspace_id: uuid.UUID, key: str | None) -> list[tuple[PrivacyNotice, bool]]:
    stmt = sa.select(PrivacyNotice, _cited(PrivacyNotice)).where(PrivacyNotice.workspace_id == workspace_id)
    if key is not None:
        stmt = stmt.where(PrivacyNotice.key == key)
    result = await session.execute(stmt.order_by(PrivacyNotice.key, PrivacyNotice.version))
    return [(n, bool(c)) for n, c in result]


def _cited(n: Any) -> sa.ColumnElement[bool]:
    return sa.exists().where(
        ConsentRecord.workspace_id == n.workspace_id, ConsentRecord.notice_key == n.key,
        ConsentRecord.notice_version == n.version,
    )


async def get_notice(session: AsyncSession, workspace_id: uuid.UUID, notice_id: uuid.UUID) -> tuple[PrivacyNotice, bool] | None:
    row = (await session.execute(
        sa.select(PrivacyNotice, _cited(PrivacyNotice))
        .where(PrivacyNotice.workspace_id == workspace_id, PrivacyNotice.id == notice_id)
    )).first()
    return (row[0], bool(row[1])) if row else None


async def notice_version_exists(session: AsyncSession, workspace_id: uuid.UUID, key: str, version: int) -> bool:
    return bool(await session.scalar(sa.select(sa.exists().where(
        PrivacyNotice.workspace_id == workspace_id, PrivacyNotice.key == key, PrivacyNotice.version == version
    ))))


async def notice_keys(session: AsyncSession, workspace_id: uuid.UUID) -> list[str]:
    result = await session.execute(
        sa.select(PrivacyNotice.key).where(PrivacyNotice.workspace_id == workspace_id).distinct().limit(2)
    )
    return list(result.scalars())


async def next_notice_version(session: AsyncSession, workspace_id: uuid.UUID, key: str) -> int:
    current = await session.scalar(
        sa.select(sa.func.max(PrivacyNotice.version)).where(PrivacyNotice.workspace_id == workspace_id,
                                                            PrivacyNotice.key == key)
    )
    return (current or 0) + 1


# Built once, as the decision path's statements below.
_absorbed = sa.select(Profile.id).where(
    Profile.workspace_id == sa.bindparam("group_workspace_id"), Profile.merged_into == sa.bindparam("group_survivor"))


async def merge_group(session: AsyncSession, workspace_id: uuid.UUID, survivor_id: uuid.UUID) -> tuple[list[uuid.UUID], datetime | None]:
    """The profiles merged into `survivor_id` and the time of the latest merge that is not undone."""
    absorbed = list((await session.execute(
        _absorbed, {"group_workspace_id": workspace_id, "group_survivor": survivor_id})).scalars())
    if not absorbed:
        return [], None
    merged_at = await session.scalar(
        sa.select(sa.func.max(ProfileMerge.created_at)).where(
            ProfileMerge.workspace_id == workspace_id, ProfileMerge.absorbed_id.in_(absorbed),
            ProfileMerge.undone_at.is_(None),
        )
    )
    return absorbed, merged_at


_later_notice = PrivacyNotice.__table__.alias("later_notice")  # built once: an alias costs a column copy


def stale_since(record: Any) -> sa.ScalarSelect[Any]:
    """When a later major version of the notice a record cites was (or will be) published."""
    later = _later_notice
    return (
        sa.select(sa.func.min(later.c.published_at))
        .where(later.c.workspace_id == record.workspace_id, later.c.key == record.notice_key,
               later.c.version > record.notice_version, later.c.major)
        .scalar_subquery()
    )


# The decision path's statements, built once: building them per call (the stale-notice
# subquery, the channel alternative) cost more Python than PostgreSQL spends running them.
_purpose_channel_records = sa.select(ConsentRecord, stale_since(ConsentRecord).label("stale_since")).where(
    ConsentRecord.workspace_id == sa.bindparam("records_workspace_id"),
    ConsentRecord.profile_id.in_(sa.bindparam("records_profiles", expanding=True)),
    ConsentRecord.purpose == sa.bindparam("records_purpose"),
    sa.or_(ConsentRecord.channel == sa.bindparam("records_channel"), ConsentRecord.channel.is_(None)),
)


_absorbed_profile = Profile.__table__.alias("absorbed_profile")  # the outer statement reads `profile`


def _object(**fields: Any) -> sa.FunctionElement[Any]:
    """jsonb_build_object with these keys (identifiers of ours, written into the SQL)."""
    return sa.func.jsonb_build_object(*[x for key, value in fields.items() for x in (sa.literal_column(f"'{key}'"), value)])  # the outer statement reads `profile`


def check_columns(person: sa.Table) -> dict[str, sa.ScalarSelect[Any]]:
    """What a consent check reads, as columns of a statement over `person` (the profile table,
    one row: a decision's profile read), so the check costs no round trip of its own. Bound at
    execution: `check_purpose` and `check_channel`. Columns: the purpose's basis and default
    (`consent_purpose`, JSON, null for an unknown purpose), the time of the latest merge into
    the person that is not undone (`consent_merged_at`) and the records of the person and of
    the profiles merged into them for the purpose on the channel or on every channel, each with
    the time its notice went stale (`consent_records`, a JSON array). `check_loaded` in the
    service decides from them exactly as `check` does from its own statements."""
    purpose = ConsentPurpose.__table__
    record = ConsentRecord.__table__
    merge = ProfileMerge.__table__
    absorbed = _absorbed_profile
    merged_ids = sa.select(absorbed.c.id).where(
        absorbed.c.workspace_id == person.c.workspace_id, absorbed.c.merged_into == person.c.id).correlate(person)
    purpose_doc = (
        sa.select(_object(lawful_basis=purpose.c.lawful_basis, default_status=purpose.c.default_status))
        .where(purpose.c.workspace_id == person.c.workspace_id,
               purpose.c.key == sa.bindparam("check_purpose", type_=sa.Text))
        .correlate(person).scalar_subquery()
    )
    merged_at = (
        sa.select(sa.func.max(merge.c.created_at))
        .where(merge.c.workspace_id == person.c.workspace_id, merge.c.absorbed_id.in_(merged_ids),
               merge.c.undone_at.is_(None))
        .correlate(person).scalar_subquery()
    )
    group = sa.func.array_prepend(person.c.id, sa.func.array(merged_ids.scalar_subquery()))
    records = (
        sa.select(sa.func.jsonb_agg(_object(
            id=record.c.id, profile_id=record.c.profile_id, channel=record.c.channel, status=record.c.status,
            source=record.c.source, method=record.c.method, notice_key=record.c.notice_key,
            notice_version=record.c.notice_version, occurred_at=record.c.occurred_at, expires_at=record.c.expires_at,
            stale_since=stale_since(record.c))))
        .where(record.c.workspace_id == person.c.workspace_id, record.c.profile_id == sa.func.any(group),
               record.c.purpose == sa.bindparam("check_purpose", type_=sa.Text),
               sa.or_(record.c.channel == sa.bindparam("check_channel", type_=sa.Text), record.c.channel.is_(None)))
        .correlate(person).scalar_subquery()
    )
    return {"consent_purpose": purpose_doc, "consent_merged_at": merged_at, "consent_records": records}


async def group_records(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    profile_ids: Sequence[uuid.UUID],
    *,
    purpose: str | None = None,
    channel: str | None = None,
) -> list[tuple[ConsentRecord, datetime | None]]:
    """Records of these profiles (one purpose, one channel and the all-channel ones, when
    given), each with the time its notice went stale."""
    if purpose is not None and channel is not None:  # a consent check (every decision makes one)
        result = await session.execute(_purpose_channel_records, {
            "records_workspace_id": workspace_id, "records_profiles": list(profile_ids),
            "records_purpose": purpose, "records_channel": channel})
        return [(r, s) for r, s in result]
    stmt = sa.select(ConsentRecord, stale_since(ConsentRecord).label("stale_since")).where(
        ConsentRecord.workspace_id == workspace_id, ConsentRecord.profile_id.in_(list(profile_ids))
    )
    if purpose is not None:
        stmt = stmt.where(ConsentRecord.purpose == purpose)
    if channel is not None:
        stmt = stmt.where(sa.or_(ConsentRecord.channel == channel, ConsentRecord.channel.is_(None)))
    result = await session.execute(stmt)
    return [(r, s) for r, s in result]


async def history(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    profile_ids: Sequence[uuid.UUID],
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[ConsentRecord]:
    stmt = sa.select(ConsentRecord).where(
        ConsentRecord.workspace_id == workspace_id, ConsentRecord.profile_id.in_(list(profile_ids))
    )
    if after is not None:
        stmt = stmt.where(sa.tuple_(ConsentRecord.occurred_at, ConsentRecord.id) < sa.tuple_(*after))
    result = await session.execute(
        stmt.order_by(ConsentRecord.occurred_at.desc(), ConsentRecord.id.desc()).limit(limit)
    )
    return list(result.scalars())


# --- from ingest (asyncpg, inside the batch's transaction) ------------------------------------

# Consent signals of a batch (Segment categoryPreferences and GPC), one row per message and
# signal, recorded only where they change what the profile's latest record of the same
# purpose (on every channel) says. Per profile and purpose one signal counts: GPC before a
# category preference (the stricter), then the latest message. Categories map to purposes by
# the purpose's key or its sdk_categories, ignoring case.
RECORD_SIGNALS = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset($2::text::jsonb)
        AS i(id uuid, profile_id uuid, category text, granted boolean, gpc boolean, occurred_at timestamptz,
             message_id text, ord int)
), wanted AS (
    SELECT DISTINCT ON (i.profile_id, p.key)
           i.id, i.profile_id, p.key AS purpose, i.granted, i.gpc, i.occurred_at, i.message_id
    FROM input AS i
    JOIN consent_purpose AS p
      ON p.workspace_id = $1
     AND (CASE WHEN i.gpc THEN p.key = 'advertising'
               ELSE lower(i.category) = p.key OR lower(i.category) = ANY(p.sdk_categories) END)
    ORDER BY i.profile_id, p.key, i.gpc DESC, i.occurred_at DESC, i.ord DESC
)
INSERT INTO consent_record (workspace_id, id, profile_id, purpose, channel, status, source, method,
                            occurred_at, message_id)
SELECT $1, w.id, w.profile_id, w.purpose, NULL,
       CASE WHEN w.granted THEN 'granted' WHEN last.status = 'granted' THEN 'withdrawn' ELSE 'denied' END,
       'sdk', CASE WHEN w.gpc THEN 'gpc' ELSE 'consent_manager' END, w.occurred_at, w.message_id
FROM wanted AS w
LEFT JOIN LATERAL (
    SELECT r.status, r.method FROM consent_record AS r
    WHERE r.workspace_id = $1 AND r.profile_id = w.profile_id AND r.purpose = w.purpose AND r.channel IS NULL
    ORDER BY r.occurred_at DESC, r.id DESC LIMIT 1
) AS last ON true
WHERE last.status IS NULL
   OR (last.status = 'granted') <> w.granted
   OR (w.gpc AND last.method IS DISTINCT FROM 'gpc')
RETURNING profile_id
"""

# Explicit records (a consent import's rows), skipping one that is already in the ledger
# (same profile, purpose, channel, status and time: a re-imported file).
RECORD_EXPLICIT = """
INSERT INTO consent_record (workspace_id, id, profile_id, purpose, channel, status, source, method,
                            notice_key, notice_version, occurred_at, expires_at, proof, message_id)
SELECT $1, i.id, i.profile_id, i.purpose, i.channel, i.status, i.source, i.method,
       i.notice_key, i.notice_version, i.occurred_at, i.expires_at, coalesce(i.proof, '{}'::jsonb), i.message_id
FROM jsonb_to_recordset($2::text::jsonb)
    AS i(id uuid, profile_id uuid, purpose text, channel text, status text, source text, method text, notice_key text,
         notice_version int, occurred_at timestamptz, expires_at timestamptz, proof jsonb, message_id text)
WHERE NOT EXISTS (
    SELECT 1 FROM consent_record AS r
    WHERE r.workspace_id = $1 AND r.profile_id = i.profile_id AND r.purpose = i.purpose
      AND r.channel IS NOT DISTINCT FROM i.channel AND r.status = i.status AND r.occurred_at = i.occurred_at
)
RETURNING profile_id
"""
