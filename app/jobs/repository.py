from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job


async def insert_job(session: AsyncSession, job: Job) -> Job:
    session.add(job)
    await session.flush()
    await session.refresh(job)
    return job


async def get_job(session: AsyncSession, workspace_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, (workspace_id, job_id))


async def find_queued(session: AsyncSession, workspace_id: uuid.UUID, task: str) -> Job | None:
    stmt = (
        sa.select(Job)
        .where(Job.workspace_id == workspace_id, Job.task == task, Job.status == "queued")
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalars().first()


async def update_job(
    session: AsyncSession, workspace_id: uuid.UUID, job_id: uuid.UUID, *, only_if: tuple[str, ...], **values: Any
) -> Job | None:
    """Move a job on if it is in one of `only_if`; None when it is not (or no longer exists)."""
    stmt = (
        sa.update(Job)
        .where(Job.workspace_id == workspace_id, Job.id == job_id, Job.status.in_(only_if))
        .values(**values)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().first()


async def delete_finished_before(session: AsyncSession, older_than: timedelta) -> int:
    stmt = sa.delete(Job).where(
        Job.status.in_(("done", "failed")), Job.finished_at < sa.func.now() - older_than
    )
    return (await session.execute(stmt)).rowcount or 0
