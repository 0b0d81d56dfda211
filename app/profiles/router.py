from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.core.auth import ReadPrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Limit
from app.events import service as event_service
from app.events.schemas import EventPage, EventPublic
from app.profiles import service
from app.profiles.schemas import ProfilePublic

router = APIRouter(tags=["profiles"])


@router.get("/profiles/{profile_id}", response_model=ProfilePublic, responses=responses(401, 403, 404, 422), summary="Get a profile")
async def get_profile(profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> ProfilePublic:
    """An id that was merged away answers with the surviving profile (`requested_id` says so)."""
    return await service.get_profile(session, workspace_id=principal.workspace_id, profile_id=profile_id)


@router.get(
    "/profiles/{profile_id}/events", response_model=EventPage,
    responses=responses(400, 401, 403, 404, 422), summary="A profile's events, newest first",
)
async def list_profile_events(
    profile_id: uuid.UUID,
    session: SessionDep,
    principal: ReadPrincipal,
    type: Annotated[Literal["track", "identify", "page", "screen", "group", "alias"] | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> EventPage:
    profile = await service.resolve_profile(session, workspace_id=principal.workspace_id, profile_id=profile_id)
    rows, next_cursor = await event_service.list_events(
        session, workspace_id=principal.workspace_id, profile_id=profile.id, type_=type, cursor=cursor, limit=limit
    )
    return EventPage(data=[EventPublic.model_validate(r, from_attributes=True) for r in rows], next_cursor=next_cursor)
