from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.auth import AdminPrincipal, ReadPrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.identity import service
from app.identity.schemas import IdentityConflictPublic, IdentitySettingsPublic, IdentitySettingsUpdate
from app.workspaces import service as workspace_service

router = APIRouter(tags=["identity"])


def _public(workspace_settings: dict) -> IdentitySettingsPublic:
    s = service.identity_settings_from(workspace_settings)
    return IdentitySettingsPublic(
        default_region=s.default_region, blocked_values=sorted(s.blocked_values), limits=dict(s.limits),
        default_limit=s.default_limit, priority=list(s.priority),
        trait_strategies=service.trait_strategies_from(workspace_settings),  # type: ignore[arg-type]
        dedup_joins=sorted(service.dedup_joins_from(workspace_settings)),
    )


@router.get("/identity/settings", response_model=IdentitySettingsPublic, responses=responses(401, 403), summary="Identity rules")
async def get_identity_settings(session: SessionDep, principal: ReadPrincipal) -> IdentitySettingsPublic:
    workspace = await workspace_service.get_workspace(session, workspace_id=principal.workspace_id)
    return _public(workspace.settings)


@router.put(
    "/identity/settings", response_model=IdentitySettingsPublic, responses=responses(401, 403, 422),
    summary="Change identity rules",
)
async def update_identity_settings(
    body: IdentitySettingsUpdate, session: SessionDep, principal: AdminPrincipal
) -> IdentitySettingsPublic:
    """Applies to data received from now on; existing links are not re-evaluated."""
    value = body.model_dump(exclude_none=True)
    workspace = await workspace_service.update_settings_section(
        session, workspace_id=principal.workspace_id, section="identity", value=value
    )
    return _public(workspace.settings)


@router.get(
    "/identity/conflicts", response_model=list[IdentityConflictPublic], responses=responses(401, 403, 422),
    summary="Links refused by identity limits",
)
async def list_identity_conflicts(
    session: SessionDep,
    principal: ReadPrincipal,
    profile_id: Annotated[uuid.UUID | None, Query(description="Only conflicts involving this profile.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[IdentityConflictPublic]:
    rows = await service.list_conflicts(session, workspace_id=principal.workspace_id, profile_id=profile_id, limit=limit)
    return [IdentityConflictPublic.model_validate(r) for r in rows]
