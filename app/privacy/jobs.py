"""Background work of privacy requests, and the event retention schedule."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.jobs.registry import JobContext, JobRegistry, Schedule, Task
from app.privacy import service

log = logging.getLogger("clientele.privacy")

SCHEDULE_RETENTION = "privacy.retention"


async def run_request(ctx: JobContext, payload: dict[str, Any]) -> Any:
    return await service.process_request(
        ctx.db, workspace_id=uuid.UUID(str(payload["workspace_id"])), request_id=uuid.UUID(str(payload["request_id"]))
    )


async def run_retention(ctx: JobContext) -> None:
    done = await service.apply_all_retention(ctx.db, batch_size=ctx.settings.privacy_retention_batch_size)
    log.info("event retention applied", extra={"deleted_by_workspace": done})


def register(jobs: JobRegistry) -> None:
    jobs.add_task(Task(service.TASK_PROCESS, run_request))
    jobs.add_schedule(Schedule(SCHEDULE_RETENTION, jobs.settings.privacy_retention_cron, run_retention))
