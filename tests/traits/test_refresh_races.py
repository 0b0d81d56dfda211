"""A refresh that loses a race with concurrent writes runs again instead of failing.

A merge (or a split, or an erasure) can delete a profile while a refresh's statement is about
to write one of its values: the value's row is gone when the upsert reaches it, so it inserts
one, and the foreign-key check finds no profile. (With the locks taken in the other order
the two deadlock instead.) Either way the refresh rolled back entirely, with its claim of the
dirty marks, and the job runs it again."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import Database
from app.jobs import service as job_service
from app.jobs.registry import JobContext
from app.traits import jobs as trait_jobs
from app.traits import repository as trait_repository
from app.traits import service as trait_service
from app.traits.schemas import ComputedTraitCreate

CLICK = """INSERT INTO event (workspace_id, message_id, profile_id, type, event, properties, traits, context,
                              integrations, timestamp, received_at)
           VALUES ($1, $2, $3, 'track', 'Clicked', '{}', '{}', '{}', '{}', now(), now())"""


async def test_an_incremental_refresh_runs_again_after_a_merge_deleted_one_of_its_profiles(
    committed_app, engine: AsyncEngine, settings: Settings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(engine, settings)
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    ws, survivor, absorbed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conn, merger = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspace (id, name) VALUES ($1, 'refresh race')", ws)
        await conn.execute("INSERT INTO profile (workspace_id, id) VALUES ($1, $2), ($1, $3)", ws, survivor, absorbed)
        await job_service.run_committed(db, lambda s: trait_service.create_definition(
            s, workspace_id=ws, data=ComputedTraitCreate(name="clicks", aggregation="count", event="Clicked")))
        await conn.execute(CLICK, ws, "s1", survivor)
        await conn.execute(CLICK, ws, "a1", absorbed)
        await job_service.run_committed(db, lambda s: trait_service.refresh(s, workspace_id=ws))
        # A new click changes only the absorbed profile's value; both are due a refresh.
        await conn.execute(CLICK, ws, "a2", absorbed)
        await trait_repository.mark_dirty(conn, ws, [survivor, absorbed], 10.0)

        # The merge locks the value first (as its cascade would), so the refresh waits on it.
        await merger.execute("BEGIN")
        await merger.fetch(
            "SELECT 1 FROM computed_trait_value WHERE workspace_id = $1 AND profile_id = $2 FOR UPDATE", ws, absorbed
        )
        caplog.set_level(logging.WARNING, logger="clientele.jobs")
        job = asyncio.create_task(
            trait_jobs.run_incremental(JobContext(db, settings), {"workspace_id": str(ws), "bucket": 2**40})
        )
        for _ in range(400):  # a bound, not a timing assertion: until the refresh waits on the lock
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting or job.done():
                break
            await asyncio.sleep(0.05)
        assert waiting and not job.done()
        await merger.execute("UPDATE event SET profile_id = $2 WHERE workspace_id = $1 AND profile_id = $3",
                             ws, survivor, absorbed)
        await merger.execute("DELETE FROM profile WHERE workspace_id = $1 AND id = $2", ws, absorbed)
        await merger.execute("COMMIT")

        result = await asyncio.wait_for(job, 60)
        assert result["mode"] == "incremental" and result["profiles"] == 2
        assert [r.getMessage() for r in caplog.records] == ["job transaction retried"]
        values = await conn.fetch(
            "SELECT profile_id, name, value FROM computed_trait_value WHERE workspace_id = $1 AND name = 'clicks'", ws
        )
        assert [(r["profile_id"], r["value"]) for r in values] == [(survivor, "3")]
        assert await conn.fetchval("SELECT count(*) FROM computed_trait_dirty WHERE workspace_id = $1", ws) == 0
    finally:
        await conn.close()
        await merger.close()


def test_only_races_count_as_lost() -> None:
    assert trait_service.lost_race(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))
    assert trait_service.lost_race(asyncpg.exceptions.ForeignKeyViolationError("no profile"))
    assert not trait_service.lost_race(asyncpg.exceptions.UndefinedColumnError("a bug"))
    assert not trait_service.lost_race(ValueError("not a database error"))


async def test_a_race_wrapped_by_sqlalchemy_counts_as_lost(session, workspace) -> None:
    # Through an ORM session the driver's error arrives wrapped (IntegrityError -> the
    # adapter's error -> asyncpg's): a value for a profile that does not exist, as when a merge
    # deleted it under a refresh, must still read as a lost race; a plain bug must not.
    with pytest.raises(sa.exc.IntegrityError) as raised:
        async with session.begin_nested():
            await session.execute(sa.text(
                "INSERT INTO computed_trait_value (workspace_id, profile_id, name, value, computed_at) "
                "VALUES (:workspace, :profile, 'x', '1'::jsonb, now())"
            ).bindparams(workspace=uuid.UUID(workspace.workspace_id), profile=uuid.uuid4()))
    assert trait_service.lost_race(raised.value)
    with pytest.raises(sa.exc.ProgrammingError) as bug:
        async with session.begin_nested():
            await session.execute(sa.text("SELECT no_such_column FROM workspace"))
    assert not trait_service.lost_race(bug.value)


async def test_a_queued_full_refresh_that_deadlocks_runs_again_and_is_done(
    committed_app, engine: AsyncEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(engine, settings)
    ws = uuid.uuid4()
    await job_service.run_committed(db, lambda s: _create_workspace(s, ws))
    job = await job_service.run_committed(db, lambda s: trait_service.request_refresh(s, workspace_id=ws))
    real_refresh, calls = trait_service.refresh, []

    async def deadlocks_once(session, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return await real_refresh(session, **kwargs)

    monkeypatch.setattr(trait_service, "refresh", deadlocks_once)
    result = await trait_jobs.run_refresh(
        JobContext(db, settings), {"workspace_id": str(ws), "job_id": str(job.id)}
    )
    assert len(calls) == 2 and result["mode"] == "full"
    done = await job_service.run_committed(
        db, lambda s: job_service.get_job(s, workspace_id=ws, job_id=job.id, task_prefix="traits.")
    )
    assert (done.status, done.error) == ("done", None)


async def _create_workspace(session, workspace_id: uuid.UUID) -> None:
    await session.execute(
        sa.text("INSERT INTO workspace (id, name) VALUES (:id, 'refresh retry')"), {"id": workspace_id}
    )
