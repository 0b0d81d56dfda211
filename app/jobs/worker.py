"""The worker: pgqueuer's queue manager, plus its cron scheduler when schedules are on.

It runs as `clientele worker`, or inside `clientele serve` (the lifespan starts it when
CLIENTELE_RUN_WORKER is true, the embedded default). Any number of workers can run against
one database: pgqueuer hands each job to one of them (FOR UPDATE SKIP LOCKED), and a schedule
fires once per tick across all of them (its row is claimed the same way).

pgqueuer gets one dedicated asyncpg connection (it LISTENs on it); the jobs themselves use
the application's pool through `Database`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import asyncpg
from pgqueuer import Job as QueueJob
from pgqueuer import PgQueuer
from pgqueuer.models import Schedule as QueueSchedule

from app.core.config import Settings
from app.core.db import Database, standalone_session
from app.jobs import service as job_service
from app.jobs.queue import decode
from app.jobs.registry import JobContext, JobRegistry, Schedule, Task

log = logging.getLogger("clientele.worker")

# A job whose worker stopped heart-beating for this long is handed to another worker.
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
# Upper bound between two looks at the queue when a NOTIFY was missed.
DEQUEUE_TIMEOUT = timedelta(seconds=5)


async def prune_history(ctx: JobContext) -> None:
    async with standalone_session(ctx.db) as session:
        log.info("job history pruned", extra=await job_service.prune(session))


def domain_jobs(settings: Settings) -> tuple[list[Task], list[Schedule]]:
    """Every domain's tasks and schedules (the worker's counterpart of app/api.py): each
    domain's jobs module registers its own; add a domain with one line below."""
    from app.decisions import jobs as decision_jobs
    from app.dedup import jobs as dedup_jobs
    from app.identity import jobs as identity_jobs
    from app.privacy import jobs as privacy_jobs
    from app.segments import jobs as segment_jobs
    from app.traits import jobs as trait_jobs

    registry = JobRegistry(settings)
    registry.add_schedule(Schedule("jobs.prune", "17 3 * * *", prune_history))
    for module in (
        identity_jobs,
        trait_jobs,
        segment_jobs,
        privacy_jobs,
        decision_jobs,
        dedup_jobs,
    ):
        module.register(registry)
    return registry.tasks, registry.schedules


def asyncpg_dsn(db: Database) -> str:
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Worker:
    """Start with `start()`, stop with `stop()` (waits for running jobs, then cancels)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        tasks: Sequence[Task] | None = None,
        schedules: Sequence[Schedule] | None = None,
    ) -> None:
        if tasks is None or schedules is None:
            default_tasks, default_schedules = domain_jobs(settings)
            tasks = default_tasks if tasks is None else tasks
            schedules = default_schedules if schedules is None else schedules
        self.db = db
        self.settings = settings
        self.context = JobContext(db=db, settings=settings)
        self.tasks = list(tasks)
        self.schedules = list(schedules)
        self._connection: asyncpg.Connection | None = None
        self._pgq: PgQueuer | None = None
        self._runner: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("worker already started")
        self._connection = await asyncpg.connect(
            asyncpg_dsn(self.db), server_settings={"application_name": "clientele-worker"}
        )
        pgq = PgQueuer.from_asyncpg_connection(self._connection)
        for task in self.tasks:
            pgq.entrypoint(task.name, concurrency_limit=task.concurrency_limit)(self._job_handler(task))
        for schedule in self.schedules:
            pgq.schedule(schedule.name, schedule.cron)(self._schedule_handler(schedule))
        self._pgq = pgq
        self._runner = asyncio.create_task(self._run(pgq), name="clientele-worker")
        self._runner.add_done_callback(self._report_exit)
        log.info("worker started", extra={"tasks": [t.name for t in self.tasks],
                                          "schedules": [f"{s.name} {s.cron}" for s in self.schedules]})

    async def _run(self, pgq: PgQueuer) -> None:
        concurrency = self.settings.worker_concurrency
        batch = max(1, concurrency // 2)  # pgqueuer wants max_concurrent_tasks >= 2 * batch_size
        runs = [
            pgq.qm.run(
                dequeue_timeout=DEQUEUE_TIMEOUT,
                batch_size=batch,
                max_concurrent_tasks=max(concurrency, 2 * batch),
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
            )
        ]
        # The scheduler polls once a second even with nothing to schedule; skip it then.
        if self.schedules:
            runs.append(pgq.sm.run())
        await asyncio.gather(*runs)

    def _report_exit(self, runner: asyncio.Task[None]) -> None:
        if not runner.cancelled() and runner.exception() is not None:
            log.error("worker stopped unexpectedly", exc_info=runner.exception())

    def _job_handler(self, task: Task) -> Callable[[QueueJob], Awaitable[None]]:
        async def handle(job: QueueJob) -> None:
            await task.run(self.context, decode(job.payload))

        handle.__name__ = f"run_{task.name.replace('.', '_')}"
        return handle

    def _schedule_handler(self, schedule: Schedule) -> Callable[[QueueSchedule], Awaitable[None]]:
        async def handle(_: QueueSchedule) -> None:
            await schedule.run(self.context)

        handle.__name__ = f"tick_{schedule.name.replace('.', '_')}"
        return handle

    async def wait(self) -> None:
        """Until the worker stops (for `clientele worker`)."""
        if self._runner is not None:
            await asyncio.shield(self._runner)

    async def stop(self, timeout: float = 30) -> None:
        """Ask pgqueuer to stop taking jobs, give running ones `timeout` seconds, then cancel."""
        runner, self._runner = self._runner, None
        if self._pgq is not None:
            self._pgq.shutdown.set()  # shared by the queue manager and the scheduler
        if runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(runner), timeout)
            except TimeoutError:
                log.warning("worker did not stop in time; cancelling running jobs")
                runner.cancel()
            except Exception:  # already reported by _report_exit
                pass
            if not runner.done():
                try:
                    await runner
                except (asyncio.CancelledError, Exception):
                    pass
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._pgq = None
        log.info("worker stopped")
