"""Queries by identifier or by profile stay on their index for a workspace the planner's
statistics do not know.

A workspace created or grown since the last ANALYZE is estimated at one row, so every index
leading with workspace_id looks equally cheap. PostgreSQL then picked the wrong one and read
the workspace's every identifier per key, or all its events for one profile's timeline
(migrations 0008 and 0010). These plans are what a new
workspace gets on its first batches (custom plans, with its id as the value)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events.repository import events_query
from app.identity import cache as identity_cache
from app.identity.models import IDENTIFIERS_OF_PROFILES
from app.ingest.repository import existing_message_ids


def nodes(plan: Any) -> list[Any]:
    return [plan] + [n for child in plan.get("Plans", []) for n in nodes(child)]


def scans(plan: Any, relation: str) -> list[tuple[str, str | None]]:
    """(node type, index) of every node of `plan` that reads `relation` (a bitmap scan: the
    indexes of its bitmap index scans)."""
    found = []
    for node in nodes(plan):
        if node.get("Relation Name") == relation:
            index = node.get("Index Name")
            if node["Node Type"] == "Bitmap Heap Scan":
                index = ",".join(sorted({n["Index Name"] for n in nodes(node) if "Index Name" in n}))
            found.append((node["Node Type"], index))
    return found


async def explain(raw: Any, sql: str, *args: Any) -> Any:
    plan = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


async def test_a_new_workspace_looks_up_identifiers_through_the_primary_key(connection: AsyncConnection) -> None:
    raw = (await connection.get_raw_connection()).driver_connection
    await connection.exec_driver_sql("SELECT 1")  # begin the test's transaction
    known, new = uuid.uuid4(), uuid.uuid4()
    await raw.executemany("INSERT INTO workspace (id, name) VALUES ($1, 'plans')", [(known,), (new,)])
    fill = """INSERT INTO identity (workspace_id, type, value, raw, profile_id)
              SELECT $1, t, t || '-' || g, t || '-' || g, gen_random_uuid()
              FROM generate_series(1, $2) AS g, unnest(ARRAY['user_id', 'anonymous_id']) AS t"""
    await raw.execute(fill, known, 10_000)
    await raw.execute("ANALYZE identity")  # the statistics know `known` only
    await raw.execute(fill, new, 5_000)
    profile = await raw.fetchval("SELECT profile_id FROM identity WHERE workspace_id = $1 LIMIT 1", new)

    keys = identity_cache.keys_json([("user_id", f"user_id-{i}") for i in range(1, 50)])
    lookup = scans(await explain(raw, identity_cache.SYNC_AND_LOOKUP, new, keys, 0), "identity")
    assert lookup and all(index == "pk_identity" for _, index in lookup), lookup
    by_profile = scans(await explain(raw, IDENTIFIERS_OF_PROFILES, new, [profile]), "identity")
    assert by_profile and all(index == "ix_identity_profile_id" for _, index in by_profile), by_profile

    # And the answers are right (the look-up finds the new workspace's own identifiers only).
    found, _ = await identity_cache.lookup(raw, new, [("user_id", "user_id-7"), ("user_id", "nobody")])
    assert list(found) == [("user_id", "user_id-7")]
    assert {r["profile_id"] for r in await raw.fetch(IDENTIFIERS_OF_PROFILES, new, [profile])} == {profile}
    assert await existing_message_ids(raw, new, ["m-1"]) == set()


async def test_workspace_tables_are_analyzed_after_a_fixed_number_of_rows(connection: AsyncConnection) -> None:
    """Migration 0009: a new workspace is known to the planner after a bounded number of rows,
    not after 10% of the table has changed."""
    rows = (await connection.exec_driver_sql(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('event', 'profile', 'identity', 'computed_trait_value')"
    )).all()
    options = {name: set(opts or []) for name, opts in rows}
    assert len(options) == 4
    for name, opts in options.items():
        assert "autovacuum_analyze_scale_factor=0" in opts, (name, opts)
        assert any(o.startswith("autovacuum_analyze_threshold=") for o in opts), (name, opts)


async def test_a_new_workspace_reads_a_profile_timeline_through_the_profile_index(connection: AsyncConnection) -> None:
    """Migration 0010: the timeline of one profile, not a scan of the workspace's events."""
    raw = (await connection.get_raw_connection()).driver_connection
    await connection.exec_driver_sql("SELECT 1")
    known, new = uuid.uuid4(), uuid.uuid4()
    await raw.executemany("INSERT INTO workspace (id, name) VALUES ($1, 'plans')", [(known,), (new,)])
    fill = """INSERT INTO event (workspace_id, message_id, profile_id, type, event, properties, traits, context,
                                 integrations, timestamp, received_at)
              SELECT $1, 'm-' || g, md5((g % 500)::text)::uuid, 'track', 'E' || (g % 5), '{}', '{}', '{}', '{}',
                     now() - g * interval '1 second', now()
              FROM generate_series(1, $2) AS g"""
    await raw.execute(fill, known, 20_000)
    await raw.execute("ANALYZE event")
    await raw.execute(fill, new, 20_000)
    profile = await raw.fetchval("SELECT profile_id FROM event WHERE workspace_id = $1 LIMIT 1", new)

    stmt = events_query(workspace_id=new, profile_id=profile, type_=None, event=None, since=None, until=None,
                        after=None, limit=50)
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    timeline = scans(await explain(raw, sql), "event")
    assert timeline and all(index == "ix_event_profile_id_timestamp" for _, index in timeline), timeline
    rows = await raw.fetch(sql)
    assert len(rows) == 40 and {r["profile_id"] for r in rows} == {profile}
