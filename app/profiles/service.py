from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.profiles import repository
from app.profiles.models import Profile
from app.profiles.schemas import IdentifierPublic, ProfilePublic

MAX_MERGE_CHAIN = 32


async def resolve_profile(session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> Profile:
    """The profile, or the one it was merged into (following the chain)."""
    profile = await repository.get_profile(session, workspace_id, profile_id)
    hops = 0
    while profile is not None and profile.merged_into is not None and hops < MAX_MERGE_CHAIN:
        profile = await repository.get_profile(session, workspace_id, profile.merged_into)
        hops += 1
    if profile is None:
        raise NotFound(f"No profile with id {profile_id} in this workspace.")
    return profile


async def get_profile(session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> ProfilePublic:
    profile = await resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    details = await repository.profile_details(session, workspace_id, profile.id)
    return ProfilePublic(
        id=profile.id,
        identifiers=[IdentifierPublic(**i) for i in sorted(details["identifiers"], key=lambda i: (i["type"], i["value"]))],
        traits=profile.traits,
        first_seen_at=details["first_seen_at"],
        last_seen_at=details["last_seen_at"],
        created_at=profile.created_at,
        updated_at=profile.updated_at,
        merged_from=details["merged_from"],
        requested_id=profile_id if profile.id != profile_id else None,
    )
