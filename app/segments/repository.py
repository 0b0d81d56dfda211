"""Every read and write of segments: definitions (ORM), membership and the change stream (Core).

The refresh is one statement per segment: the rule's matching profiles (optionally only those
changed since the last refresh) are compared with the stored members in data-modifying CTEs
that insert who entered, delete who exited and append both to the change stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import get_settings
from app.identity.models import IdentityChange
from app.profiles.models import Profile
from app.segments.models import Segment, SegmentChange, SegmentMember, SegmentRefresh, SegmentVersion
from app.traits.models import ComputedTraitDirty, ComputedTraitValue

profile = Profile.__table__
member = SegmentMember.__table__
change = SegmentChange.__table__
refresh_log = SegmentRefresh.__table__


# ------------------------------------------------------------------------ definitions


async def use_rule_work_mem(session: AsyncSession) -> None:
    """Give this transaction's rule evaluations `segment_work_mem` (app/core/config.py says why);
    `set_config(..., true)` is SET LOCAL with the value as a bound parameter."""
    await session.execute(sa.select(sa.func.set_config("work_mem", get_settings().segment_work_mem, True)))


async def get_segment(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> Segment | None:
    return await session.get(Segment, (workspace_id, segment_id), populate_existing=True)


async def list_segments(session: AsyncSession, workspace_id: uuid.UUID) -> list[Segment]:
    stmt = sa.select(Segment).where(Segment.workspace_id == workspace_id).order_by(Segment.name)
    return list((await session.execute(stmt)).scalars())


async def segments_by_id(session: AsyncSession, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Segment]:
    if not ids:
        return []
    stmt = sa.select(Segment).where(Segment.workspace_id == workspace_id, Segment.id.in_(list(ids)))
    return list((await session.execute(stmt)).scalars())


async def name_taken(session: AsyncSession, workspace_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None) -> bool:
    stmt = sa.select(Segment.id).where(Segment.workspace_id == workspace_id, Segment.name == name)
    if other_than is not None:
        stmt = stmt.where(Segment.id != other_than)
    return (await session.execute(stmt.limit(1))).first() is not None


async def segments_mentioning(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> list[Segment]:
    """Segments whose rule text mentions an id (callers confirm by parsing the rule)."""
    stmt = sa.select(Segment).where(
        Segment.workspace_id == workspace_id, Segment.id != segment_id,
        sa.cast(Segment.rule, sa.Text).contains(str(segment_id)),
    )
    return list((await session.execute(stmt)).scalars())


async def add(session: AsyncSession, *rows: Any) -> None:
    session.add_all(rows)
    await session.flush()


async def delete_segment(session: AsyncSession, segment: Segment) -> None:
    """The segment and everything about it (call with the segment's lock held)."""
    for table in (member, change):
        await session.execute(sa.delete(table).where(table.c.workspace_id == segment.workspace_id,
                                                     table.c.segment_id == segment.id))
    await session.delete(segment)
    await session.flush()


async def list_versions(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> list[SegmentVersion]:
    stmt = (
        sa.select(SegmentVersion)
        .where(SegmentVersion.workspace_id == workspace_id, SegmentVersion.segment_id == segment_id)
        .order_by(SegmentVersion.version)
    )
    return list((await session.execute(stmt)).scalars())


async def get_version(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, version: int) -> SegmentVersion | None:
    return await session.get(SegmentVersion, (workspace_id, segment_id, version))


# ---------------------------------------------------------------------------- refresh


async def lock_segment(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> datetime:
    """Serialise refreshes of one segment until the transaction ends (so the change stream's
    seq order is its commit order); return the refresh's time, read after the lock."""
    await session.execute(
        sa.select(sa.func.pg_advisory_xact_lock(
            sa.func.hashtextextended(sa.literal("segment:") + sa.cast(sa.literal(segment_id, pg.UUID), sa.Text), 0)
        ))
    )
    return (await session.execute(sa.select(sa.func.clock_timestamp()))).scalar_one()


async def lock_all_segments(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Take every segment's refresh lock (as `lock_segment`, in id order) until the transaction
    ends: waits for the refreshes running now, and holds back new ones."""
    segment = Segment.__table__
    ids = sa.select(segment.c.id).where(segment.c.workspace_id == workspace_id).order_by(segment.c.id).subquery()
    locks = sa.select(sa.func.pg_advisory_xact_lock(
        sa.func.hashtextextended(sa.literal("segment:") + sa.cast(ids.c.id, sa.Text), 0)
    ).label("locked")).select_from(ids)
    (await session.execute(locks)).all()


async def touched_profiles(session: AsyncSession, workspace_id: uuid.UUID, since: datetime, *, limit: int) -> list[uuid.UUID] | None:
    """The ids of `touched_query`, or None when there are more than `limit` (a full pass is
    then cheaper than probing them one by one)."""
    ids = sa.select(touched_query(workspace_id, since).subquery().c[0]).limit(limit + 1)
    found = list((await session.execute(ids)).scalars())
    return None if len(found) > limit else found


def touched_query(workspace_id: uuid.UUID, since: datetime) -> sa.Select[Any]:
    """Profiles that may have changed since `since`: their traits changed or they were merged
    (profile.updated_at), a computed trait of theirs changed (the computed-trait refresh stamps
    what it changes), new events wait for that refresh (its pending dirty marks), or their
    identifiers moved (the identity change log)."""
    ctv = ComputedTraitValue.__table__
    dirty = ComputedTraitDirty.__table__
    ident = IdentityChange.__table__
    pending = sa.select(sa.func.unnest(dirty.c.profile_ids).label("id")).where(dirty.c.workspace_id == workspace_id)
    return sa.union(
        sa.select(profile.c.id).where(profile.c.workspace_id == workspace_id, profile.c.updated_at >= since),
        sa.select(ctv.c.profile_id).where(ctv.c.workspace_id == workspace_id, ctv.c.computed_at >= since),
        pending,
        sa.select(ident.c.profile_id).where(ident.c.workspace_id == workspace_id, ident.c.changed_at >= since),
    )


async def apply_membership(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    version: int,
    at: datetime,
    matches: sa.ColumnElement[bool] | None,
    scope: list[uuid.UUID] | None,
) -> tuple[int, int]:
    """Bring stored members in line with `matches` (None: keep the current members that are
    still live profiles, for fixed segments), for every profile or those in `scope`. Returns
    (entered, exited); both are appended to the change stream in the same statement."""
    if scope is not None and not scope:
        return 0, 0
    ws = sa.literal(workspace_id, pg.UUID)
    seg = sa.literal(segment_id, pg.UUID)
    live = [profile.c.workspace_id == workspace_id, profile.c.merged_into.is_(None)]
    of_segment = [member.c.workspace_id == workspace_id, member.c.segment_id == segment_id]
    if matches is None:
        new_select = (
            sa.select(profile.c.id.label("profile_id"))
            .join(member, sa.and_(member.c.workspace_id == profile.c.workspace_id, member.c.profile_id == profile.c.id))
            .where(*live, *of_segment)
        )
    else:
        new_select = sa.select(profile.c.id.label("profile_id")).where(*live, matches)
    if scope is not None:
        # A set the planner can hash or probe by index (`= ANY($array)` of a generic plan is a
        # linear search per row).
        touched = sa.select(sa.func.unnest(sa.bindparam("touched", scope, type_=pg.ARRAY(pg.UUID(as_uuid=True)))))
        new_select = new_select.where(profile.c.id.in_(touched))
    new = new_select.cte("matching")
    current = sa.select(member.c.profile_id).where(*of_segment)
    if scope is not None:
        current = current.where(member.c.profile_id.in_(touched))
    # EXCEPT both ways: hashed set operations whatever the planner believes about a new
    # segment's size (an anti-join it thought tiny became a nested loop).
    joining = sa.select(new.c.profile_id).except_(current).cte("joining")
    leaving = current.except_(sa.select(new.c.profile_id)).cte("leaving")
    entered = (
        pg.insert(member)
        .from_select(
            ["workspace_id", "segment_id", "profile_id", "version", "entered_at"],
            sa.select(ws, seg, joining.c.profile_id, sa.literal(version), sa.literal(at)),
        )
        .on_conflict_do_nothing()
        .returning(member.c.profile_id)
        .cte("entered")
    )
    exited = (
        sa.delete(member)
        .where(*of_segment, member.c.profile_id == leaving.c.profile_id)
        .returning(member.c.profile_id)
        .cte("exited")
    )
    logged = (
        sa.insert(change)
        .from_select(
            ["workspace_id", "segment_id", "profile_id", "change", "version", "at"],
            sa.union_all(
                sa.select(ws, seg, exited.c.profile_id, sa.literal("exited"), sa.literal(version), sa.literal(at)),
                sa.select(ws, seg, entered.c.profile_id, sa.literal("entered"), sa.literal(version), sa.literal(at)),
            ),
        )
        .returning(change.c.change)
        .cte("logged")
    )
    stmt = sa.select(
        sa.select(sa.func.count()).select_from(logged).where(logged.c.change == "entered").scalar_subquery(),
        sa.select(sa.func.count()).select_from(logged).where(logged.c.change == "exited").scalar_subquery(),
    )
    row = (await session.execute(stmt)).one()
    return int(row[0]), int(row[1])


async def count_members(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> int:
    stmt = sa.select(sa.func.count()).select_from(member).where(
        member.c.workspace_id == workspace_id, member.c.segment_id == segment_id
    )
    return int((await session.execute(stmt)).scalar_one())


async def insert_fixed_members(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, profile_ids: Sequence[uuid.UUID], at: datetime
) -> int:
    """Members of a fixed segment, with their `entered` changes (live profiles only)."""
    ids = sa.bindparam("members", list(profile_ids), type_=pg.ARRAY(pg.UUID(as_uuid=True)))
    ws = sa.literal(workspace_id, pg.UUID)
    seg = sa.literal(segment_id, pg.UUID)
    inserted = (
        pg.insert(member)
        .from_select(
            ["workspace_id", "segment_id", "profile_id", "version", "entered_at"],
            sa.select(ws, seg, profile.c.id, sa.literal(1), sa.literal(at))
            .where(profile.c.workspace_id == workspace_id, profile.c.merged_into.is_(None), profile.c.id == sa.any_(ids)),
        )
        .on_conflict_do_nothing()
        .returning(member.c.profile_id)
        .cte("inserted")
    )
    logged = (
        sa.insert(change)
        .from_select(
            ["workspace_id", "segment_id", "profile_id", "change", "version", "at"],
            sa.select(ws, seg, inserted.c.profile_id, sa.literal("entered"), sa.literal(1), sa.literal(at)),
        )
        .returning(change.c.seq)
        .cte("logged")
    )
    return int((await session.execute(sa.select(sa.func.count()).select_from(logged))).scalar_one())


# --------------------------------------------------------------------------- reading


async def list_changes(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, *, after: int, limit: int
) -> list[Any]:
    stmt = (
        sa.select(change.c.seq, change.c.profile_id, change.c.change, change.c.at, change.c.version)
        .where(change.c.workspace_id == workspace_id, change.c.segment_id == segment_id, change.c.seq > after)
        .order_by(change.c.seq)
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def last_change_before(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, profile_id: uuid.UUID, at: datetime
) -> Any:
    stmt = (
        sa.select(change.c.change, change.c.at, change.c.version)
        .where(change.c.workspace_id == workspace_id, change.c.segment_id == segment_id,
               change.c.profile_id == profile_id, change.c.at <= at)
        .order_by(change.c.seq.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).first()


async def list_refreshes(
    session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, *, after: int, limit: int
) -> list[SegmentRefresh]:
    stmt = (
        sa.select(SegmentRefresh)
        .where(SegmentRefresh.workspace_id == workspace_id, SegmentRefresh.segment_id == segment_id,
               SegmentRefresh.id > after)
        .order_by(SegmentRefresh.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def profile_memberships(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> list[Any]:
    stmt = (
        sa.select(Segment.id, Segment.name, Segment.version, member.c.version.label("member_version"),
                  member.c.entered_at)
        .join(member, sa.and_(member.c.workspace_id == Segment.workspace_id, member.c.segment_id == Segment.id))
        .where(member.c.workspace_id == workspace_id, member.c.profile_id == profile_id)
        .order_by(Segment.name)
    )
    return list((await session.execute(stmt)).all())


async def is_member(session: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID, profile_id: uuid.UUID) -> Any:
    stmt = sa.select(member.c.entered_at, member.c.version).where(
        member.c.workspace_id == workspace_id, member.c.segment_id == segment_id, member.c.profile_id == profile_id
    )
    return (await session.execute(stmt)).first()


def members_page(
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    columns: Sequence[sa.ColumnElement[Any]],
    *,
    after: uuid.UUID | None,
    limit: int,
    conditions: Sequence[sa.ColumnElement[bool]] = (),
) -> sa.Select[Any]:
    """One keyset page of members (profile id order) with the requested columns. `conditions`
    are extra booleans over `profile` (a consent filter is one such clause)."""
    stmt = (
        sa.select(member.c.profile_id, member.c.entered_at, *columns)
        .join(profile, sa.and_(profile.c.workspace_id == member.c.workspace_id, profile.c.id == member.c.profile_id))
        .where(member.c.workspace_id == workspace_id, member.c.segment_id == segment_id, *conditions)
        .order_by(member.c.profile_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(member.c.profile_id > after)
    return stmt


def count_members_where(
    workspace_id: uuid.UUID, segment_id: uuid.UUID, *, conditions: Sequence[sa.ColumnElement[bool]] = ()
) -> sa.Select[Any]:
    """How many members (as of the last refresh) meet `conditions` (booleans over `profile`)."""
    return (
        sa.select(sa.func.count())
        .select_from(member)
        .join(profile, sa.and_(profile.c.workspace_id == member.c.workspace_id, profile.c.id == member.c.profile_id))
        .where(member.c.workspace_id == workspace_id, member.c.segment_id == segment_id, *conditions)
    )
