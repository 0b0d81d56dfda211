from __future__ import annotations

import uuid
from typing import Any

import orjson

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.identity.models import Identity, ProfileMerge, by_profile
from app.ingest.models import Event, of_profile
from app.profiles.models import Profile


async def get_profile(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> Profile | None:
    return await session.get(Profile, (workspace_id, profile_id))


async def profile_details(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> dict[str, Any]:
    """Identifiers, activity span and merge sources of one profile, in one round trip."""
    identifiers = (
        sa.select(sa.func.coalesce(sa.func.jsonb_agg(
            sa.func.jsonb_build_object("type", Identity.type, "value", Identity.value, "raw", Identity.raw)
        ), sa.text("'[]'::jsonb")))
        .where(by_profile(workspace_id, [profile_id]))
        .scalar_subquery()
    )
    first_seen = (
        sa.select(sa.func.min(Event.timestamp)).where(of_profile(workspace_id, profile_id)).scalar_subquery()
    )
    last_seen = (
        sa.select(sa.func.max(Event.timestamp)).where(of_profile(workspace_id, profile_id)).scalar_subquery()
    )
    merged_from = (
        sa.select(sa.func.coalesce(sa.func.array_agg(ProfileMerge.absorbed_id), sa.text("'{}'::uuid[]")))
        .where(ProfileMerge.workspace_id == workspace_id, ProfileMerge.survivor_id == profile_id,
               ProfileMerge.undone_at.is_(None))
        .scalar_subquery()
    )
    row = (await session.execute(sa.select(identifiers, first_seen, last_seen, merged_from))).one()
    return {"identifiers": row[0], "first_seen_at": row[1], "last_seen_at": row[2], "merged_from": list(row[3])}


async def apply_traits(conn: Any, workspace_id: uuid.UUID, updates: dict[uuid.UUID, dict[str, Any]]) -> None:
    """traits := ((set_once || (traits - unset)) || set) for each profile, in one statement."""
    if not updates:
        return
    ids = list(updates)
    await conn.execute(
        """
        UPDATE profile AS p
        SET traits = (v.once::jsonb || (p.traits - ARRAY(SELECT jsonb_array_elements_text(v.unset::jsonb))))
                     || v.set::jsonb,
            updated_at = now()
        FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS v(id, set, once, unset)
        WHERE p.workspace_id = $1 AND p.id = v.id
        """,
        workspace_id, ids,
        [_dumps(updates[i]["set"]) for i in ids],
        [_dumps(updates[i]["once"]) for i in ids],
        [orjson.dumps(sorted(updates[i]["unset"])).decode() for i in ids],
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def find_by_identifier(session: AsyncSession, workspace_id: uuid.UUID, type_: str, value: str) -> uuid.UUID | None:
    return (
        await session.execute(
            sa.select(Identity.profile_id).where(
                Identity.workspace_id == workspace_id, Identity.type == type_, Identity.value == value
            )
        )
    ).scalar_one_or_none()


SORTS = {"created_at": Profile.created_at, "updated_at": Profile.updated_at}


async def list_profiles(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    conditions: list[sa.ColumnElement[bool]],
    sort_key: sa.ColumnElement[Any],
    descending: bool,
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
) -> list[tuple[Profile, Any]]:
    """Keyset pagination on (sort key, id); merged-away profiles are never listed."""
    stmt = sa.select(Profile, sort_key.label("sort_value")).where(
        Profile.workspace_id == workspace_id, Profile.merged_into.is_(None), *conditions
    )
    if after is not None:
        cmp = sa.tuple_(sort_key, Profile.id)
        first = after[0] if isinstance(after[0], sa.ClauseElement) else sa.literal(after[0])
        bound = sa.tuple_(first, sa.literal(after[1]))
        stmt = stmt.where(cmp < bound if descending else cmp > bound)
    if descending:
        stmt = stmt.order_by(sort_key.desc(), Profile.id.desc())
    else:
        stmt = stmt.order_by(sort_key.asc(), Profile.id.asc())
    return [(row[0], row[1]) for row in (await session.execute(stmt.limit(limit))).all()]
