"""Background work of segments: one segment's refresh, every segment of a workspace, the schedule."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from app.core.db import Database, standalone_session
from app.jobs import queue
from app.jobs import service as job_service
from app.jobs.registry import JobContext, JobRegistry, Schedule, Task
from app.segments import service
from app.traits import service as trait_service
from app.workspaces import service as workspace_service

SCHEDULE_REFRESH_ALL = "segments.refresh_all"


async def run_refresh(ctx: JobContext, payload: dict[str, Any]) -> Any:
    """One segment (queued from the API)."""
    workspace_id = uuid.UUID(str(payload["workspace_id"]))
    segment_id = uuid.UUID(str(payload["segment_id"]))
    return await job_service.execute(
        ctx.db, payload=payload,
        work=lambda session: service.refresh_segment(
            session, workspace_id=workspace_id, segment_id=segment_id, mode=str(payload.get("mode", "auto"))
        ),
        retry=trait_service.lost_race,
    )


async def refresh_workspace(db: Database, workspace_id: uuid.UUID, *, concurrency: int = 2) -> dict[str, Any]:
    """Every segment of a workspace, each in its own transaction (a refresh holds only its own
    segment's lock): incremental where it can be, full where time moves the answer.

    Up to `concurrency` segments are refreshed at once, each on its own connection (one
    statement uses one core; PostgreSQL does not parallelise a statement that writes). Their
    order does not matter: a rule naming another segment compiles that segment's rule inline,
    and a fixed segment's members change only when it is saved."""
    async with standalone_session(db) as session:
        segments = await service.list_segments(session, workspace_id=workspace_id)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def refresh(segment_id: uuid.UUID) -> Any:
        async with gate:
            return await job_service.run_committed(
                db,
                lambda session: service.refresh_segment(session, workspace_id=workspace_id, segment_id=segment_id),
                retry=trait_service.lost_race,
            )

    results = await asyncio.gather(*(refresh(segment.id) for segment in segments))
    return {"segments": len(results)}


async def run_refresh_workspace(ctx: JobContext, payload: dict[str, Any]) -> Any:
    return await refresh_workspace(ctx.db, uuid.UUID(str(payload["workspace_id"])),
                                   concurrency=ctx.settings.segments_refresh_concurrency)


async def refresh_all(db: Database) -> int:
    """Queue a refresh of every workspace's segments (one still queued is not queued twice)."""
    async with standalone_session(db) as session:
        workspaces = await workspace_service.list_workspaces(session)
        ids = await queue.enqueue_many(
            session,
            task=service.TASK_REFRESH_WORKSPACE,
            payloads=[{"workspace_id": str(w.id)} for w in workspaces],
            dedupe_keys=[f"{SCHEDULE_REFRESH_ALL}:{w.id}" for w in workspaces],
        )
    return sum(1 for i in ids if i is not None)


def register(jobs: JobRegistry) -> None:
    jobs.add_task(Task(service.TASK_REFRESH, run_refresh))
    jobs.add_task(Task(service.TASK_REFRESH_WORKSPACE, run_refresh_workspace))
    jobs.add_schedule(
        Schedule(SCHEDULE_REFRESH_ALL, jobs.settings.segments_refresh_cron, lambda ctx: refresh_all(ctx.db))
    )
