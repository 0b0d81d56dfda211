from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.identity.models import Identity, ProfileMerge
from app.ingest.models import Event
from app.profiles.models import Profile


async def get_profile(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> Profile | None:
    return await session.get(Profile, (workspace_id, profile_id))


async def profile_details(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> dict[str, Any]:
    """Identifiers, activity span and merge sources of one profile, in one round trip."""
    identifiers = (
        sa.select(sa.func.coalesce(sa.func.jsonb_agg(
            sa.func.jsonb_build_object("type", Identity.type, "value", Identity.value, "raw", Identity.raw)
        ), sa.text("'[]'::jsonb")))
        .where(Identity.workspace_id == workspace_id, Identity.profile_id == profile_id)
        .scalar_subquery()
    )
    first_seen = (
        sa.select(sa.func.min(Event.timestamp))
        .where(Event.workspace_id == workspace_id, Event.profile_id == profile_id).scalar_subquery()
    )
    last_seen = (
        sa.select(sa.func.max(Event.timestamp))
        .where(Event.workspace_id == workspace_id, Event.profile_id == profile_id).scalar_subquery()
    )
    merged_from = (
        sa.select(sa.func.coalesce(sa.func.array_agg(ProfileMerge.absorbed_id), sa.text("'{}'::uuid[]")))
        .where(ProfileMerge.workspace_id == workspace_id, ProfileMerge.survivor_id == profile_id,
               ProfileMerge.undone_at.is_(None))
        .scalar_subquery()
    )
    row = (await session.execute(sa.select(identifiers, first_seen, last_seen, merged_from))).one()
    return {"identifiers": row[0], "first_seen_at": row[1], "last_seen_at": row[2], "merged_from": list(row[3])}
