"""Background work of identity: the daily prune of the identity change log."""

from __future__ import annotations

import logging

from app.core.db import standalone_session
from app.identity import cache
from app.jobs.registry import JobContext, JobRegistry, Schedule

log = logging.getLogger("clientele.identity")

SCHEDULE_PRUNE_LOG = "identity.prune_log"


async def prune_log(ctx: JobContext) -> None:
    async with standalone_session(ctx.db) as session:
        log.info("identity change log pruned", extra={"identity_changes": await cache.prune_log(session)})


def register(jobs: JobRegistry) -> None:
    jobs.add_schedule(Schedule(SCHEDULE_PRUNE_LOG, "27 3 * * *", prune_log))
