from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest
from app.core.pagination import decode_cursor, encode_cursor, in_utc
from app.events import repository
from app.ingest.models import Event


async def list_events(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID | None = None,
    type_: str | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[Event], str | None]:
    if since and until and since >= until:
        raise BadRequest("`since` must be earlier than `until`.", code="bad_time_range")
    after = None
    if cursor:
        ts, mid = decode_cursor(cursor, 2)
        try:
            after = (in_utc(datetime.fromisoformat(ts)), mid)
        except ValueError:
            raise BadRequest("The cursor is not valid.", code="invalid_cursor") from None
    rows = await repository.list_events(session, repository.events_query(
        workspace_id=workspace_id, profile_id=profile_id, type_=type_, event=event,
        since=since, until=until, after=after, limit=limit + 1,
    ))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].timestamp.isoformat(), rows[-1].message_id)
    return rows, next_cursor
