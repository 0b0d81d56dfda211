from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.core.auth import ReadPrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Instant, Limit
from app.events import service
from app.events.schemas import EventPage, EventPublic

router = APIRouter(tags=["events"])

MessageType = Literal["track", "identify", "page", "screen", "group", "alias"]


@router.get("/events", response_model=EventPage, responses=responses(400, 401, 403, 422), summary="List events")
async def list_events(
    session: SessionDep,
    principal: ReadPrincipal,
    type: Annotated[MessageType | None, Query(description="Message type.")] = None,
    event: Annotated[str | None, Query(max_length=500, description="track event name.")] = None,
    since: Annotated[Instant | None, Query(description="Events at or after this time.")] = None,
    until: Annotated[Instant | None, Query(description="Events before this time.")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> EventPage:
    """The workspace's events, newest first (corrected timestamp), with a keyset cursor."""
    rows, next_cursor = await service.list_events(
        session, workspace_id=principal.workspace_id, type_=type, event=event, since=since, until=until,
        cursor=cursor, limit=limit,
    )
    return EventPage(data=[EventPublic.model_validate(r, from_attributes=True) for r in rows], next_cursor=next_cursor)
