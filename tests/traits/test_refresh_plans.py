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

from sqlalchemy.ext.asyncio import AsyncConnection

from app.traits import repository
from tests.identity.test_query_plans import explain, nodes


class Capture:
    """A connection that records the statement instead of running it."""

    def __init__(self) -> None:
        self.sql = ""
        self.args: tuple[Any, ...] = ()

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, int]:
        self.sql, self.args = sql, args
        return {"written": 0, "removed": 0}


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
