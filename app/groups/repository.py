from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.groups.models import Account, AccountMember

_member_count = (
    sa.select(sa.func.count())
    .where(AccountMember.workspace_id == Account.workspace_id, AccountMember.group_id == Account.group_id)
    .correlate(Account)
    .scalar_subquery()
    .label("member_count")
)
_GROUP_COLUMNS = (Account.group_id, Account.traits, _member_count, Account.created_at, Account.updated_at)


async def list_groups(session: AsyncSession, workspace_id: uuid.UUID, *, after: str | None, limit: int) -> list[Any]:
    stmt = sa.select(*_GROUP_COLUMNS).where(Account.workspace_id == workspace_id)
    if after is not None:
        stmt = stmt.where(Account.group_id > after)
    return list((await session.execute(stmt.order_by(Account.group_id).limit(limit))).all())


async def get_group(session: AsyncSession, workspace_id: uuid.UUID, group_id: str) -> Any | None:
    stmt = sa.select(*_GROUP_COLUMNS).where(Account.workspace_id == workspace_id, Account.group_id == group_id)
    return (await session.execute(stmt)).first()


async def list_members(
    session: AsyncSession, workspace_id: uuid.UUID, group_id: str, *, after: uuid.UUID | None, limit: int
) -> list[Any]:
    stmt = sa.select(AccountMember.profile_id, AccountMember.created_at.label("joined_at")).where(
        AccountMember.workspace_id == workspace_id, AccountMember.group_id == group_id
    )
    if after is not None:
        stmt = stmt.where(AccountMember.profile_id > after)
    return list((await session.execute(stmt.order_by(AccountMember.profile_id).limit(limit))).all())


async def list_profile_groups(
    session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID, *, after: str | None, limit: int
) -> list[Any]:
    stmt = (
        sa.select(*_GROUP_COLUMNS, AccountMember.created_at.label("joined_at"))
        .join(AccountMember, sa.and_(AccountMember.workspace_id == Account.workspace_id,
                                     AccountMember.group_id == Account.group_id))
        .where(AccountMember.workspace_id == workspace_id, AccountMember.profile_id == profile_id)
    )
    if after is not None:
        stmt = stmt.where(AccountMember.group_id > after)
    return list((await session.execute(stmt.order_by(AccountMember.group_id).limit(limit))).all())
