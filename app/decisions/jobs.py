"""Background work of decisions: training the propensity models and the item associations."""

from __future__ import annotations

import uuid
from typing import Any

from app.decisions import service
from app.jobs import service as job_service
from app.jobs.registry import JobContext, JobRegistry, Task


async def run_train(ctx: JobContext, payload: dict[str, Any]) -> Any:
    workspace_id = uuid.UUID(str(payload["workspace_id"]))
    return await job_service.execute(
        ctx.db, payload=payload,
        work=lambda session: service.train(session, workspace_id=workspace_id, target=str(payload.get("target", "accept"))),
    )


def register(jobs: JobRegistry) -> None:
    # One training per workspace at a time is enough; decisions never wait for it.
    jobs.add_task(Task(service.TASK_TRAIN, run_train, concurrency_limit=1))
