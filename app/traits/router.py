from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.core.auth import ReadPrincipal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.profiles import service as profile_service
from app.traits import service
from app.traits.schemas import (
    ClvFitRequest,
    ClvModelPublic,
    ComputedTraitCreate,
    ComputedTraitPublic,
    ComputedTraitUpdate,
    ProfileComputedTraits,
    RefreshJobPublic,
)

router = APIRouter(tags=["traits"])


@router.get(
    "/computed-traits", response_model=list[ComputedTraitPublic], responses=responses(401, 403),
    summary="List computed trait definitions",
)
async def list_computed_traits(session: SessionDep, principal: ReadPrincipal) -> list[ComputedTraitPublic]:
    """The workspace's own definitions, by name. Built-in traits need no definition."""
    traits = await service.list_definitions(session, workspace_id=principal.workspace_id)
    return [ComputedTraitPublic.model_validate(t) for t in traits]


@router.post(
    "/computed-traits", status_code=status.HTTP_201_CREATED, response_model=ComputedTraitPublic,
    responses=responses(401, 403, 409, 422), summary="Define a computed trait",
)
async def create_computed_trait(
    body: ComputedTraitCreate, session: SessionDep, principal: WritePrincipal
) -> ComputedTraitPublic:
    """Values appear with the next refresh (hourly, or `POST /v1/computed-traits/refresh`)."""
    trait = await service.create_definition(session, workspace_id=principal.workspace_id, data=body)
    return ComputedTraitPublic.model_validate(trait)


@router.post(
    "/computed-traits/refresh", status_code=status.HTTP_202_ACCEPTED, response_model=RefreshJobPublic,
    responses={200: {"model": RefreshJobPublic, "description": "With `wait=true`: the finished refresh."},
               **responses(401, 403, 422)},
    summary="Refresh the workspace's computed traits",
)
async def refresh_computed_traits(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: WritePrincipal,
    wait: Annotated[bool, Query(description="Refresh now, inside this request, and answer 200 when done.")] = False,
) -> RefreshJobPublic:
    """Queues a full refresh for the worker and answers 202 with the job (a refresh still
    waiting in the queue is reused); follow it at `/v1/computed-traits/jobs/{job_id}`."""
    job = await service.request_refresh(
        session, workspace_id=principal.workspace_id, wait=wait, clv_refit_after=service.clv_refit_after(request.app.state.settings)
    )
    if wait:
        response.status_code = status.HTTP_200_OK
    return RefreshJobPublic.model_validate(job)


@router.get(
    "/computed-traits/jobs/{job_id}", response_model=RefreshJobPublic, responses=responses(401, 403, 404, 422),
    summary="A refresh job's status",
)
async def get_computed_trait_job(job_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> RefreshJobPublic:
    job = await service.get_refresh_job(session, workspace_id=principal.workspace_id, job_id=job_id)
    return RefreshJobPublic.model_validate(job)


@router.post(
    "/computed-traits/clv/fit", response_model=ClvModelPublic, responses=responses(401, 403, 422),
    summary="Fit the CLV models and score every customer",
)
async def fit_clv_model(
    session: SessionDep, principal: WritePrincipal, body: ClvFitRequest | None = None
) -> ClvModelPublic:
    """A purchase model (BG/NBD, modified BG/NBD or Pareto/NBD, chosen by a calibration/holdout
    comparison unless `model` names one; repeat purchases per distinct day, time in weeks) and
    Gamma-Gamma on the `Order Completed` events of the calibration period, then per profile:
    probability_alive, expected_spend, and expected_orders_<N>d and clv_<N>d for each horizon, as
    of the observation end. The settings are stored with the model and reused by every automatic
    refit. 422 when the history cannot identify the model (e.g. no repeat purchases)."""
    return await service.fit_clv(session, workspace_id=principal.workspace_id, request=body)


@router.get(
    "/computed-traits/clv/model", response_model=ClvModelPublic, responses=responses(401, 403, 404),
    summary="The last fitted CLV model",
)
async def get_clv_model(session: SessionDep, principal: ReadPrincipal) -> ClvModelPublic:
    """The model in use, the period it covers, its settings, and the calibration/holdout comparison
    that chose it: predicted against actual repeat purchases per customer group, and the error."""
    return await service.get_clv_model(session, workspace_id=principal.workspace_id)


@router.get(
    "/computed-traits/{trait_id}", response_model=ComputedTraitPublic, responses=responses(401, 403, 404, 422),
    summary="Get a computed trait definition",
)
async def get_computed_trait(trait_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> ComputedTraitPublic:
    trait = await service.get_definition(session, workspace_id=principal.workspace_id, trait_id=trait_id)
    return ComputedTraitPublic.model_validate(trait)


@router.patch(
    "/computed-traits/{trait_id}", response_model=ComputedTraitPublic, responses=responses(401, 403, 404, 409, 422),
    summary="Change a computed trait definition",
)
async def update_computed_trait(
    trait_id: uuid.UUID, body: ComputedTraitUpdate, session: SessionDep, principal: WritePrincipal
) -> ComputedTraitPublic:
    """Its values are dropped until the next refresh recomputes them (they described the old definition)."""
    trait = await service.update_definition(
        session, workspace_id=principal.workspace_id, trait_id=trait_id, changes=body
    )
    return ComputedTraitPublic.model_validate(trait)


@router.delete(
    "/computed-traits/{trait_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 422),
    summary="Delete a computed trait and its values",
)
async def delete_computed_trait(trait_id: uuid.UUID, session: SessionDep, principal: WritePrincipal) -> None:
    await service.delete_definition(session, workspace_id=principal.workspace_id, trait_id=trait_id)


@router.get(
    "/profiles/{profile_id}/computed-traits", response_model=ProfileComputedTraits,
    responses=responses(401, 403, 404, 422), summary="A profile's computed traits",
)
async def get_profile_computed_traits(
    profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal
) -> ProfileComputedTraits:
    """Built-in (orders, RFM, CLV) and defined traits, each with when it was computed. An id
    that was merged away answers for the surviving profile."""
    profile = await profile_service.resolve_profile(session, workspace_id=principal.workspace_id, profile_id=profile_id)
    values = await service.get_profile_values(session, workspace_id=principal.workspace_id, profile_id=profile.id)
    return ProfileComputedTraits(
        profile_id=profile.id, requested_id=profile_id if profile.id != profile_id else None, computed_traits=values
    )
