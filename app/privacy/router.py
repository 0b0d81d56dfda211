"""Privacy requests (access, erasure) and suppressions. Admin scope: these routes read or
destroy a person's whole record."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.core.auth import AdminPrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.privacy import service
from app.privacy.schemas import AccessExport, PrivacyRequestCreate, PrivacyRequestPublic, SuppressionPublic

router = APIRouter(tags=["privacy"])


@router.post(
    "/privacy/requests", status_code=status.HTTP_202_ACCEPTED, response_model=PrivacyRequestPublic,
    responses={200: {"model": PrivacyRequestPublic, "description": "With `wait=true`: the processed request."},
               **responses(401, 403, 422)},
    summary="File an access or erasure request",
)
async def create_privacy_request(
    body: PrivacyRequestCreate,
    session: SessionDep,
    principal: AdminPrincipal,
    response: Response,
    wait: Annotated[bool, Query(description="Process it inside this request and answer 200 when done.")] = False,
) -> PrivacyRequestPublic:
    """Answers 202 with the request; a background job processes it (follow it at
    `/v1/privacy/requests/{id}`). Access produces an export of everything held about the
    person; erasure deletes it everywhere and suppresses the person's identifiers, so ingest
    and imports do not bring them back."""
    request = await service.create_request(
        session, workspace_id=principal.workspace_id, type_=body.type, identifier_type=body.identifier.type,
        identifier_value=body.identifier.value, wait=wait,
    )
    if wait:
        response.status_code = status.HTTP_200_OK
    return PrivacyRequestPublic.model_validate(request)


@router.get(
    "/privacy/requests", response_model=list[PrivacyRequestPublic], responses=responses(401, 403, 422),
    summary="List privacy requests",
)
async def list_privacy_requests(
    session: SessionDep,
    principal: AdminPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[uuid.UUID | None, Query(description="Requests older than this id (the last one of a page).")] = None,
) -> list[PrivacyRequestPublic]:
    """Newest first."""
    rows = await service.list_requests(session, workspace_id=principal.workspace_id, limit=limit, before=before)
    return [PrivacyRequestPublic.model_validate(r) for r in rows]


@router.get(
    "/privacy/requests/{request_id}", response_model=PrivacyRequestPublic, responses=responses(401, 403, 404, 422),
    summary="A privacy request's status and audit trail",
)
async def get_privacy_request(request_id: uuid.UUID, session: SessionDep, principal: AdminPrincipal) -> PrivacyRequestPublic:
    request = await service.get_request(session, workspace_id=principal.workspace_id, request_id=request_id)
    return PrivacyRequestPublic.model_validate(request)


@router.get(
    "/privacy/requests/{request_id}/export", response_model=AccessExport, responses=responses(401, 403, 404, 409, 422),
    summary="The export of a completed access request",
)
async def get_privacy_export(request_id: uuid.UUID, session: SessionDep, principal: AdminPrincipal) -> AccessExport:
    """A JSON document of everything held about the person across merged profiles: profile,
    identifiers, traits, computed traits, events, merge ledger, and every other table with a
    `profile_id` column. 409 while the request is not completed, for erasure requests, and
    when the person was not found."""
    document = await service.get_export(session, workspace_id=principal.workspace_id, request_id=request_id)
    return AccessExport.model_validate(document)


@router.get(
    "/privacy/suppressions", response_model=list[SuppressionPublic], responses=responses(401, 403, 422),
    summary="List suppressed identifiers",
)
async def list_suppressions(
    session: SessionDep,
    principal: AdminPrincipal,
    identifier_type: Annotated[str | None, Query(max_length=64, description="With identifier_value: find its entry.")] = None,
    identifier_value: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[uuid.UUID | None, Query(description="Entries older than this id.")] = None,
) -> list[SuppressionPublic]:
    """Newest first. Entries hold a keyed hash, not the identifier: to find a person's entry,
    pass their identifier (it is hashed the same way and matched)."""
    rows = await service.list_suppressions(
        session, workspace_id=principal.workspace_id, identifier_type=identifier_type,
        identifier_value=identifier_value, limit=limit, before=before,
    )
    return [SuppressionPublic.of(r) for r in rows]


@router.delete(
    "/privacy/suppressions/{suppression_id}", response_model=SuppressionPublic, responses=responses(401, 403, 404, 422),
    summary="Lift a suppression",
)
async def lift_suppression(suppression_id: uuid.UUID, session: SessionDep, principal: AdminPrincipal) -> SuppressionPublic:
    """Messages with the identifier are accepted again (it creates a new profile; nothing erased
    comes back). Recorded in the erasure request's audit trail."""
    row = await service.lift_suppression(session, workspace_id=principal.workspace_id, suppression_id=suppression_id)
    return SuppressionPublic.of(row)
