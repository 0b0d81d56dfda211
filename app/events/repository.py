from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.ingest.models import Event, of_profile


async def list_events(session: AsyncSession, query: sa.Select[tuple[Event]]) -> list[Event]:
    return list((await session.execute(query)).scalars())


def events_query(
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID | None,
    type_: str | None,
    event: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> sa.Select[tuple[Event]]:
    """Newest first, keyset on (timestamp, message_id)."""
    if profile_id is not None:
        stmt = sa.select(Event).where(of_profile(workspace_id, profile_id))
    else:
        stmt = sa.select(Event).where(Event.workspace_id == workspace_id)
    if type_ is not None:
        stmt = stmt.where(Event.type == type_)
    if event is not None:
        stmt = stmt.where(Event.event == event)
    if since is not None:
        stmt = stmt.where(Event.timestamp >= since)
    if until is not None:
        stmt = stmt.where(Event.timestamp < until)
    if after is not None:
        stmt = stmt.where(sa.tuple_(Event.timestamp, Event.message_id) < sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    return stmt.order_by(Event.timestamp.desc(), Event.message_id.desc()).limit(limit)
