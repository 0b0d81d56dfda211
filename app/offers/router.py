from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.core.auth import ReadPrincipal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.offers import service
from app.offers.schemas import (
    OfferCreate,
    OfferPublic,
    OfferUpdate,
    PlacementCreate,
    PlacementPublic,
    PlacementUpdate,
)

router = APIRouter(tags=["offers"])


def _offer(o) -> OfferPublic:  # noqa: ANN001
    return OfferPublic.model_validate(o)


@router.get("/offers", response_model=list[OfferPublic], responses=responses(401, 403), summary="List offers")
async def list_offers(session: SessionDep, principal: ReadPrincipal) -> list[OfferPublic]:
    return [_offer(o) for o in await service.list_offers(session, workspace_id=principal.workspace_id)]


@router.post(
    "/offers", status_code=status.HTTP_201_CREATED, response_model=OfferPublic,
    responses=responses(401, 403, 409, 422), summary="Create an offer",
)
async def create_offer(body: OfferCreate, session: SessionDep, principal: WritePrincipal) -> OfferPublic:
    """Needs a secret key with the `write` (or `admin`) scope. The eligibility rule is checked
    now: a 422 names the JSON pointer of the bad node."""
    return _offer(await service.create_offer(session, workspace_id=principal.workspace_id, data=body))


@router.get("/offers/{offer_id}", response_model=OfferPublic, responses=responses(401, 403, 404, 422), summary="Get an offer")
async def get_offer(offer_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> OfferPublic:
    return _offer(await service.get_offer(session, workspace_id=principal.workspace_id, offer_id=offer_id))


@router.patch(
    "/offers/{offer_id}", response_model=OfferPublic, responses=responses(401, 403, 404, 409, 422),
    summary="Change an offer",
)
async def update_offer(offer_id: uuid.UUID, body: OfferUpdate, session: SessionDep, principal: WritePrincipal) -> OfferPublic:
    return _offer(await service.update_offer(session, workspace_id=principal.workspace_id, offer_id=offer_id, data=body))


@router.delete(
    "/offers/{offer_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 409, 422),
    summary="Delete an offer",
)
async def delete_offer(offer_id: uuid.UUID, session: SessionDep, principal: WritePrincipal) -> Response:
    """Past decisions keep their record of it. An offer that is a placement's fallback cannot be deleted (409)."""
    await service.delete_offer(session, workspace_id=principal.workspace_id, offer_id=offer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/placements", response_model=list[PlacementPublic], responses=responses(401, 403), summary="List placements")
async def list_placements(session: SessionDep, principal: ReadPrincipal) -> list[PlacementPublic]:
    return [PlacementPublic.model_validate(p) for p in await service.list_placements(session, workspace_id=principal.workspace_id)]


@router.post(
    "/placements", status_code=status.HTTP_201_CREATED, response_model=PlacementPublic,
    responses=responses(401, 403, 409, 422), summary="Create a placement",
)
async def create_placement(body: PlacementCreate, session: SessionDep, principal: WritePrincipal) -> PlacementPublic:
    return PlacementPublic.model_validate(
        await service.create_placement(session, workspace_id=principal.workspace_id, data=body)
    )


@router.get(
    "/placements/{placement_id}", response_model=PlacementPublic, responses=responses(401, 403, 404, 422),
    summary="Get a placement",
)
async def get_placement(placement_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> PlacementPublic:
    return PlacementPublic.model_validate(
        await service.get_placement(session, workspace_id=principal.workspace_id, placement_id=placement_id)
    )


@router.patch(
    "/placements/{placement_id}", response_model=PlacementPublic, responses=responses(401, 403, 404, 409, 422),
    summary="Change a placement",
)
async def update_placement(
    placement_id: uuid.UUID, body: PlacementUpdate, session: SessionDep, principal: WritePrincipal
) -> PlacementPublic:
    return PlacementPublic.model_validate(await service.update_placement(
        session, workspace_id=principal.workspace_id, placement_id=placement_id, data=body
    ))


@router.delete(
    "/placements/{placement_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 422),
    summary="Delete a placement",
)
async def delete_placement(placement_id: uuid.UUID, session: SessionDep, principal: WritePrincipal) -> Response:
    await service.delete_placement(session, workspace_id=principal.workspace_id, placement_id=placement_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
