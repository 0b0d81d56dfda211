"""Workspaces and API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import service as consent_service
from app.core.auth import DISPLAY_PREFIX_LEN, Scope, StoredKey, forget_key, forget_workspace, generate_key, hash_key
from app.core.errors import NotFound
from app.workspaces import repository
from app.workspaces.models import ApiKey, Workspace


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str


@dataclass(frozen=True)
class CreatedWorkspace:
    workspace: Workspace
    write_key: str
    secret_key: str


async def create_key(
    session: AsyncSession, *, workspace_id: uuid.UUID, name: str, kind: str, scopes: list[str] | None = None
) -> CreatedKey:
    secret = generate_key(kind)
    scope_values = sorted({str(Scope(s)) for s in (scopes or [Scope.read])}) if kind == "secret" else []
    row = ApiKey(
        workspace_id=workspace_id, kind=kind, name=name, prefix=secret[:DISPLAY_PREFIX_LEN],
        key_hash=hash_key(secret), scopes=scope_values,
    )
    return CreatedKey(key=await repository.insert_key(session, row), secret=secret)


async def create_workspace(session: AsyncSession, *, name: str) -> CreatedWorkspace:
    workspace = await repository.insert_workspace(session, Workspace(name=name))
    await consent_service.seed_workspace(session, workspace_id=workspace.id)
    write = await create_key(session, workspace_id=workspace.id, name="default write key", kind="write")
    admin = await create_key(
        session, workspace_id=workspace.id, name="default admin key", kind="secret", scopes=[Scope.admin]
    )
    return CreatedWorkspace(workspace=workspace, write_key=write.secret, secret_key=admin.secret)


async def get_workspace(session: AsyncSession, *, workspace_id: uuid.UUID) -> Workspace:
    workspace = await repository.get_workspace(session, workspace_id)
    if workspace is None:
        raise NotFound(f"No workspace with id {workspace_id}.")
    return workspace


async def list_workspaces(session: AsyncSession) -> list[Workspace]:
    return await repository.list_workspaces(session)


async def find_key(session: AsyncSession, key_hash: str) -> StoredKey | None:
    """The key lookup app.core.auth uses (`app.state.find_key`, set by create_app)."""
    row = await repository.find_key(session, key_hash)
    if row is None:
        return None
    return StoredKey(key_id=row.id, workspace_id=row.workspace_id, kind=row.kind, scopes=list(row.scopes),
                     workspace_settings=row.settings or {})


async def list_keys(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[ApiKey]:
    return await repository.list_keys(session, workspace_id)


async def revoke_key(session: AsyncSession, *, workspace_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    key = await repository.revoke_key(session, workspace_id, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id} in this workspace.")
    forget_key(key.key_hash)
    return key


async def update_settings_section(
    session: AsyncSession, *, workspace_id: uuid.UUID, section: str, value: dict
) -> Workspace:
    """Replace one section of the workspace's settings (e.g. "identity")."""
    workspace = await get_workspace(session, workspace_id=workspace_id)
    workspace.settings = {**(workspace.settings or {}), section: value}
    session.add(workspace)
    await session.flush()
    forget_workspace(workspace_id)  # ingest caches settings with the write key
    return workspace


async def update_workspace(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    name: str | None,
    ingest_rate_limit_per_second: float | None,
    rate_given: bool,
) -> Workspace:
    workspace = await get_workspace(session, workspace_id=workspace_id)
    if name is not None:
        workspace.name = name
        session.add(workspace)
        await session.flush()
    if rate_given:
        ingest = dict((workspace.settings or {}).get("ingest") or {})
        if ingest_rate_limit_per_second is None:
            ingest.pop("rate_limit_per_second", None)
        else:
            ingest["rate_limit_per_second"] = ingest_rate_limit_per_second
        workspace = await update_settings_section(session, workspace_id=workspace_id, section="ingest", value=ingest)
    return workspace
