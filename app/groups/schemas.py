from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.core.pagination import CursorPage


class GroupPublic(BaseModel):
    """A group (account): a company, household or team named by Segment `group` calls, with the
    traits those calls set (later calls overwrite earlier values key by key)."""

    group_id: str = Field(examples=["acme-inc"], description="The `groupId` the calls sent.")
    traits: dict[str, Any] = Field(default_factory=dict, examples=[{"name": "Acme Inc", "plan": "enterprise"}])
    member_count: int = Field(description="Profiles that belong to the group.", examples=[12])
    created_at: datetime
    updated_at: datetime = Field(description="When a group call last changed its traits.")


class GroupMember(BaseModel):
    """A profile that belongs to the group (a `group` call named it)."""

    profile_id: uuid.UUID
    joined_at: datetime = Field(description="When the first group call tied the profile to the group.")


class GroupDetail(GroupPublic):
    """A group with the first page of its members (`members_next_cursor` pages on through
    `GET /v1/groups/{group_id}/members`)."""

    members: list[GroupMember]
    members_next_cursor: str | None = Field(default=None, description="Absent when `members` holds them all.")


class GroupPage(CursorPage[GroupPublic]):
    """A page of groups, by group id."""


class GroupMemberPage(CursorPage[GroupMember]):
    """A page of a group's members, by profile id."""


class ProfileGroup(GroupPublic):
    """A group the profile belongs to."""

    joined_at: datetime


class ProfileGroupPage(CursorPage[ProfileGroup]):
    """A page of a profile's groups, by group id."""
