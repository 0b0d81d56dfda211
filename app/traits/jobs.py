"""Background work of computed traits: full refreshes, incremental refreshes, the hourly schedule."""

from __future__ import annotations

import uuid
from typing import Any

from app.core.db import Database, standalone_session
from app.jobs import queue
from app.jobs import service as job_service
from app.jobs.registry import JobContext, JobRegistry, Schedule, Task
from app.traits import service
from app.workspaces import service as workspace_service

SCHEDULE_REFRESH_ALL = "traits.refresh_all"


async def run_refresh(ctx: JobContext, payload: dict[str, Any]) -> Any:
    """A full refresh of one workspace; tracked when it came from the API or the CLI."""
    workspace_id = uuid.UUID(str(payload["workspace_id"]))
    return await job_service.execute(
        ctx.db, payload=payload,
        work=lambda session: service.refresh(
            session, workspace_id=workspace_id, clv_refit_after=service.clv_refit_after(ctx.settings)
        ),
        retry=service.lost_race,
    )


async def run_incremental(ctx: JobContext, payload: dict[str, Any]) -> Any:
    workspace_id = uuid.UUID(str(payload["workspace_id"]))
    return await job_service.run_committed(
        ctx.db,
        lambda session: service.run_incremental_refresh(
            session, workspace_id=workspace_id, up_to_bucket=int(payload["bucket"])
        ),
        retry=service.lost_race,
    )


async def refresh_all(db: Database) -> int:
    """Queue a full refresh of every workspace (one that is still queued is not queued twice)."""
    async with standalone_session(db) as session:
        workspaces = await workspace_service.list_workspaces(session)
        ids = await queue.enqueue_many(
            session,
            task=service.TASK_REFRESH,
            payloads=[{"workspace_id": str(w.id)} for w in workspaces],
            dedupe_keys=[f"{SCHEDULE_REFRESH_ALL}:{w.id}" for w in workspaces],
        )
    return sum(1 for i in ids if i is not None)


def register(jobs: JobRegistry) -> None:
    jobs.add_task(Task(service.TASK_REFRESH, run_refresh))
    jobs.add_task(Task(service.TASK_INCREMENTAL, run_incremental))
    jobs.add_schedule(Schedule(SCHEDULE_REFRESH_ALL, jobs.settings.traits_refresh_cron, lambda ctx: refresh_all(ctx.db)))
