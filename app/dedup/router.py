from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from app.core import idempotency
from app.core.auth import ReadPrincipal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Limit
from app.dedup import service
from app.dedup.schemas import (
    CandidateStatus,
    DedupCandidatePage,
    DedupCandidatePublic,
    DedupRunCreate,
    DedupRunPage,
    DedupRunPublic,
)

router = APIRouter(prefix="/dedup", tags=["dedup"])


@router.post(
    "/runs", response_model=DedupRunPublic, status_code=status.HTTP_201_CREATED,
    responses={202: {"model": DedupRunPublic,
                     "description": "The workspace has more than 100,000 matchable profiles: the run is `queued` "
                                    "for the background worker; poll `GET /v1/dedup/runs/{id}`."},
               **responses(401, 403, 404, 409, 422)},
    summary="Find (and merge) likely duplicate profiles",
)
async def create_dedup_run(
    request: Request, response: Response, session: SessionDep, principal: WritePrincipal,
    body: DedupRunCreate | None = None, idempotency_key: idempotency.IdempotencyKey = None,
) -> DedupRunPublic:
    """Scores pairs of the workspace's profiles that share no identifier (names, postcode,
    address, birthdate, e-mail and phone similarity; blocking, not all pairs), records those at
    or above `min_score` for review and merges those at or above `threshold` (ledger rule
    `dedup`, undone by split). Pairs rejected on review are not proposed again. Up to 100,000
    matchable profiles the run happens inside the request (201, `completed`); a larger
    workspace is queued for the background worker (202, `queued`). See docs/DEDUP.md."""
    body = body or DedupRunCreate()

    async def run() -> DedupRunPublic:
        return await service.request_run(
            session, workspace_id=principal.workspace_id, threshold=body.threshold, min_score=body.min_score,
            max_block_size=body.max_block_size, dry_run=body.dry_run,
        )

    result = await idempotency.once(session, request, workspace_id=principal.workspace_id, key=idempotency_key,
                                    body=body.model_dump(mode="json"), model=DedupRunPublic, run=run)
    if result.status == "queued":
        response.status_code = status.HTTP_202_ACCEPTED
    return result


@router.get("/runs", response_model=DedupRunPage, responses=responses(400, 401, 403, 422), summary="List dedup runs")
async def list_dedup_runs(
    session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 50
) -> DedupRunPage:
    """Newest first."""
    runs, next_cursor = await service.list_runs(session, workspace_id=principal.workspace_id, cursor=cursor, limit=limit)
    return DedupRunPage(data=runs, next_cursor=next_cursor)


@router.get(
    "/runs/{run_id}", response_model=DedupRunPublic, responses=responses(401, 403, 404, 422), summary="Get a dedup run"
)
async def get_dedup_run(run_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> DedupRunPublic:
    return await service.get_run(session, workspace_id=principal.workspace_id, run_id=run_id)


@router.get(
    "/candidates", response_model=DedupCandidatePage, responses=responses(400, 401, 403, 404, 422),
    summary="Review queue: likely duplicate pairs",
)
async def list_dedup_candidates(
    session: SessionDep,
    principal: ReadPrincipal,
    run_id: Annotated[uuid.UUID | None, Query(description="Only pairs last proposed by this run.")] = None,
    status: Annotated[CandidateStatus | None, Query(description="pending, merged or rejected.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DedupCandidatePage:
    """Highest score first, with the evidence of each pair."""
    items, next_cursor = await service.list_candidates(
        session, workspace_id=principal.workspace_id, run_id=run_id, status=status, cursor=cursor, limit=limit
    )
    return DedupCandidatePage(data=items, next_cursor=next_cursor)


@router.post(
    "/candidates/{candidate_id}/merge", response_model=DedupCandidatePublic, responses=responses(401, 403, 404, 409, 422),
    summary="Merge a candidate pair",
)
async def merge_dedup_candidate(
    candidate_id: uuid.UUID, request: Request, session: SessionDep, principal: WritePrincipal,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> DedupCandidatePublic:
    """Merges the two profiles (ledger rule `dedup`; split undoes it). 409 when identity limits
    forbid it (e.g. two different user_ids; the pair stays pending) or the pair was already
    decided."""
    return await idempotency.once(
        session, request, workspace_id=principal.workspace_id, key=idempotency_key, body=None,
        model=DedupCandidatePublic,
        run=lambda: service.merge_candidate(session, workspace_id=principal.workspace_id, candidate_id=candidate_id),
    )


@router.post(
    "/candidates/{candidate_id}/reject", response_model=DedupCandidatePublic, responses=responses(401, 403, 404, 409, 422),
    summary="Reject a candidate pair",
)
async def reject_dedup_candidate(
    candidate_id: uuid.UUID, request: Request, session: SessionDep, principal: WritePrincipal,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> DedupCandidatePublic:
    """Records that the two profiles are different people; later runs do not propose the pair again."""
    return await idempotency.once(
        session, request, workspace_id=principal.workspace_id, key=idempotency_key, body=None,
        model=DedupCandidatePublic,
        run=lambda: service.reject_candidate(session, workspace_id=principal.workspace_id, candidate_id=candidate_id),
    )
