from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import ValidationError

from app.core import jsonrules
from app.core.auth import ReadPrincipal, Scope, WritePrincipal, authorize
from app.core.db import SessionDep, request_session
from app.core.errors import UnsupportedMediaType, responses
from app.core.pagination import Cursor, Limit
from app.decisions import service
from app.decisions.schemas import (
    DecisionPage,
    DecisionPublic,
    DecisionRecord,
    DecisionRequest,
    FeedbackCreate,
    FeedbackPublic,
    ImportResult,
    ModelPublic,
    Recommendation,
    RecommendationList,
    Target,
    TrainJobPublic,
)

router = APIRouter(tags=["decisions"])


@router.post(
    "/decisions", response_model=DecisionPublic, responses=responses(401, 403, 404, 422),
    summary="Decide which offers to show a person",
)
async def create_decision(body: DecisionRequest, session: SessionDep, principal: ReadPrincipal) -> DecisionPublic:
    """Ranks the placement's eligible offers by propensity x value x weight, explores as the
    placement says (unless `explore` is false), keeps a control group, enforces consent for
    the channel and every cap, and stores the decision in the ledger. Each offer carries the
    probability the policy gave it. With `explain`, every excluded candidate and why."""
    return await service.decide(session, workspace_id=principal.workspace_id, request=body)


async def direct_decision(request: Request) -> Response | None:
    """`create_decision` without FastAPI's routing and dependency solving, which cost a decision
    about a seventh of the server's CPU: app.main serves POST /v1/decisions through
    core.middleware.DirectRoutes with it. It takes only a JSON body that is a valid
    DecisionRequest (and follows app.core.jsonrules) and declines anything else, which then
    reaches the route above with the same body: every error but those of the key and of the
    decision itself is the route's own answer."""
    if request.scope.get("query_string") or not _json_content(request.headers.get("content-type")):
        return None
    body = await request.body()
    try:
        jsonrules.check_text(body)
        data = DecisionRequest.model_validate_json(body)
    except (jsonrules.JsonRuleError, ValidationError):
        return None
    async with request_session(request) as session:
        principal = await authorize(request, session, Scope.read)
        decision = await service.decide(session, workspace_id=principal.workspace_id, request=data)
    return Response(decision.model_dump_json(), media_type="application/json")


def _json_content(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json"


DECISION_ROUTE = next(r for r in router.routes if getattr(r, "endpoint", None) is create_decision)


@router.post(
    "/decisions/import", response_model=ImportResult, responses=responses(400, 401, 403, 413, 415, 422),
    summary="Import logged historical decisions (NDJSON)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/x-ndjson": {
        "schema": {"type": "string"},
        "example": '{"identifier": {"type": "user_id", "value": "u-1"}, "offer": "mens-email", "probability": 0.333, '
                   '"decided_at": "2024-03-01T09:00:00Z", "features": {"recency": 3}, '
                   '"outcomes": [{"type": "click"}, {"type": "convert", "value": 29.9}]}\n'}}}},
)
async def import_decisions(request: Request, session: SessionDep, principal: WritePrincipal) -> ImportResult:
    """One logged decision per line, with the probability its policy gave the offer and the
    outcomes that followed (see docs/DECISIONS.md). Bad lines are reported and skipped."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        raise UnsupportedMediaType("Send NDJSON with Content-Type: application/x-ndjson.")
    return await service.import_decisions(session, workspace_id=principal.workspace_id, body=await request.body())


@router.get(
    "/decisions/{decision_id}", response_model=DecisionRecord, responses=responses(401, 403, 404, 422),
    summary="A decision from the ledger",
)
async def get_decision(decision_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> DecisionRecord:
    return await service.get_decision(session, workspace_id=principal.workspace_id, decision_id=decision_id)


@router.post(
    "/decisions/{decision_id}/feedback", status_code=status.HTTP_201_CREATED, response_model=FeedbackPublic,
    responses=responses(401, 403, 404, 422), summary="Report what the person did with an offer",
)
async def add_feedback(
    decision_id: uuid.UUID, body: FeedbackCreate, session: SessionDep, principal: WritePrincipal
) -> FeedbackPublic:
    """The same feedback also arrives from tracked events (`Offer Viewed`, `Offer Clicked`,
    `Offer Accepted`, `Offer Declined`, `Order Completed` with `decision_id` and `offer_id`)."""
    return await service.add_feedback(session, workspace_id=principal.workspace_id, decision_id=decision_id, data=body)


@router.get(
    "/profiles/{profile_id}/decisions", response_model=DecisionPage, responses=responses(400, 401, 403, 404, 422),
    summary="A person's decisions, newest first",
)
async def list_profile_decisions(
    profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 50,
) -> DecisionPage:
    items, next_cursor = await service.list_profile_decisions(
        session, workspace_id=principal.workspace_id, profile_id=profile_id, cursor=cursor, limit=limit
    )
    return DecisionPage(data=items, next_cursor=next_cursor)


@router.get(
    "/profiles/{profile_id}/recommendations", response_model=RecommendationList,
    responses=responses(401, 403, 404, 422), summary="Items to recommend to a person",
)
async def list_recommendations(
    profile_id: uuid.UUID,
    session: SessionDep,
    principal: ReadPrincipal,
    count: Annotated[int, Query(ge=1, le=100)] = 10,
    exclude_purchased: Annotated[bool, Query(description="Leave out items the person already bought.")] = True,
) -> RecommendationList:
    """From the item associations of the last training (co-purchases in `Order Completed`
    events' `products[].product_id`); the most recent purchases weigh most."""
    pid, ranked = await service.recommendations(
        session, workspace_id=principal.workspace_id, profile_id=profile_id, count=count,
        exclude_purchased=exclude_purchased,
    )
    return RecommendationList(profile_id=pid, items=[Recommendation(item_id=i, score=s) for i, s in ranked])


@router.post(
    "/models/train", status_code=status.HTTP_202_ACCEPTED, response_model=TrainJobPublic,
    responses={200: {"model": TrainJobPublic, "description": "With `wait=true`: the finished training."},
               **responses(401, 403, 422)},
    summary="Train the propensity models",
)
async def train_models(
    response: Response,
    session: SessionDep,
    principal: WritePrincipal,
    target: Annotated[Target, Query(description="The response to predict: click (or better), accept (or convert), convert.")] = "accept",
    wait: Annotated[bool, Query(description="Train now, inside this request, and answer 200 when done.")] = False,
) -> TrainJobPublic:
    """Queues a training for the worker (202; follow it at `/v1/models/jobs/{job_id}`). Decisions
    keep using the previous version until the new one is stored."""
    job = await service.request_training(session, workspace_id=principal.workspace_id, target=target, wait=wait)
    if wait:
        response.status_code = status.HTTP_200_OK
    return TrainJobPublic.model_validate(job)


@router.get(
    "/models/jobs/{job_id}", response_model=TrainJobPublic, responses=responses(401, 403, 404, 422),
    summary="A training job's status",
)
async def get_training_job(job_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> TrainJobPublic:
    return TrainJobPublic.model_validate(
        await service.get_training_job(session, workspace_id=principal.workspace_id, job_id=job_id)
    )


@router.get("/models", response_model=list[ModelPublic], responses=responses(401, 403), summary="Model versions and metrics")
async def list_models(session: SessionDep, principal: ReadPrincipal) -> list[ModelPublic]:
    """Newest first, with AUC, log loss and calibration on the time-based holdout."""
    return [
        ModelPublic(version=m.version, target=m.target, metrics=m.metrics, trained_at=m.trained_at, active=active)
        for m, active in await service.list_models(session, workspace_id=principal.workspace_id)
    ]
