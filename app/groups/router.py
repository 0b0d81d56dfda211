from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from app.core.auth import ReadPrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Limit
from app.groups import service
from app.groups.schemas import GroupDetail, GroupMemberPage, GroupPage, ProfileGroupPage

router = APIRouter(tags=["groups"])

GroupId = Annotated[str, Path(min_length=1, max_length=500, description="The `groupId` of the group calls (URL-encoded).")]


@router.get("/groups", response_model=GroupPage, responses=responses(400, 401, 403, 422), summary="List groups (accounts)")
async def list_groups(session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 50) -> GroupPage:
    """Every group the workspace's `group` calls named, by group id, with traits and member counts."""
    items, next_cursor = await service.list_groups(session, workspace_id=principal.workspace_id, cursor=cursor, limit=limit)
    return GroupPage(data=items, next_cursor=next_cursor)


@router.get("/groups/{group_id}", response_model=GroupDetail, responses=responses(401, 403, 404, 422),
            summary="Get a group with its traits and members")
async def get_group(group_id: GroupId, session: SessionDep, principal: ReadPrincipal) -> GroupDetail:
    """The group's traits and its first 100 members; `members_next_cursor` continues on
    `GET /v1/groups/{group_id}/members`."""
    return await service.get_group(session, workspace_id=principal.workspace_id, group_id=group_id)


@router.get("/groups/{group_id}/members", response_model=GroupMemberPage, responses=responses(400, 401, 403, 404, 422),
            summary="A group's members")
async def list_group_members(
    group_id: GroupId, session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 100,
) -> GroupMemberPage:
    items, next_cursor = await service.list_members(
        session, workspace_id=principal.workspace_id, group_id=group_id, cursor=cursor, limit=limit
    )
    return GroupMemberPage(data=items, next_cursor=next_cursor)


@router.get("/profiles/{profile_id}/groups", response_model=ProfileGroupPage,
            responses=responses(400, 401, 403, 404, 422), summary="The groups a profile belongs to")
async def list_profile_groups(
    profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 50,
) -> ProfileGroupPage:
    """An id that was merged away answers with the surviving profile's groups."""
    items, next_cursor = await service.list_profile_groups(
        session, workspace_id=principal.workspace_id, profile_id=profile_id, cursor=cursor, limit=limit
    )
    return ProfileGroupPage(data=items, next_cursor=next_cursor)
