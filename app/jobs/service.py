"""Tracked jobs: queue them, run them inline, or run them in the worker, keeping their status.

Status moves queued -> running -> done | failed. A job's work and its `done` mark commit in one
transaction, so `done` always means the work is in the database; a failure rolls the work
back and records `failed` in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database, standalone_session
from app.core.errors import AppError, NotFound
from app.core.ids import uuid7
from app.jobs import queue, repository
from app.jobs.models import Job

log = logging.getLogger("clientele.jobs")

Work = Callable[[AsyncSession], Awaitable[dict[str, Any]]]
Retry = Callable[[Exception], bool]
_NOW = sa.func.clock_timestamp()  # wall time of the transition, not of its transaction's start
ATTEMPTS = 3  # in all, for work that may lose a race with concurrent writes (see run_committed)


async def run_committed(db: Database, work: Work, *, retry: Retry | None = None) -> dict[str, Any]:
    """`work` in a transaction of its own, committed when it returns. When it fails with an
    error `retry` accepts (one that rolled the whole transaction back, such as a deadlock), it
    runs again in a fresh transaction, up to ATTEMPTS times in all."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with standalone_session(db) as session:
                return await work(session)
        except Exception as exc:
            if retry is None or attempt == ATTEMPTS or not retry(exc):
                raise
            log.warning("job transaction retried", extra={"attempt": attempt, "error": type(exc).__name__})
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def submit(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    task: str,
    params: Mapping[str, Any] | None = None,
    coalesce: bool = True,
) -> Job:
    """Queue `task` for the worker and track it. With `coalesce`, a job of the same task that
    is still waiting in this workspace is returned instead of queueing another one."""
    if coalesce and (waiting := await repository.find_queued(session, workspace_id, task)) is not None:
        if waiting.queue_job_id is not None and await queue.is_pending(session, queue_job_id=waiting.queue_job_id):
            return waiting
        # Its queue entry is gone (the queue was purged by hand): say so, and queue afresh.
        await repository.update_job(
            session, workspace_id, waiting.id, only_if=("queued",),
            status="failed", error="The job was removed from the queue before it ran.", finished_at=_NOW,
        )
    job_id = uuid7()
    payload = {**(params or {}), "workspace_id": str(workspace_id), "job_id": str(job_id)}
    queue_job_id = await queue.enqueue(session, task=task, payload=payload)
    return await repository.insert_job(
        session,
        Job(workspace_id=workspace_id, id=job_id, task=task, status="queued", params=dict(params or {}),
            queue_job_id=queue_job_id),
    )


async def run_inline(
    session: AsyncSession, *, workspace_id: uuid.UUID, task: str, params: Mapping[str, Any] | None, work: Work
) -> Job:
    """Run the work now, in the caller's transaction, and record it as a finished job."""
    job = await repository.insert_job(
        session,
        Job(workspace_id=workspace_id, task=task, status="running", params=dict(params or {}), attempts=1,
            started_at=datetime.now(UTC)),
    )
    result = await work(session)
    done = await repository.update_job(
        session, workspace_id, job.id, only_if=("running",), status="done", result=result, finished_at=_NOW
    )
    assert done is not None  # it is ours, in this transaction
    return done


async def execute(
    db: Database, *, payload: Mapping[str, Any], work: Work, retry: Retry | None = None
) -> dict[str, Any] | None:
    """Run a queued job's work in the worker. Untracked jobs (no `job_id`) just run. `retry`:
    which failures to run again (see run_committed) before the job counts as failed.

    Returns the work's result, or None when a tracked job was already finished (pgqueuer
    re-delivers a job whose worker died; the first run's outcome stands) or no longer exists.
    """
    workspace_id = uuid.UUID(str(payload["workspace_id"]))
    job_id = uuid.UUID(str(payload["job_id"])) if payload.get("job_id") else None
    if job_id is not None:
        async with standalone_session(db) as session:
            started = await repository.update_job(
                session, workspace_id, job_id, only_if=("queued", "running"),
                status="running", started_at=_NOW, attempts=Job.attempts + 1,
            )
        if started is None:
            log.info("job skipped: finished or deleted", extra={"job_id": str(job_id)})
            return None

    async def work_and_mark_done(session: AsyncSession) -> dict[str, Any]:
        result = await work(session)
        if job_id is not None:
            await repository.update_job(
                session, workspace_id, job_id, only_if=("running",),
                status="done", result=result, error=None, finished_at=_NOW,
            )
        return result

    try:
        return await run_committed(db, work_and_mark_done, retry=retry)
    except Exception as exc:
        if job_id is not None:
            async with standalone_session(db) as session:
                await repository.update_job(
                    session, workspace_id, job_id, only_if=("running",),
                    status="failed", error=_describe(exc), finished_at=_NOW,
                )
        raise


def _describe(exc: Exception) -> str:
    # Domain errors are written for users; anything else may carry internals (SQL, paths),
    # which belong in the worker's log (pgqueuer logs the traceback), not in an API response.
    if isinstance(exc, AppError):
        return exc.detail
    return f"The job failed unexpectedly ({type(exc).__name__}); the worker log has the details."


async def get_job(session: AsyncSession, *, workspace_id: uuid.UUID, job_id: uuid.UUID, task_prefix: str = "") -> Job:
    """A job of this workspace (and, with `task_prefix`, of that domain), or 404."""
    job = await repository.get_job(session, workspace_id, job_id)
    if job is None or not job.task.startswith(task_prefix):
        raise NotFound(f"No job with id {job_id} in this workspace.")
    return job


# Finished jobs stay visible this long; pgqueuer's per-transition log is only kept for a week.
JOB_RETENTION = timedelta(days=30)
QUEUE_LOG_RETENTION = timedelta(days=7)


async def prune(session: AsyncSession) -> dict[str, int]:
    """Forget old finished jobs and old queue history (a daily schedule)."""
    return {
        "jobs": await repository.delete_finished_before(session, JOB_RETENTION),
        "queue_log": await queue.prune_history(session, older_than=QUEUE_LOG_RETENTION),
    }
