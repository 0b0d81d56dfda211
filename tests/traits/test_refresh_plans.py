"""A refresh's statements for a workspace the planner's statistics do not know yet.

Such a workspace is estimated at one row, so the `(workspace_id, name)` index of
computed_trait_value looks as selective as the primary key, and every join looks cheap as a
nested loop. Refreshes that compared new values with stored ones by joins (a probe through
that index per value, or a scan of all new values per stored one) ran past the statement
timeout on a new workspace's first windows. See repository._write_family."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.traits import repository
from app.traits import service as trait_service
from tests.conftest import WorkspaceKeys
from tests.identity.test_query_plans import explain, nodes
from tests.traits.test_computed_traits import profile_ids, send, track


class Capture:
    """A connection that records the statement instead of running it."""

    def __init__(self) -> None:
        self.sql = ""
        self.args: tuple[Any, ...] = ()

    async def prepare(self, sql: str) -> Capture:
        self.sql = sql
        return self

    async def fetchrow(self, *args: Any) -> dict[str, int]:
        self.args = args
        return {"written": 0, "removed": 0}


class Recording:
    """A refresh's asyncpg connection, recording which statements went through asyncpg's
    statement cache (`fetch...`, `execute`) and which were prepared for one execution."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cached: list[str] = []
        self.prepared: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    async def prepare(self, sql: str, **kwargs: Any) -> Any:
        self.prepared.append(sql)
        return await self.conn.prepare(sql, **kwargs)

    async def _cached(self, method: str, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.cached.append(sql)
        return await getattr(self.conn, method)(sql, *args, **kwargs)

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._cached("fetch", sql, *args, **kwargs)

    async def fetchrow(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._cached("fetchrow", sql, *args, **kwargs)

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._cached("fetchval", sql, *args, **kwargs)

    async def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._cached("execute", sql, *args, **kwargs)


def per_row_reads(plan: Any) -> list[str]:
    """What the inner side of each nested loop reads once per outer row, apart from a
    primary-key probe of computed_trait_value and the VALUES list of a family's names."""
    found = []
    for node in nodes(plan):
        if node["Node Type"] == "Nested Loop" and len(node.get("Plans", [])) == 2:
            for n in nodes(node["Plans"][1]):
                if n["Node Type"] == "CTE Scan":
                    found.append(f"CTE {n.get('CTE Name')}")
                elif n.get("Relation Name") == "computed_trait_value":
                    index = n.get("Index Name") or ",".join(
                        sorted({m["Index Name"] for m in nodes(n) if "Index Name" in m})
                    )
                    if index != "pk_computed_trait_value":
                        found.append(f"{n['Node Type']} {index}")
    return found


async def test_a_new_workspace_compares_and_removes_values_without_per_row_scans(connection: AsyncConnection) -> None:
    raw = (await connection.get_raw_connection()).driver_connection
    await connection.exec_driver_sql("SELECT 1")  # begin the test's transaction
    known, new = uuid.uuid4(), uuid.uuid4()
    await raw.executemany("INSERT INTO workspace (id, name) VALUES ($1, 'plans')", [(known,), (new,)])
    fill = """
        WITH p AS (INSERT INTO profile (workspace_id, id) SELECT $1, gen_random_uuid() FROM generate_series(1, $2)
                   RETURNING workspace_id, id)
        INSERT INTO computed_trait_value (workspace_id, profile_id, name, value, computed_at)
        SELECT p.workspace_id, p.id, n, '1', now() FROM p, unnest($3::text[]) AS n"""
    names = list(repository.ORDER_TRAITS)
    await raw.execute(fill, known, 4_000, names)
    await raw.execute("ANALYZE computed_trait_value")  # the statistics know `known` only
    await raw.execute(fill, new, 2_000, names)
    scope = [r["id"] for r in await raw.fetch("SELECT id FROM profile WHERE workspace_id = $1 LIMIT 500", new)]

    capture = Capture()
    await repository.upsert_order_values(
        capture, new, computed_at=datetime.now(UTC), profiles=repository.ProfileSet(scope)
    )
    assert per_row_reads(await explain(raw, capture.sql, *capture.args)) == []


async def test_statements_over_a_profile_set_are_planned_for_its_values(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statements that bind the refresh's profiles are prepared for one execution, so they are
    planned for that array (asyncpg's cache would let PostgreSQL switch them to a generic plan
    that scans the array for every event read), and the transaction keeps the default
    plan_cache_mode (forcing custom plans replanned every foreign-key check, once per value
    inserted)."""
    ws = uuid.UUID(workspace.workspace_id)
    await send(client, workspace, [track("plan", "Order Completed", 1, {"revenue": 10}, mid="pl1")])
    pid = uuid.UUID((await profile_ids(client, workspace))["plan"])
    recordings: list[Recording] = []
    original = trait_service.raw_connection

    async def recorded(s: AsyncSession) -> Recording:
        recordings.append(Recording(await original(s)))
        return recordings[-1]

    monkeypatch.setattr(trait_service, "raw_connection", recorded)
    result = await trait_service.refresh(session, workspace_id=ws, profile_ids=[pid])
    assert result["values_written"] == 10  # 5 order built-ins, 5 RFM scores
    cached = [sql for r in recordings for sql in r.cached]
    prepared = [sql for r in recordings for sql in r.prepared]
    assert [sql for sql in cached if "::uuid[]" in sql] == []
    assert len([sql for sql in prepared if "::uuid[]" in sql]) >= 3  # order built-ins, RFM, CLV scores
    assert await recordings[0].conn.fetchval("SELECT current_setting('plan_cache_mode')") == "auto"


async def test_refreshed_values_are_updated_in_place(connection: AsyncConnection) -> None:
    """Migration 0011 (fillfactor 70): pages keep room, so a value rewritten by a refresh
    stays on its page without new index entries (a HOT update). On full pages (the default
    fillfactor) nearly none would."""
    raw = (await connection.get_raw_connection()).driver_connection
    await connection.exec_driver_sql("SELECT 1")  # begin the test's transaction
    ws = uuid.uuid4()
    await raw.execute("INSERT INTO workspace (id, name) VALUES ($1, 'hot')", ws)
    await raw.execute(
        """WITH p AS (INSERT INTO profile (workspace_id, id) SELECT $1, gen_random_uuid() FROM generate_series(1, 500)
                      RETURNING workspace_id, id)
           INSERT INTO computed_trait_value (workspace_id, profile_id, name, value, computed_at)
           SELECT p.workspace_id, p.id, n, '1', now() FROM p, unnest($2::text[]) AS n""",
        ws, list(repository.ORDER_TRAITS),
    )
    before = await raw.fetchval(
        "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'computed_trait_value'"
    )
    await raw.execute("UPDATE computed_trait_value SET value = '2', computed_at = now() WHERE workspace_id = $1", ws)
    hot = await raw.fetchval(
        "SELECT n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'computed_trait_value'"
    ) - before
    assert hot >= 0.25 * 2_500, hot  # about 40% when every value of a page changes at once
