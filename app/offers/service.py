"""The offer catalog: offers and placements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.offers import eligibility, repository
from app.offers.errors import InvalidOffer, NameTaken, OfferInUse, OfferNotFound, PlacementNotFound
from app.offers.models import Offer, Placement
from app.offers.schemas import OfferCreate, OfferUpdate, PlacementCreate, PlacementUpdate


async def validate_eligibility(session: AsyncSession, *, workspace_id: uuid.UUID, rule: dict[str, Any] | None) -> None:
    if rule is not None:
        await eligibility.validate(session, workspace_id=workspace_id, rule=rule)


async def _flush_named(session: AsyncSession, what: str, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_" in str(exc.orig):
            raise NameTaken(f"A {what} named {name!r} already exists in this workspace.") from None
        raise


async def list_offers(session: AsyncSession, *, workspace_id: uuid.UUID) -> Sequence[Offer]:
    return await repository.list_offers(session, workspace_id)


async def get_offer(session: AsyncSession, *, workspace_id: uuid.UUID, offer_id: uuid.UUID) -> Offer:
    offer = await repository.get_offer(session, workspace_id, offer_id)
    if offer is None:
        raise OfferNotFound(f"No offer with id {offer_id} in this workspace.")
    return offer


async def create_offer(session: AsyncSession, *, workspace_id: uuid.UUID, data: OfferCreate) -> Offer:
    await validate_eligibility(session, workspace_id=workspace_id, rule=data.eligibility)
    offer = Offer(workspace_id=workspace_id, **data.model_dump(mode="python", exclude={"caps"}),
                  caps=data.caps.model_dump(exclude_none=True))
    session.add(offer)
    await _flush_named(session, "offer", data.name)
    await session.refresh(offer)
    return offer


async def update_offer(session: AsyncSession, *, workspace_id: uuid.UUID, offer_id: uuid.UUID, data: OfferUpdate) -> Offer:
    offer = await get_offer(session, workspace_id=workspace_id, offer_id=offer_id)
    changes = data.model_dump(exclude_unset=True)
    if "eligibility" in changes:
        await validate_eligibility(session, workspace_id=workspace_id, rule=changes["eligibility"])
    if "caps" in changes:
        changes["caps"] = data.caps.model_dump(exclude_none=True) if data.caps else {}
    for key in ("channels", "placements", "tags", "value", "weight", "priority", "paused", "kind", "content", "name"):
        if key in changes and changes[key] is None:
            raise InvalidOffer(f"`{key}` cannot be null.")
    for key, value in changes.items():
        setattr(offer, key, value)
    if offer.valid_from and offer.valid_until and offer.valid_from >= offer.valid_until:
        raise InvalidOffer("valid_from must be earlier than valid_until.")
    offer.updated_at = sa.func.now()
    await _flush_named(session, "offer", offer.name)
    await session.refresh(offer)
    return offer


async def delete_offer(session: AsyncSession, *, workspace_id: uuid.UUID, offer_id: uuid.UUID) -> None:
    offer = await get_offer(session, workspace_id=workspace_id, offer_id=offer_id)
    users = await repository.fallback_users(session, workspace_id, offer_id)
    if users:
        raise OfferInUse(f"The offer is the fallback of placement(s) {', '.join(users)}; change them first.")
    await session.delete(offer)
    await session.flush()


async def list_placements(session: AsyncSession, *, workspace_id: uuid.UUID) -> Sequence[Placement]:
    return await repository.list_placements(session, workspace_id)


async def get_placement(session: AsyncSession, *, workspace_id: uuid.UUID, placement_id: uuid.UUID) -> Placement:
    placement = await repository.get_placement(session, workspace_id, placement_id)
    if placement is None:
        raise PlacementNotFound(f"No placement with id {placement_id} in this workspace.")
    return placement


async def placement_by_name(session: AsyncSession, *, workspace_id: uuid.UUID, name: str) -> Placement:
    placement = await repository.placement_by_name(session, workspace_id, name)
    if placement is None:
        raise PlacementNotFound(f"No placement named {name!r} in this workspace.")
    return placement


async def _check_fallback(session: AsyncSession, workspace_id: uuid.UUID, offer_id: uuid.UUID | None, channel: str) -> None:
    if offer_id is None:
        return
    offer = await repository.get_offer(session, workspace_id, offer_id)
    if offer is None:
        raise InvalidOffer(f"The fallback offer {offer_id} does not exist in this workspace.")
    if channel not in offer.channels:
        raise InvalidOffer(f"The fallback offer {offer.name!r} is not on the {channel} channel.")


async def create_placement(session: AsyncSession, *, workspace_id: uuid.UUID, data: PlacementCreate) -> Placement:
    await _check_fallback(session, workspace_id, data.fallback_offer_id, data.channel)
    placement = Placement(workspace_id=workspace_id, **data.model_dump(mode="python"))
    session.add(placement)
    await _flush_named(session, "placement", data.name)
    await session.refresh(placement)
    return placement


async def update_placement(
    session: AsyncSession, *, workspace_id: uuid.UUID, placement_id: uuid.UUID, data: PlacementUpdate
) -> Placement:
    placement = await get_placement(session, workspace_id=workspace_id, placement_id=placement_id)
    changes = data.model_dump(exclude_unset=True)
    for key in ("name", "channel", "max_offers", "exploration", "epsilon", "control_share", "control_mode"):
        if key in changes and changes[key] is None:
            raise InvalidOffer(f"`{key}` cannot be null.")
    for key, value in changes.items():
        setattr(placement, key, value)
    await _check_fallback(session, workspace_id, placement.fallback_offer_id, placement.channel)
    placement.updated_at = sa.func.now()
    await _flush_named(session, "placement", placement.name)
    await session.refresh(placement)
    return placement


async def delete_placement(session: AsyncSession, *, workspace_id: uuid.UUID, placement_id: uuid.UUID) -> None:
    placement = await get_placement(session, workspace_id=workspace_id, placement_id=placement_id)
    await session.delete(placement)
    await session.flush()


async def offers_by_id(session: AsyncSession, *, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Offer]:
    return await repository.offers_by_id(session, workspace_id, ids)


async def offers_by_name(session: AsyncSession, *, workspace_id: uuid.UUID, names: Sequence[str]) -> dict[str, Offer]:
    return await repository.offers_by_name(session, workspace_id, names)
