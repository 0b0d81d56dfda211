"""Migrations that move data keep it, both ways (on a scratch database of the same server)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.core import migrations


@pytest.fixture
async def scratch_url(database_url: str):
    base = make_url(database_url)
    name = f"{base.database}_migrations"
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(False)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def test_dirty_marks_survive_0006_up_and_down(scratch_url: str) -> None:
    await asyncio.to_thread(migrations.upgrade, scratch_url, "0005")
    dsn = make_url(scratch_url).set(drivername="postgresql").render_as_string(False)
    ws, p1, p2, p3 = (uuid.uuid4() for _ in range(4))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspace (id, name) VALUES ($1, 'm')", ws)
        await conn.executemany(
            "INSERT INTO computed_trait_dirty (workspace_id, bucket, profile_id) VALUES ($1, $2, $3)",
            [(ws, 10, p1), (ws, 10, p2), (ws, 11, p3)],
        )
        await asyncio.to_thread(migrations.upgrade, scratch_url, "head")
        rows = await conn.fetch(
            "SELECT bucket, profile_ids FROM computed_trait_dirty WHERE workspace_id = $1 ORDER BY bucket", ws
        )
        assert [(r["bucket"], sorted(r["profile_ids"])) for r in rows] == [(10, sorted([p1, p2])), (11, [p3])]
        await conn.execute(
            "INSERT INTO computed_trait_dirty (workspace_id, bucket, profile_ids) VALUES ($1, 11, $2)", ws, [p3, p1]
        )
        await asyncio.to_thread(migrations.downgrade, scratch_url, "0005")
        back = await conn.fetch("SELECT bucket, profile_id FROM computed_trait_dirty WHERE workspace_id = $1", ws)
        assert sorted((r["bucket"], r["profile_id"]) for r in back) == sorted([(10, p1), (10, p2), (11, p3), (11, p1)])
    finally:
        await conn.close()
