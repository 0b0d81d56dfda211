from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.core import idempotency
from app.core.auth import ReadPrincipal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Limit
from app.events import service as event_service
from app.events.schemas import EventPage, EventPublic
from app.identity import service as identity_service
from app.profiles import service
from app.profiles.schemas import (
    MergeLedgerEntry,
    MergeRequest,
    MergeResult,
    ProfilePage,
    ProfilePatch,
    ProfilePublic,
    SplitRequest,
    SplitResult,
)
from app.workspaces import service as workspace_service

router = APIRouter(tags=["profiles"])


@router.get(
    "/profiles", response_model=ProfilePage, responses=responses(400, 401, 403, 422), summary="List and filter profiles"
)
async def list_profiles(
    session: SessionDep,
    principal: ReadPrincipal,
    where: Annotated[
        list[str],
        Query(max_length=20, description="Filters `field:op:value` (AND), shorthand for segment rule nodes "
              "(docs/SEGMENTS.md): field traits.<name> or computed.<name>, op eq ne in nin gt gte lt lte between "
              "contains starts_with exists missing within_last_days more_than_days_ago anniversary_within_days; "
              "values are JSON when they parse (in/nin: comma-separated). "
              "Example: where=traits.plan:eq:pro&where=computed.order_count:gte:3"),
    ] = [],  # noqa: B006  (FastAPI copies defaults)
    sort: Annotated[str, Query(max_length=140, description="created_at, updated_at, traits.<name> or computed.<name>; "
                                                              "prefix - for descending.")] = "-updated_at",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ProfilePage:
    items, next_cursor = await service.list_profiles(
        session, workspace_id=principal.workspace_id, where=where, sort=sort, cursor=cursor, limit=limit
    )
    return ProfilePage(data=items, next_cursor=next_cursor)


@router.get(
    "/profiles/lookup", response_model=ProfilePublic, responses=responses(400, 401, 403, 404, 422),
    summary="Find a profile by an identifier",
)
async def lookup_profile(
    session: SessionDep,
    principal: ReadPrincipal,
    type: Annotated[str, Query(max_length=64, description="user_id, anonymous_id, email, phone or a custom type.")],
    value: Annotated[str, Query(max_length=1000, description="Normalised like at ingest (case, E.164...).")],
) -> ProfilePublic:
    workspace = await workspace_service.get_workspace(session, workspace_id=principal.workspace_id)
    return await service.lookup(
        session, workspace_id=principal.workspace_id, type_=type, value=value,
        settings=identity_service.identity_settings_from(workspace.settings),
    )


@router.post(
    "/profiles/merge", response_model=MergeResult, responses=responses(401, 403, 404, 409, 422),
    summary="Merge profiles (or preview with dry_run)",
)
async def merge_profiles(
    body: MergeRequest, request: Request, session: SessionDep, principal: WritePrincipal,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> MergeResult:
    """Identity limits apply (two different user_ids never merge: 409). Every merge is written to
    the ledger with rule `manual` and can be undone with split."""
    async def run() -> MergeResult:
        workspace = await workspace_service.get_workspace(session, workspace_id=principal.workspace_id)
        return MergeResult.model_validate(await identity_service.manual_merge(
            session, workspace_id=principal.workspace_id, profile_ids=body.profile_ids, survivor_id=body.survivor_id,
            dry_run=body.dry_run, workspace_settings=workspace.settings,
        ))

    return await idempotency.once(session, request, workspace_id=principal.workspace_id, key=idempotency_key,
                                  body=body.model_dump(mode="json"), model=MergeResult, run=run)


@router.get("/profiles/{profile_id}", response_model=ProfilePublic, responses=responses(401, 403, 404, 422), summary="Get a profile")
async def get_profile(profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> ProfilePublic:
    """An id that was merged away answers with the surviving profile (`requested_id` says so)."""
    return await service.get_profile(session, workspace_id=principal.workspace_id, profile_id=profile_id)


@router.patch(
    "/profiles/{profile_id}", response_model=ProfilePublic, responses=responses(401, 403, 404, 422),
    summary="Change a profile's traits",
)
async def patch_profile(
    profile_id: uuid.UUID, body: ProfilePatch, request: Request, session: SessionDep, principal: WritePrincipal,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ProfilePublic:
    """`set` overwrites, `set_once` only fills traits the profile lacks, `unset` removes. Send an
    `Idempotency-Key` to make retries safe."""
    async def run() -> ProfilePublic:
        return await service.patch_traits(
            session, workspace_id=principal.workspace_id, profile_id=profile_id, set_=body.set,
            set_once=body.set_once, unset=body.unset,
        )

    return await idempotency.once(session, request, workspace_id=principal.workspace_id, key=idempotency_key,
                                  body=body.model_dump(mode="json"), model=ProfilePublic, run=run)


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


@router.get(
    "/profiles/{profile_id}/merges", response_model=list[MergeLedgerEntry], responses=responses(401, 403, 404, 422),
    summary="The merge ledger of a profile",
)
async def list_profile_merges(profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> list[MergeLedgerEntry]:
    """Every merge this profile took part in, as survivor or as the absorbed profile, newest first."""
    entries = await identity_service.list_merges(session, workspace_id=principal.workspace_id, profile_id=profile_id)
    if not entries:
        await service.resolve_profile(session, workspace_id=principal.workspace_id, profile_id=profile_id)
    return [MergeLedgerEntry.model_validate(e) for e in entries]


@router.post(
    "/profiles/{profile_id}/split", response_model=SplitResult, responses=responses(401, 403, 404, 409, 422),
    summary="Undo a merge",
)
async def split_profile(
    profile_id: uuid.UUID, session: SessionDep, principal: WritePrincipal, body: SplitRequest | None = None,
) -> SplitResult:
    """`profile_id` is the absorbed profile to bring back, or the survivor with `merge_id` /
    `absorbed_id` in the body. The identifiers and events the merge moved go back, and both
    profiles get their traits from before the merge."""
    body = body or SplitRequest()
    return SplitResult.model_validate(await identity_service.split(
        session, workspace_id=principal.workspace_id, profile_id=profile_id, merge_id=body.merge_id,
        absorbed_id=body.absorbed_id,
    ))
