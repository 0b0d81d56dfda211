from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.core.auth import AdminPrincipal, InstanceAdmin, ReadPrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.workspaces import service
from app.workspaces.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspacePublic,
    WorkspaceUpdate,
)

router = APIRouter(tags=["workspaces"])


@router.post(
    "/workspaces",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkspaceCreated,
    responses=responses(401, 422),
    summary="Create a workspace with a write key and an admin secret key",
)
async def create_workspace(body: WorkspaceCreate, session: SessionDep, _: InstanceAdmin) -> WorkspaceCreated:
    """Needs the instance admin token (`CLIENTELE_ADMIN_TOKEN`) as the Bearer token."""
    created = await service.create_workspace(session, name=body.name)
    return WorkspaceCreated(
        workspace=_public(created.workspace),
        write_key=created.write_key,
        secret_key=created.secret_key,
    )


def _public(workspace) -> WorkspacePublic:
    rate = ((workspace.settings or {}).get("ingest") or {}).get("rate_limit_per_second")
    retention = ((workspace.settings or {}).get("privacy") or {}).get("event_retention_days")
    return WorkspacePublic(id=workspace.id, name=workspace.name, created_at=workspace.created_at,
                           ingest_rate_limit_per_second=rate, event_retention_days=retention,
                           cors_allowed_origins=service.allowed_origins_from(workspace.settings))


@router.get("/workspace", response_model=WorkspacePublic, responses=responses(401, 403), summary="The key's workspace")
async def get_current_workspace(session: SessionDep, principal: ReadPrincipal) -> WorkspacePublic:
    workspace = await service.get_workspace(session, workspace_id=principal.workspace_id)
    return _public(workspace)


@router.patch(
    "/workspace", response_model=WorkspacePublic, responses=responses(401, 403, 422), summary="Change the key's workspace"
)
async def update_current_workspace(body: WorkspaceUpdate, session: SessionDep, principal: AdminPrincipal) -> WorkspacePublic:
    """Rename it, set its own ingest rate limit (429 + Retry-After beyond it), its event
    retention (events older than that many days are deleted by an hourly job), or the origins
    whose web pages may send data with its write key (CORS)."""
    workspace = await service.update_workspace(
        session, workspace_id=principal.workspace_id, name=body.name,
        ingest_rate_limit_per_second=body.ingest_rate_limit_per_second,
        rate_given="ingest_rate_limit_per_second" in body.model_fields_set,
        event_retention_days=body.event_retention_days,
        retention_given="event_retention_days" in body.model_fields_set,
        allowed_origins=body.cors_allowed_origins, origins_given="cors_allowed_origins" in body.model_fields_set,
    )
    return _public(workspace)


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=responses(401, 403, 422),
    summary="Create an API key",
)
async def create_key(body: ApiKeyCreate, session: SessionDep, principal: AdminPrincipal) -> ApiKeyCreated:
    created = await service.create_key(
        session, workspace_id=principal.workspace_id, name=body.name, kind=body.kind, scopes=list(body.scopes)
    )
    return ApiKeyCreated(**ApiKeyPublic.model_validate(created.key).model_dump(), key=created.secret)


@router.get("/keys", response_model=list[ApiKeyPublic], responses=responses(401, 403), summary="List API keys")
async def list_keys(session: SessionDep, principal: AdminPrincipal) -> list[ApiKeyPublic]:
    keys = await service.list_keys(session, workspace_id=principal.workspace_id)
    return [ApiKeyPublic.model_validate(k) for k in keys]


@router.delete(
    "/keys/{key_id}", response_model=ApiKeyPublic, responses=responses(401, 403, 404), summary="Revoke an API key"
)
async def revoke_key(key_id: uuid.UUID, session: SessionDep, principal: AdminPrincipal) -> ApiKeyPublic:
    """Revoking is immediate and cannot be undone; the key stays listed with `revoked_at`."""
    key = await service.revoke_key(session, workspace_id=principal.workspace_id, key_id=key_id)
    return ApiKeyPublic.model_validate(key)
