from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from app.core.auth import ReadPrincipal, WritePrincipal
from app.core.db import SessionDep
from app.core.errors import responses
from app.core.pagination import Cursor, Limit
from app.segments import discovery, service
from app.segments.schemas import (
    ChangePage,
    DiscoverRequest,
    DiscoverResult,
    Explanation,
    HistoryPage,
    MemberPage,
    MembershipAt,
    PreviewRequest,
    PreviewResult,
    ProfileSegment,
    SegmentCreate,
    SegmentPublic,
    SegmentRefreshJob,
    SegmentUpdate,
    SegmentVersionPublic,
)

router = APIRouter(tags=["segments"])

Purpose = Annotated[str | None, Query(
    max_length=100, description="With `channel`: only members whose consent allows this purpose (default: the "
    "channel's own purpose, e.g. email -> email_marketing).")]
Channel = Annotated[str | None, Query(
    max_length=20, description="Only members the consent ledger allows to be reached on this channel "
    "(email, sms, push, direct_mail, web, ads); fails closed.")]
Fields = Annotated[str | None, Query(
    max_length=4000,
    description="Comma-separated: traits (all), traits.<name>, computed.<name>, identifier.<type>, created_at, "
                "updated_at. Default: traits.",
    examples=["traits.email,computed.order_count,identifier.email"],
)]


@router.get("/segments", response_model=list[SegmentPublic], responses=responses(401, 403), summary="List segments")
async def list_segments(session: SessionDep, principal: ReadPrincipal) -> list[SegmentPublic]:
    return [SegmentPublic.model_validate(s) for s in await service.list_segments(session, workspace_id=principal.workspace_id)]


@router.post(
    "/segments", status_code=status.HTTP_201_CREATED, response_model=SegmentPublic,
    responses=responses(401, 403, 409, 422), summary="Define a segment",
)
async def create_segment(body: SegmentCreate, session: SessionDep, principal: WritePrincipal) -> SegmentPublic:
    """422 names the JSON pointer of every bad node of the rule. Members appear with the first
    refresh (scheduled, or `POST /v1/segments/{id}/refresh`)."""
    segment = await service.create_segment(session, workspace_id=principal.workspace_id, data=body)
    return SegmentPublic.model_validate(segment)


@router.post(
    "/segments/preview", response_model=PreviewResult, responses=responses(401, 403, 422),
    summary="Count and sample the profiles a rule matches, without saving it",
)
async def preview_segment(body: PreviewRequest, session: SessionDep, principal: ReadPrincipal) -> PreviewResult:
    return await service.preview(session, workspace_id=principal.workspace_id, rule=body.rule, sample=body.sample)


@router.post(
    "/segments/discover", response_model=DiscoverResult, responses=responses(401, 403, 409, 422),
    summary="Propose segments by k-means clustering of customers",
)
async def discover_segments(body: DiscoverRequest, session: SessionDep, principal: WritePrincipal) -> DiscoverResult:
    """k-means (scikit-learn) over scaled RFM, CLV and behaviour features of the customers with
    orders; k by silhouette when not given; deterministic for a seed. With `save`, the chosen
    cluster becomes a segment of fixed members (`kind: fixed`)."""
    return await discovery.discover(session, workspace_id=principal.workspace_id, request=body)


@router.get(
    "/segments/jobs/{job_id}", response_model=SegmentRefreshJob, responses=responses(401, 403, 404, 422),
    summary="A segment refresh job's status",
)
async def get_segment_job(job_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> SegmentRefreshJob:
    job = await service.get_refresh_job(session, workspace_id=principal.workspace_id, job_id=job_id)
    return SegmentRefreshJob.model_validate(job)


@router.get("/segments/{segment_id}", response_model=SegmentPublic, responses=responses(401, 403, 404, 422),
            summary="Get a segment")
async def get_segment(segment_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> SegmentPublic:
    segment = await service.get_segment(session, workspace_id=principal.workspace_id, segment_id=segment_id)
    return SegmentPublic.model_validate(segment)


@router.patch("/segments/{segment_id}", response_model=SegmentPublic, responses=responses(401, 403, 404, 409, 422),
              summary="Change a segment")
async def update_segment(
    segment_id: uuid.UUID, body: SegmentUpdate, session: SessionDep, principal: WritePrincipal
) -> SegmentPublic:
    """A different rule makes a new version; the old versions stay readable. A rule that would
    refer back to this segment (directly or through others) is a 422."""
    segment = await service.update_segment(session, workspace_id=principal.workspace_id, segment_id=segment_id, changes=body)
    return SegmentPublic.model_validate(segment)


@router.delete("/segments/{segment_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(401, 403, 404, 409, 422), summary="Delete a segment")
async def delete_segment(segment_id: uuid.UUID, session: SessionDep, principal: WritePrincipal) -> Response:
    """409 while another segment's rule refers to it."""
    await service.delete_segment(session, workspace_id=principal.workspace_id, segment_id=segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/segments/{segment_id}/versions", response_model=list[SegmentVersionPublic],
            responses=responses(401, 403, 404, 422), summary="A segment's rule versions")
async def list_segment_versions(segment_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> list[SegmentVersionPublic]:
    versions = await service.list_versions(session, workspace_id=principal.workspace_id, segment_id=segment_id)
    return [SegmentVersionPublic.model_validate(v) for v in versions]


@router.get("/segments/{segment_id}/versions/{version}", response_model=SegmentVersionPublic,
            responses=responses(401, 403, 404, 422), summary="One version of a segment's rule")
async def get_segment_version(
    segment_id: uuid.UUID, version: Annotated[int, Path(ge=1, le=2_147_483_647, description="The version number (1, 2, ...).")],
    session: SessionDep, principal: ReadPrincipal,
) -> SegmentVersionPublic:
    found = await service.get_version(session, workspace_id=principal.workspace_id, segment_id=segment_id, version=version)
    return SegmentVersionPublic.model_validate(found)


@router.post(
    "/segments/{segment_id}/refresh", status_code=status.HTTP_202_ACCEPTED, response_model=SegmentRefreshJob,
    responses={200: {"model": SegmentRefreshJob, "description": "With `wait=true`: the finished refresh."},
               **responses(401, 403, 404, 422)},
    summary="Refresh a segment's members",
)
async def refresh_segment(
    segment_id: uuid.UUID,
    response: Response,
    session: SessionDep,
    principal: WritePrincipal,
    wait: Annotated[bool, Query(description="Refresh now, inside this request, and answer 200 when done.")] = False,
    full: Annotated[bool, Query(description="Evaluate every profile, not only those changed since the last refresh.")] = False,
) -> SegmentRefreshJob:
    """Computes the members in SQL and appends who entered and who exited to the change stream.
    Queued for the worker (202, follow `/v1/segments/jobs/{id}`) unless `wait=true`."""
    job = await service.request_refresh(session, workspace_id=principal.workspace_id, segment_id=segment_id,
                                        wait=wait, full=full)
    if wait:
        response.status_code = status.HTTP_200_OK
    return SegmentRefreshJob.model_validate(job)


@router.get("/segments/{segment_id}/members", response_model=MemberPage, responses=responses(400, 401, 403, 404, 422),
            summary="A segment's members (keyset pages)")
async def list_segment_members(
    segment_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal, fields: Fields = None,
    cursor: Cursor = None, limit: Limit = 100, purpose: Purpose = None, channel: Channel = None,
) -> MemberPage:
    """As of the last refresh, in profile id order. With `channel` (and optionally `purpose`),
    only the members the consent ledger allows for that use, and how many were left out."""
    allowed = await service.consent_filter(session, workspace_id=principal.workspace_id, segment_id=segment_id,
                                           purpose=purpose, channel=channel)
    items, next_cursor = await service.list_members(
        session, workspace_id=principal.workspace_id, segment_id=segment_id, fields=fields, cursor=cursor, limit=limit,
        conditions=allowed.conditions if allowed else (),
    )
    return MemberPage(data=items, next_cursor=next_cursor, excluded=allowed.excluded if allowed else None)


@router.get("/segments/{segment_id}/members/{profile_id}", response_model=MembershipAt,
            responses=responses(401, 403, 404, 422), summary="Was a person a member at a time")
async def get_segment_membership(
    segment_id: uuid.UUID, profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal,
    at: Annotated[datetime | None, Query(description="ISO 8601 time (default now).")] = None,
) -> MembershipAt:
    """From the change stream: the person's last change at or before `at`."""
    return await service.membership_at(session, workspace_id=principal.workspace_id, segment_id=segment_id,
                                       profile_id=profile_id, at=at)


@router.get("/segments/{segment_id}/changes", response_model=ChangePage, responses=responses(400, 401, 403, 404, 422),
            summary="Who entered and who exited, in order")
async def list_segment_changes(
    segment_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 1000,
) -> ChangePage:
    """Follow `next_cursor` (always present, also on an empty page) and every change arrives
    exactly once, in the order the refreshes made them."""
    items, next_cursor, has_more = await service.list_changes(
        session, workspace_id=principal.workspace_id, segment_id=segment_id, cursor=cursor, limit=limit,
    )
    return ChangePage(data=items, next_cursor=next_cursor, has_more=has_more)


@router.get("/segments/{segment_id}/history", response_model=HistoryPage, responses=responses(400, 401, 403, 404, 422),
            summary="Member counts over time")
async def get_segment_history(
    segment_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal, cursor: Cursor = None, limit: Limit = 100,
) -> HistoryPage:
    """One entry per refresh, oldest first."""
    items, next_cursor = await service.history(session, workspace_id=principal.workspace_id, segment_id=segment_id,
                                               cursor=cursor, limit=limit)
    return HistoryPage(data=items, next_cursor=next_cursor)


@router.get("/segments/{segment_id}/explain/{profile_id}", response_model=Explanation,
            responses=responses(401, 403, 404, 422), summary="Why a person is (not) in a segment")
async def explain_segment_membership(
    segment_id: uuid.UUID, profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal
) -> Explanation:
    """The rule tree with each node's truth value for this person now and the values it saw
    ("order_count": 2 with `needed` ">= 3")."""
    return await service.explain(session, workspace_id=principal.workspace_id, segment_id=segment_id,
                                 profile_id=profile_id)


@router.get(
    "/segments/{segment_id}/export", responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}},
                                                      "description": "Every member, streamed."},
                                                **responses(400, 401, 403, 404, 422)},
    response_class=StreamingResponse, summary="Export a segment's members (streamed)",
)
async def export_segment(
    segment_id: uuid.UUID, request: Request, session: SessionDep, principal: ReadPrincipal,
    format: Annotated[Literal["csv", "ndjson"], Query(description="csv (a header row) or ndjson.")] = "csv",
    fields: Fields = None, purpose: Purpose = None, channel: Channel = None,
) -> StreamingResponse:
    """The whole audience as of the last refresh, streamed in keyset chunks from one snapshot:
    the server's memory stays flat however many members there are. With `channel` (and
    optionally `purpose`), only members the consent ledger allows for that use; the
    `X-Excluded-Without-Consent` header says how many were left out."""
    workspace_id = principal.workspace_id
    segment = await service.get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    service.export_header(fields, workspace_id=workspace_id)  # a bad field is a 422 before streaming starts
    allowed = await service.consent_filter(session, workspace_id=workspace_id, segment_id=segment_id,
                                           purpose=purpose, channel=channel)
    db = request.app.state.db

    async def body() -> AsyncIterator[bytes]:
        async for data, _ in service.export_chunks(db, workspace_id=workspace_id, segment_id=segment_id, fmt=format,
                                                   fields=fields, conditions=allowed.conditions if allowed else ()):
            yield data

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    filename = f"segment-{segment.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if allowed is not None:
        headers["X-Excluded-Without-Consent"] = str(allowed.excluded)
    return StreamingResponse(body(), media_type=media, headers=headers)


profiles_router = APIRouter()  # tagged `segments` by the router it joins


@profiles_router.get("/profiles/{profile_id}/segments", response_model=list[ProfileSegment],
                     responses=responses(401, 403, 404, 422), summary="The segments a person is in now")
async def list_profile_segments(profile_id: uuid.UUID, session: SessionDep, principal: ReadPrincipal) -> list[ProfileSegment]:
    """As of each segment's last refresh; a merged-away id answers for the surviving profile."""
    return await service.profile_segments(session, workspace_id=principal.workspace_id, profile_id=profile_id)


router.include_router(profiles_router)
