"""Database.write_transaction, the ingest hot path's transaction outside SQLAlchemy."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import Database, raw_connection


@pytest.fixture
async def db(engine: AsyncEngine, settings: Settings):
    database = Database(engine, settings)
    yield database
    await database.close_write_pool()


async def _workspace(db: Database) -> uuid.UUID:
    ws = uuid.uuid4()
    async with db.write_transaction() as conn:
        await conn.execute("INSERT INTO workspace (id, name, settings, created_at) VALUES ($1, 'wt', '{}', now())", ws)
    return ws


async def _accounts(db: Database, ws: uuid.UUID) -> list[str]:
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        return [r["group_id"] for r in await raw.fetch("SELECT group_id FROM account WHERE workspace_id = $1", ws)]


async def test_commits_when_the_block_ends_and_rolls_back_when_it_raises(db: Database) -> None:
    ws = await _workspace(db)
    async with db.write_transaction("SELECT 1") as conn:
        await conn.execute("INSERT INTO account (workspace_id, group_id, traits) VALUES ($1, 'kept', '{}')", ws)
    with pytest.raises(RuntimeError):
        async with db.write_transaction() as conn:
            await conn.execute("INSERT INTO account (workspace_id, group_id, traits) VALUES ($1, 'lost', '{}')", ws)
            raise RuntimeError("the request failed")
    assert await _accounts(db, ws) == ["kept"]
    # The connection went back to the pool outside any transaction, and the next user of it
    # sees no trace of the failed one.
    async with db.write_transaction() as conn:
        assert await conn.fetchval("SELECT count(*) FROM account WHERE workspace_id = $1", ws) == 1


async def test_first_statement_runs_inside_the_transaction(db: Database) -> None:
    ws = await _workspace(db)
    async with db.write_transaction(f"SELECT pg_advisory_xact_lock_shared(1, hashtext('{ws}'))") as conn:
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND mode = 'ShareLock'"
        )
        assert held == 1
    async with db.write_transaction() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == 0


async def test_json_columns_read_as_python_objects(db: Database) -> None:
    async with db.write_transaction() as conn:
        assert await conn.fetchval("""SELECT '{"a": [1, 2]}'::jsonb""") == {"a": [1, 2]}
        assert await conn.fetchval("SELECT $1::text::jsonb", '{"b": null}') == {"b": None}


async def test_jobs_can_be_queued_in_a_write_transaction(db: Database) -> None:
    """Ingest queues its trait-refresh job on the pool's connection (a pool proxy, not an
    asyncpg.Connection): the job exists once the transaction commits."""
    from app.jobs import queue

    key = f"write-transaction-{uuid.uuid4()}"
    async with db.write_transaction() as conn:
        assert await queue.pending_state(conn, dedupe_key=key) is None
        assert await queue.enqueue(conn, task="jobs.prune", payload={}, dedupe_key=key) is not None
    async with db.write_transaction() as conn:
        assert await queue.pending_state(conn, dedupe_key=key) == "queued"
        await conn.execute("DELETE FROM pgqueuer WHERE dedupe_key = $1", key)


async def test_a_sessions_raw_connection_is_inside_its_transaction(db: Database) -> None:
    """Statements sent on the driver connection before any ORM statement (a refresh's lock and
    claim, an import's first chunk) belong to the session's transaction: the lock holds until
    it ends and a rollback undoes them. (SQLAlchemy begins lazily; before raw_connection began
    it, each of these statements committed on its own.)"""
    ws = await _workspace(db)
    key = ws.int >> 65  # fits a bigint
    async with db.session() as session:
        conn = await raw_connection(session)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
        await conn.execute("INSERT INTO account (workspace_id, group_id, traits) VALUES ($1, 'undone', '{}')", ws)
        async with db.engine.connect() as other:
            raw = (await other.get_raw_connection()).driver_connection
            assert await raw.fetchval("SELECT pg_try_advisory_xact_lock($1)", key) is False
        await session.rollback()
    assert await _accounts(db, ws) == []
