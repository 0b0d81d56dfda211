"""Putting work on pgqueuer's queue from inside a request's (or a job's) transaction.

Enqueueing goes through the transaction's own connection (a session's, or the raw connection
of a write transaction), so a job exists only if the
transaction that asked for it commits: no job for a rolled-back request, and no request that
committed without its job (a transactional outbox, for free).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

import asyncpg
import orjson
from pgqueuer import AsyncpgDriver, Queries
from pgqueuer.domain.settings import db_settings
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection


def queue_tables() -> frozenset[str]:
    """pgqueuer's tables: installed by migration 0004 from pgqueuer's own DDL, not from our models."""
    names = db_settings()
    return frozenset({names.queue_table, names.queue_table_log, names.statistics_table, names.schedules_table})


Executor = AsyncSession | asyncpg.Connection


async def connection(db: Executor) -> asyncpg.Connection:
    """The asyncpg connection of an Executor (a session's, inside its transaction)."""
    return db if isinstance(db, asyncpg.Connection) else await raw_connection(db)


async def _queries(db: Executor) -> Queries:
    # The driver only wraps the connection (it never closes it); building one is cheap.
    return Queries(AsyncpgDriver(await connection(db)))


def encode(payload: Mapping[str, Any]) -> bytes:
    return orjson.dumps(payload, default=str)


def decode(payload: bytes | None) -> dict[str, Any]:
    return orjson.loads(payload) if payload else {}


async def enqueue(
    db: Executor,
    *,
    task: str,
    payload: Mapping[str, Any],
    dedupe_key: str | None = None,
    delay: timedelta | None = None,
) -> int | None:
    """Queue one job; returns its queue id, or None when a job with `dedupe_key` is already
    queued or running (the new one is folded into it)."""
    ids = await enqueue_many(
        db, task=task, payloads=[payload], dedupe_keys=[dedupe_key], delay=delay
    )
    return ids[0]


async def enqueue_many(
    db: Executor,
    *,
    task: str,
    payloads: Sequence[Mapping[str, Any]],
    dedupe_keys: Sequence[str | None] | None = None,
    delay: timedelta | None = None,
) -> list[int | None]:
    """Queue many jobs of one task in one statement; None where a dedupe key was taken."""
    if not payloads:
        return []
    keys = list(dedupe_keys) if dedupe_keys is not None else [None] * len(payloads)
    queries = await _queries(db)
    ids = await queries.enqueue(
        [task] * len(payloads),
        [encode(p) for p in payloads],
        [0] * len(payloads),
        [delay] * len(payloads),
        keys,
        on_conflict="skip",
    )
    return [int(i) if i is not None else None for i in ids]


async def pending_state(db: Executor, *, dedupe_key: str) -> Literal["queued", "picked"] | None:
    """Whether a job with this dedupe key is waiting ("queued"), running ("picked") or neither.

    A plain read of pgqueuer's partial unique index (committed jobs only): unlike an INSERT ...
    ON CONFLICT it never waits for a concurrent transaction holding the same key, and it does
    not fire the queue's NOTIFY trigger. Hot paths check this first and enqueue only when needed.
    """
    conn = await connection(db)
    table = db_settings().qualified.queue_table
    status = await conn.fetchval(
        f"SELECT status::text FROM {table} WHERE dedupe_key = $1 AND status IN ('queued', 'picked')",
        dedupe_key,
    )
    return status


async def is_pending(session: AsyncSession, *, queue_job_id: int) -> bool:
    """Whether this queue job is still queued or being picked up (it is gone once finished)."""
    conn = await raw_connection(session)
    table = db_settings().qualified.queue_table
    return bool(await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1 AND status IN ('queued', 'picked'))", queue_job_id
    ))


async def prune_history(session: AsyncSession, *, older_than: timedelta) -> int:
    """Delete pgqueuer's log rows older than `older_than` (pgqueuer keeps them forever).

    Only rows already folded into its statistics table go, so its throughput figures stay whole.
    """
    conn = await raw_connection(session)
    names = db_settings().qualified
    status = await conn.execute(
        f"DELETE FROM {names.queue_table_log} WHERE aggregated AND created < now() - $1::interval", older_than
    )
    return int(status.rsplit(" ", 1)[-1])
