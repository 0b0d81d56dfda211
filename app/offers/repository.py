"""Reads and writes of the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.offers.models import Offer, Placement


async def list_offers(session: AsyncSession, workspace_id: uuid.UUID) -> Sequence[Offer]:
    return (await session.scalars(sa.select(Offer).where(Offer.workspace_id == workspace_id).order_by(Offer.name))).all()


async def get_offer(session: AsyncSession, workspace_id: uuid.UUID, offer_id: uuid.UUID) -> Offer | None:
    return await session.scalar(sa.select(Offer).where(Offer.workspace_id == workspace_id, Offer.id == offer_id))


async def offers_by_id(session: AsyncSession, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Offer]:
    rows = await session.scalars(sa.select(Offer).where(Offer.workspace_id == workspace_id, Offer.id.in_(list(set(ids)))))
    return {o.id: o for o in rows}


async def offers_by_name(session: AsyncSession, workspace_id: uuid.UUID, names: Sequence[str]) -> dict[str, Offer]:
    rows = await session.scalars(sa.select(Offer).where(Offer.workspace_id == workspace_id, Offer.name.in_(list(set(names)))))
    return {o.name: o for o in rows}


async def list_placements(session: AsyncSession, workspace_id: uuid.UUID) -> Sequence[Placement]:
    return (
        await session.scalars(sa.select(Placement).where(Placement.workspace_id == workspace_id).order_by(Placement.name))
    ).all()


async def get_placement(session: AsyncSession, workspace_id: uuid.UUID, placement_id: uuid.UUID) -> Placement | None:
    return await session.scalar(
        sa.select(Placement).where(Placement.workspace_id == workspace_id, Placement.id == placement_id)
    )


async def placement_by_name(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> Placement | None:
    return await session.scalar(
        sa.select(Placement).where(Placement.workspace_id == workspace_id, Placement.name == name)
    )


async def candidates(session: AsyncSession, workspace_id: uuid.UUID, channel: str) -> Sequence[Offer]:
    """Every offer on the channel (paused and expired too: explain reports them)."""
    return (
        await session.scalars(
            sa.select(Offer).where(Offer.workspace_id == workspace_id, sa.literal(channel) == sa.any_(Offer.channels)).order_by(Offer.id)
        )
    ).all()


async def fallback_users(session: AsyncSession, workspace_id: uuid.UUID, offer_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        sa.select(Placement.name).where(Placement.workspace_id == workspace_id, Placement.fallback_offer_id == offer_id)
    )
    return list(rows)
