from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.workspaces.models import ApiKey, Workspace


async def insert_workspace(session: AsyncSession, workspace: Workspace) -> Workspace:
    session.add(workspace)
    await session.flush()
    await session.refresh(workspace)
    return workspace


async def get_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace | None:
    return await session.get(Workspace, workspace_id)


async def list_workspaces(session: AsyncSession) -> list[Workspace]:
    return list((await session.execute(sa.select(Workspace).order_by(Workspace.created_at))).scalars())


async def insert_key(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    await session.refresh(key)
    return key


async def list_keys(session: AsyncSession, workspace_id: uuid.UUID) -> list[ApiKey]:
    stmt = sa.select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.created_at, ApiKey.id)
    return list((await session.execute(stmt)).scalars())


async def revoke_key(session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    stmt = (
        sa.update(ApiKey)
        .where(ApiKey.workspace_id == workspace_id, ApiKey.id == key_id)
        .values(revoked_at=sa.func.coalesce(ApiKey.revoked_at, sa.func.now()))
        .returning(ApiKey)
    )
    return (await session.execute(stmt)).scalars().first()


async def find_key(session: AsyncSession, key_hash: str) -> sa.Row | None:
    """The unrevoked key with this hash and its workspace's settings: one index lookup."""
    stmt = (
        sa.select(ApiKey.id, ApiKey.workspace_id, ApiKey.kind, ApiKey.scopes, Workspace.settings)
        .join(Workspace, Workspace.id == ApiKey.workspace_id)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    return (await session.execute(stmt)).first()
