"""Background work of dedup: a run too large to do inside its request (see service.request_run)."""

from __future__ import annotations

import uuid
from typing import Any

from app.core.db import standalone_session
from app.dedup import service
from app.jobs import service as job_service
from app.jobs.registry import JobContext, JobRegistry, Task


async def run_dedup(ctx: JobContext, payload: dict[str, Any]) -> Any:
    """One queued run: marked ``running`` (committed, so a poller sees it), then the whole run
    in one transaction, as a synchronous run does; ``failed`` if it raises (the job keeps why)."""
    workspace_id = uuid.UUID(str(payload["workspace_id"]))
    run_id = uuid.UUID(str(payload["job_id"]))  # the run has its job's id
    async with standalone_session(ctx.db) as session:
        if not await service.start_queued_run(session, workspace_id=workspace_id, run_id=run_id):
            return None  # finished, failed or deleted meanwhile: the first outcome stands
    try:
        return await job_service.execute(
            ctx.db, payload=payload,
            work=lambda session: service.run_queued(session, workspace_id=workspace_id, run_id=run_id),
        )
    except Exception:
        async with standalone_session(ctx.db) as session:
            await service.fail_run(session, workspace_id=workspace_id, run_id=run_id)
        raise


def register(jobs: JobRegistry) -> None:
    # One run at a time across workers: a run of 1M profiles holds a few GB while it matches.
    jobs.add_task(Task(service.TASK_RUN, run_dedup, concurrency_limit=1))
