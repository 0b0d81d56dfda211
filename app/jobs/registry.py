"""What a domain hands the job worker: `Task`s (queue entrypoints), cron `Schedule`s, and the
`JobContext` they run with.

This module knows no domain and no worker, so a domain's jobs module imports it without
importing the worker (which imports every domain's jobs module through `domain_jobs`). A
domain's jobs module exposes `register(jobs: JobRegistry)`; `app.jobs.worker.domain_jobs` is
the one place that lists those modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.config import Settings
from app.core.db import Database


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job gets besides its payload."""

    db: Database
    settings: Settings


@dataclass(frozen=True, slots=True)
class Task:
    """A queue entrypoint: `run(ctx, payload)` does the work of one job."""

    name: str
    run: Callable[[JobContext, dict[str, Any]], Awaitable[Any]]
    concurrency_limit: int = 0  # across all workers; 0 = unlimited


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule (UTC): `run(ctx)` fires once per tick across all workers."""

    name: str
    cron: str
    run: Callable[[JobContext], Awaitable[Any]]


@dataclass(slots=True)
class JobRegistry:
    """The tasks and schedules every domain registered, for one worker's settings."""

    settings: Settings
    tasks: list[Task] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)

    def add_task(self, task: Task) -> None:
        if any(t.name == task.name for t in self.tasks):
            raise ValueError(f"Two tasks are named {task.name!r}; a queue entrypoint needs one handler.")
        self.tasks.append(task)

    def add_schedule(self, schedule: Schedule) -> None:
        """A schedule whose cron is empty is off (settings turn schedules off that way)."""
        if not schedule.cron.strip():
            return
        if any(s.name == schedule.name for s in self.schedules):
            raise ValueError(f"Two schedules are named {schedule.name!r}.")
        self.schedules.append(schedule)
