"""Consent API: purposes, notices, the ledger, current state, one-click unsubscribe."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.consent import service
from app.consent.schemas import (
    ConsentByIdentifierCreate,
    ConsentCreate,
    ConsentHistoryPage,
    ConsentRecordPublic,
    ConsentState,
    NoticeCreate,
    NoticePublic,
    NoticeUpdate,
    PurposeCreate,
    PurposePublic,
    PurposeUpdate,
    UnsubscribeResult,
    UnsubscribeTokenCreate,
    UnsubscribeTokenPublic,
)
from app.core import idempotency
from app.core.auth import AdminPrincipal, ReadPrincipal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Limit
from app.workspaces import service as workspace_service

router = APIRouter(tags=["consent"])

PurposeKey = Annotated[str, Path(max_length=64, description="The purpose's key.")]


def _secret(request: Request) -> str:
    return request.app.state.settings.consent_secret.get_secret_value()


# --- purposes ---------------------------------------------------------------------------------

@router.get("/consent/purposes", response_model=list[PurposePublic], responses=responses(401, 403),
            summary="List the workspace's purposes")
async def list_purposes(session: SessionDep, principal: ReadPrincipal) -> list[PurposePublic]:
    return [PurposePublic.model_validate(p) for p in
            await service.list_purposes(session, workspace_id=principal.workspace_id)]


@router.post("/consent/purposes", response_model=PurposePublic, status_code=201,
             responses=responses(401, 403, 409, 422), summary="Create a purpose (admin)")
async def create_purpose(body: PurposeCreate, session: SessionDep, principal: AdminPrincipal) -> PurposePublic:
    """Opt-in purposes (lawful basis `consent`) must default to `denied` (422 otherwise)."""
    return PurposePublic.model_validate(
        await service.create_purpose(session, workspace_id=principal.workspace_id, data=body)
    )


@router.get("/consent/purposes/{key}", response_model=PurposePublic, responses=responses(401, 403, 404, 422),
            summary="Get a purpose")
async def get_purpose(key: PurposeKey, session: SessionDep, principal: ReadPrincipal) -> PurposePublic:
    return PurposePublic.model_validate(await service.get_purpose(session, workspace_id=principal.workspace_id, key=key))


@router.patch("/consent/purposes/{key}", response_model=PurposePublic, responses=responses(401, 403, 404, 422),
              summary="Change a purpose (admin)")
async def update_purpose(
    key: PurposeKey, body: PurposeUpdate, session: SessionDep, principal: AdminPrincipal
) -> PurposePublic:
    return PurposePublic.model_validate(
        await service.update_purpose(session, workspace_id=principal.workspace_id, key=key, data=body)
    )


@router.delete("/consent/purposes/{key}", status_code=204, responses=responses(401, 403, 404, 409, 422),
               summary="Delete a purpose no record cites (admin)")
async def delete_purpose(key: PurposeKey, session: SessionDep, principal: AdminPrincipal) -> Response:
    await service.delete_purpose(session, workspace_id=principal.workspace_id, key=key)
    return Response(status_code=204)


# --- notices ----------------------------------------------------------------------------------

@router.get("/consent/notices", response_model=list[NoticePublic], responses=responses(401, 403, 422),
            summary="List privacy notice versions")
async def list_notices(
    session: SessionDep, principal: ReadPrincipal,
    key: Annotated[str | None, Query(max_length=64, description="Only this notice's versions.")] = None,
) -> list[NoticePublic]:
    return await service.list_notices(session, workspace_id=principal.workspace_id, key=key)


@router.post("/consent/notices", response_model=NoticePublic, status_code=201,
             responses=responses(401, 403, 409, 422), summary="Publish a privacy notice version (admin)")
async def create_notice(body: NoticeCreate, session: SessionDep, principal: AdminPrincipal) -> NoticePublic:
    """A `major` version makes consents given under the notice's earlier versions stale once it
    is published: they no longer count as granted."""
    return await service.create_notice(session, workspace_id=principal.workspace_id, data=body)


@router.get("/consent/notices/{notice_id}", response_model=NoticePublic, responses=responses(401, 403, 404, 422),
            summary="Get a privacy notice version")
async def get_notice(notice_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> NoticePublic:
    return await service.get_notice(session, workspace_id=principal.workspace_id, notice_id=notice_id)


@router.patch("/consent/notices/{notice_id}", response_model=NoticePublic,
              responses=responses(401, 403, 404, 409, 422), summary="Change a notice version no consent cites (admin)")
async def update_notice(
    notice_id: uuid.UUID, body: NoticeUpdate, session: SessionDep, principal: AdminPrincipal
) -> NoticePublic:
    """A version cited by a consent record is immutable (409): publish a new version."""
    return await service.update_notice(session, workspace_id=principal.workspace_id, notice_id=notice_id, data=body)


@router.delete("/consent/notices/{notice_id}", status_code=204, responses=responses(401, 403, 404, 409, 422),
               summary="Delete a notice version no consent cites (admin)")
async def delete_notice(notice_id: uuid.UUID, session: SessionDep, principal: AdminPrincipal) -> Response:
    await service.delete_notice(session, workspace_id=principal.workspace_id, notice_id=notice_id)
    return Response(status_code=204)


# --- the ledger -------------------------------------------------------------------------------

@router.post("/profiles/{profile_id}/consents", response_model=ConsentRecordPublic, status_code=201,
             responses=responses(401, 403, 404, 422), summary="Record a consent statement for a profile")
async def record_profile_consent(
    profile_id: uuid.UUID, body: ConsentCreate, request: Request, session: SessionDep, principal: WritePrincipal,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ConsentRecordPublic:
    """Appends to the ledger (records are never changed or deleted, except by an erasure).
    `proof` values are stored as keyed hashes. Send an `Idempotency-Key` to make retries safe."""
    async def run() -> ConsentRecordPublic:
        return await service.record_consent(session, workspace_id=principal.workspace_id, profile_id=profile_id,
                                            data=body, secret=_secret(request))

    return await idempotency.once(session, request, workspace_id=principal.workspace_id, key=idempotency_key,
                                  body=body.model_dump(mode="json"), model=ConsentRecordPublic, run=run)


@router.post("/consents", response_model=ConsentRecordPublic, status_code=201,
             responses=responses(400, 401, 403, 422), summary="Record a consent statement by identifier")
async def record_consent(
    body: ConsentByIdentifierCreate, request: Request, session: SessionDep, principal: WritePrincipal,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ConsentRecordPublic:
    """Like `POST /v1/profiles/{id}/consents`, the person named by an identifier (normalised as
    at ingest); an unknown identifier creates the profile."""
    async def run() -> ConsentRecordPublic:
        workspace = await workspace_service.get_workspace(session, workspace_id=principal.workspace_id)
        profile_id = await service.profile_for_identifier(
            session, workspace_id=principal.workspace_id, type_=body.identifier.type, value=body.identifier.value,
            workspace_settings=workspace.settings or {},
        )
        return await service.record_consent(session, workspace_id=principal.workspace_id, profile_id=profile_id,
                                            data=body, secret=_secret(request))

    return await idempotency.once(session, request, workspace_id=principal.workspace_id, key=idempotency_key,
                                  body=body.model_dump(mode="json"), model=ConsentRecordPublic, run=run)


@router.get("/profiles/{profile_id}/consents", response_model=ConsentState, responses=responses(401, 403, 404, 422),
            summary="A profile's current consent, per purpose and channel")
async def get_profile_consents(
    profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal,
    at: Annotated[datetime | None, Query(description="Answer as of this time (default now).")] = None,
) -> ConsentState:
    """For every purpose and channel: allowed or not, the record the answer rests on (or the
    purpose's default) and why. Counts the records of profiles merged into this one."""
    return await service.consent_state(session, workspace_id=principal.workspace_id, profile_id=profile_id, at=at)


@router.get("/profiles/{profile_id}/consents/history", response_model=ConsentHistoryPage,
            responses=responses(400, 401, 403, 404, 422), summary="A profile's consent history")
async def list_profile_consent_history(
    profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 100,
) -> ConsentHistoryPage:
    """Every record, newest first (by when it occurred), with those of merged profiles."""
    items, _, next_cursor = await service.consent_history(
        session, workspace_id=principal.workspace_id, profile_id=profile_id, cursor=cursor, limit=limit
    )
    return ConsentHistoryPage(data=items, next_cursor=next_cursor)


# --- one-click unsubscribe --------------------------------------------------------------------

@router.post("/consent/unsubscribe-tokens", response_model=UnsubscribeTokenPublic, status_code=201,
             responses=responses(401, 403, 404, 422), summary="Issue a one-click unsubscribe token")
async def create_unsubscribe_token(
    body: UnsubscribeTokenCreate, request: Request, session: SessionDep, principal: WritePrincipal
) -> UnsubscribeTokenPublic:
    """A signed, expiring token for one profile, purpose and channel, to put in a message (for
    example behind RFC 8058's `List-Unsubscribe-Post`)."""
    return await service.issue_unsubscribe_token(
        session, workspace_id=principal.workspace_id, profile_id=body.profile_id, purpose=body.purpose,
        channel=body.channel, expires_in=timedelta(days=body.expires_in_days), secret=_secret(request),
    )


@router.post("/unsubscribe/{token}", response_model=UnsubscribeResult, responses=responses(404, 409, 410, 422),
             summary="Unsubscribe with a token (no credentials)")
async def unsubscribe(
    token: Annotated[str, Path(max_length=1024, description="The token from the message.")],
    request: Request, session: SessionDep,
) -> UnsubscribeResult:
    """Records the withdrawal the token stands for, once (409 afterwards), until it expires
    (410). Changes nothing else. Any body (RFC 8058's `List-Unsubscribe=One-Click`) is ignored."""
    purpose, channel = await service.unsubscribe(session, token=token, secret=_secret(request))
    return UnsubscribeResult(purpose=purpose, channel=channel)
