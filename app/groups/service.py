"""Groups: list them, read one with its members, and the groups of a profile (keyset pages)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, NotFound
from app.core.pagination import decode_cursor, encode_cursor
from app.groups import repository
from app.groups.schemas import GroupDetail, GroupMember, GroupPublic, ProfileGroup
from app.profiles import service as profile_service

DETAIL_MEMBERS = 100  # members a group's detail shows; the members route pages through the rest


def _page(rows: list, limit: int, key) -> tuple[list, str | None]:
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(key(rows[-1]))


def _after_uuid(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    (value,) = decode_cursor(cursor, 1)
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor") from None


def _after_text(cursor: str | None) -> str | None:
    return decode_cursor(cursor, 1)[0] if cursor else None


async def list_groups(
    session: AsyncSession, *, workspace_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[GroupPublic], str | None]:
    rows = await repository.list_groups(session, workspace_id, after=_after_text(cursor), limit=limit + 1)
    rows, next_cursor = _page(rows, limit, lambda r: r.group_id)
    return [GroupPublic.model_validate(r, from_attributes=True) for r in rows], next_cursor


async def list_members(
    session: AsyncSession, *, workspace_id: uuid.UUID, group_id: str, cursor: str | None, limit: int
) -> tuple[list[GroupMember], str | None]:
    after = _after_uuid(cursor)
    rows = await repository.list_members(session, workspace_id, group_id, after=after, limit=limit + 1)
    if not rows and after is None and await repository.get_group(session, workspace_id, group_id) is None:
        raise NotFound(f"No group with id {group_id!r} in this workspace.")
    rows, next_cursor = _page(rows, limit, lambda r: r.profile_id)
    return [GroupMember.model_validate(r, from_attributes=True) for r in rows], next_cursor


async def get_group(session: AsyncSession, *, workspace_id: uuid.UUID, group_id: str) -> GroupDetail:
    row = await repository.get_group(session, workspace_id, group_id)
    if row is None:
        raise NotFound(f"No group with id {group_id!r} in this workspace.")
    members, next_cursor = await list_members(
        session, workspace_id=workspace_id, group_id=group_id, cursor=None, limit=DETAIL_MEMBERS
    )
    return GroupDetail(**GroupPublic.model_validate(row, from_attributes=True).model_dump(), members=members,
                       members_next_cursor=next_cursor)


async def list_profile_groups(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[ProfileGroup], str | None]:
    """The groups of the profile, or of the one it was merged into (memberships move with a merge)."""
    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    rows = await repository.list_profile_groups(session, workspace_id, profile.id, after=_after_text(cursor),
                                                limit=limit + 1)
    rows, next_cursor = _page(rows, limit, lambda r: r.group_id)
    return [ProfileGroup.model_validate(r, from_attributes=True) for r in rows], next_cursor
