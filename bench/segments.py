"""Segment count and refresh benchmark, against hand-written SQL for the same questions.

    .venv/bin/python bench/segments.py                               # 1M profiles, 10M events
    .venv/bin/python bench/segments.py --profiles 100000 --events 1000000
    .venv/bin/python bench/segments.py --database-url postgresql://...   # a migrated database

Builds one workspace (profiles with plan, age and country traits; events of which one in
five is an `Order Completed` with a revenue, over two years), refreshes its computed traits
(RFM tiers, order counts), defines the typical segments below, and then, in the same run:

- count: `SELECT count(*)` of the compiled rule against the best hand-written SQL for the same
  question (which knows the traits' types and needs no conversions), median of --rounds
  (which of the two runs first alternates from round to round);
- refresh: a full refresh of every segment from empty (members and change stream written)
  against the floor of writing the same member set with hand-written SQL
  (`CREATE TEMP TABLE ... AS <hand-written query>`), one segment after another; then all of
  them from empty again as the scheduled job runs them (`refresh_workspace`, --concurrency
  segments at a time, each on its own connection);
- export: the process's RSS before and after streaming every profile of the workspace (a
  segment of everyone, refreshed untimed first) through `export_rows` (keyset chunks).

Every count is checked to be equal to its hand-written twin before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine  # noqa: E402

from app.core import migrations  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.core.config import get_settings  # noqa: E402
from app.segments import jobs as segment_jobs  # noqa: E402
from app.segments import repository as segment_repository  # noqa: E402
from app.segments import service as segment_service  # noqa: E402
from app.segments.models import Segment, SegmentVersion  # noqa: E402
from app.traits import service as trait_service  # noqa: E402

EVENTS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Products Searched"]
LIVE = "p.workspace_id = $1 AND p.merged_into IS NULL"

# name -> (rule, hand-written query returning the matching profile ids; $1 = workspace)
RULES: dict[str, tuple[dict[str, Any], str]] = {
    "trait filter": (
        {"and": [{"trait": "plan", "op": "eq", "value": "pro"}, {"trait": "age", "op": "gte", "value": 40}]},
        f"SELECT p.id FROM profile p WHERE {LIVE} AND p.traits ->> 'plan' = 'pro' AND (p.traits ->> 'age')::int >= 40",
    ),
    "RFM tier": (
        {"computed": "rfm_tier", "op": "in", "value": ["champions", "loyal"]},
        f"""SELECT p.id FROM profile p JOIN computed_trait_value v ON v.workspace_id = p.workspace_id
            AND v.profile_id = p.id AND v.name = 'rfm_tier'
            WHERE {LIVE} AND v.value #>> '{{}}' IN ('champions', 'loyal')""",
    ),
    "bought 2+ in 90 days": (
        {"event": "Order Completed", "count": {"op": "gte", "value": 2}, "within_days": 90},
        f"""SELECT p.id FROM profile p JOIN (
                SELECT profile_id FROM event WHERE workspace_id = $1 AND event = 'Order Completed'
                AND timestamp >= now() - interval '90 days' GROUP BY profile_id HAVING count(*) >= 2) e
            ON e.profile_id = p.id WHERE {LIVE}""",
    ),
    "lapsed customer": (
        {"and": [{"event": "Order Completed"}, {"not": {"event": "Order Completed", "within_days": 365}}]},
        f"""SELECT p.id FROM profile p JOIN (
                SELECT profile_id FROM event WHERE workspace_id = $1 AND event = 'Order Completed'
                GROUP BY profile_id HAVING max(timestamp) < now() - interval '365 days') e
            ON e.profile_id = p.id WHERE {LIVE}""",
    ),
    "nested and/or/not": (
        {"or": [
            {"and": [{"trait": "country", "op": "in", "value": ["FR", "DE"]},
                     {"not": {"trait": "plan", "op": "eq", "value": "free"}}]},
            {"and": [{"computed": "order_count", "op": "gte", "value": 5}, {"trait": "age", "op": "lt", "value": 25}]},
        ]},
        f"""SELECT p.id FROM profile p LEFT JOIN computed_trait_value v ON v.workspace_id = p.workspace_id
            AND v.profile_id = p.id AND v.name = 'order_count'
            WHERE {LIVE} AND ((p.traits ->> 'country' IN ('FR', 'DE') AND p.traits ->> 'plan' IS DISTINCT FROM 'free')
               OR ((v.value #>> '{{}}')::numeric >= 5 AND (p.traits ->> 'age')::int < 25))""",
    ),
    "segment of segment": (
        {"and": [{"segment": "bought 2+ in 90 days"}, {"not": {"trait": "plan", "op": "eq", "value": "free"}}]},
        f"""SELECT p.id FROM profile p JOIN (
                SELECT profile_id FROM event WHERE workspace_id = $1 AND event = 'Order Completed'
                AND timestamp >= now() - interval '90 days' GROUP BY profile_id HAVING count(*) >= 2) e
            ON e.profile_id = p.id WHERE {LIVE} AND p.traits ->> 'plan' <> 'free'""",
    ),
}


async def build(dsn: str, profiles: int, events: int) -> uuid.UUID:
    ws = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspace (id, name) VALUES ($1, 'segments bench')", ws)
        await conn.execute(
            """INSERT INTO profile (workspace_id, id, traits)
               SELECT $1, gen_random_uuid(), jsonb_build_object(
                   'plan', (ARRAY['free', 'free', 'pro', 'enterprise'])[1 + floor(random() * 4)::int],
                   'age', 18 + floor(random() * 60)::int,
                   'country', (ARRAY['US', 'GB', 'FR', 'DE', 'ES', 'IT'])[1 + floor(random() * 6)::int])
               FROM generate_series(1, $2)""",
            ws, profiles,
        )
        await conn.execute(
            """
            WITH p AS (SELECT id, row_number() OVER () AS n FROM profile WHERE workspace_id = $1)
            INSERT INTO event (workspace_id, message_id, profile_id, type, event, properties, traits, context,
                               integrations, timestamp, received_at)
            SELECT $1, 'bench-' || g, p.id, 'track', ($4::text[])[1 + floor(random() * 5)::int],
                   jsonb_build_object('revenue', round((random() * 200)::numeric, 2)), '{}', '{}', '{}',
                   now() - make_interval(secs => random() * 730 * 86400), now()
            FROM generate_series(1, $3) AS g JOIN p ON p.n = 1 + (hashint4(g) & 2147483647) % $2
            """,
            ws, profiles, events, EVENTS,
        )
        await conn.execute("ANALYZE event; ANALYZE profile")
    finally:
        await conn.close()
    return ws


async def define(engine, ws: uuid.UUID) -> dict[str, uuid.UUID]:
    ids: dict[str, uuid.UUID] = {}
    async with AsyncSession(engine, expire_on_commit=False) as session:
        for name, (rule, _) in RULES.items():
            if "segment" in rule.get("and", [{}])[0]:
                rule = {"and": [{"segment": str(ids[rule["and"][0]["segment"]])}, *rule["and"][1:]]}
            segment = Segment(workspace_id=ws, name=name, rule=rule, kind="rule", version=1)
            session.add(segment)
            await session.flush()
            session.add(SegmentVersion(workspace_id=ws, segment_id=segment.id, version=1, rule=rule))
            ids[name] = segment.id
        await session.commit()
    return ids


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="A migrated database (asyncpg DSN); default: embedded, temporary.")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=4,
                        help="Count rounds; they alternate which statement runs first (use an even number).")
    parser.add_argument("--concurrency", type=int, default=2, help="Segments refreshed at once by refresh_workspace.")
    parser.add_argument("--workspace", type=uuid.UUID,
                        help="With --database-url: measure a workspace an earlier run built there (skips the build).")
    args = parser.parse_args()

    tmp = pg = None
    dsn = args.database_url
    if dsn is None:
        from app.core.db import start_embedded_server

        tmp = tempfile.mkdtemp(prefix="clientele-bench-")
        pg = start_embedded_server(Path(tmp) / "pgdata")
        admin = await asyncpg.connect(pg.get_uri(database="postgres"))
        await admin.execute("CREATE DATABASE clientele_bench")
        await admin.close()
        dsn = pg.get_uri(database="clientele_bench")
        await asyncio.to_thread(migrations.upgrade, pg.get_uri(database="clientele_bench", driver="asyncpg"))
    engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    raw = await asyncpg.connect(dsn)
    try:
        # The hand-written queries get the work_mem the service gives rule evaluations.
        await raw.execute("SELECT set_config('work_mem', $1, false)", get_settings().segment_work_mem)
        if args.workspace is not None:
            ws = args.workspace
            rows = await raw.fetch("SELECT name, id FROM segment WHERE workspace_id = $1", ws)
            ids = {r["name"]: r["id"] for r in rows if r["name"] in RULES}
            if set(ids) != set(RULES):
                sys.exit(f"workspace {ws} does not hold this benchmark's segments")
            await raw.execute("DELETE FROM segment WHERE workspace_id = $1 AND name = 'everyone'", ws)
            # The refreshes below start from empty, as after a build.
            await raw.execute("DELETE FROM segment_member WHERE workspace_id = $1", ws)
            await raw.execute("DELETE FROM segment_change WHERE workspace_id = $1", ws)
            await raw.execute("UPDATE segment SET refreshed_at = NULL, refreshed_version = NULL WHERE workspace_id = $1", ws)
            await raw.execute("VACUUM ANALYZE segment_member")
            await raw.execute("VACUUM ANALYZE segment_change")
            print(f"reusing workspace {ws}: {await raw.fetchval('SELECT count(*) FROM profile WHERE workspace_id = $1', ws):,} profiles")
        else:
            started = time.perf_counter()
            ws = await build(dsn, args.profiles, args.events)
            async with AsyncSession(engine) as session:
                await trait_service.refresh(session, workspace_id=ws)
                await session.commit()
            await raw.execute("ANALYZE computed_trait_value")
            print(f"built {args.profiles:,} profiles, {args.events:,} events and their computed traits in "
                  f"{time.perf_counter() - started:.0f} s; workspace {ws}")
            ids = await define(engine, ws)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        print(f"{platform.node()} {os.cpu_count()} cpu, python {platform.python_version()}, commit {commit}; "
              f"median of {args.rounds} rounds; work_mem {get_settings().segment_work_mem} on both sides")
        print(f"{'rule':<22} {'members':>9} {'count s':>8} {'hand s':>8} {'ratio':>6}")
        for name, (_, hand) in RULES.items():
            async with AsyncSession(engine) as session:
                segment = await session.get(Segment, (ws, ids[name]))
                clause = await segment_service.compile_rule(session, workspace_id=ws, rule=segment.rule)
                await segment_repository.use_rule_work_mem(session)  # as preview() and refreshes do
                stmt = sa.select(sa.func.count()).select_from(segment_service.profile).where(
                    *segment_service.live_profiles(ws), clause)
                ours, theirs = [], []
                # Untimed first runs: whichever statement ran first would otherwise pay for reading
                # the tables from disk (at 1M, seconds) and the other would find them cached.
                await session.execute(stmt)
                await raw.fetchval(f"SELECT count(*) FROM ({hand}) AS x", ws)
                # Which statement goes first alternates: at 1M the events read do not all fit in
                # shared_buffers, and the second of two statements over the same rows finds more of
                # them there (always running ours first cost it 10-20% on identical plans).
                for round_ in range(args.rounds):
                    for which in ((0, 1) if round_ % 2 == 0 else (1, 0)):
                        t0 = time.perf_counter()
                        if which == 0:
                            n = (await session.execute(stmt)).scalar_one()
                            ours.append(time.perf_counter() - t0)
                        else:
                            m = await raw.fetchval(f"SELECT count(*) FROM ({hand}) AS x", ws)
                            theirs.append(time.perf_counter() - t0)
                    # Rules with a window read the clock: the two statements run a moment apart, so
                    # a person exactly at the boundary may be counted by one only.
                    assert abs(n - m) <= max(2, m // 10000), (name, n, m)
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"{name:<22} {n:>9,} {a:>8.3f} {b:>8.3f} {a / b:>6.2f}")

        # Full refresh of every segment from empty, against writing the same sets by hand.
        total = 0.0
        floor = 0.0
        print(f"{'full refresh':<22} {'entered':>9} {'ours s':>8} {'hand s':>8} {'ratio':>6}")
        for name, (_, hand) in RULES.items():
            async with AsyncSession(engine) as session:
                t0 = time.perf_counter()
                result = await segment_service.refresh_segment(session, workspace_id=ws, segment_id=ids[name], mode="full")
                await session.commit()
                ours_s = time.perf_counter() - t0
            async with raw.transaction():
                t0 = time.perf_counter()
                await raw.execute(f"CREATE TEMP TABLE hand_members ON COMMIT DROP AS {hand}", ws)
                hand_s = time.perf_counter() - t0
            total += ours_s
            floor += hand_s
            print(f"{name:<22} {result['entered']:>9,} {ours_s:>8.2f} {hand_s:>8.2f} {ours_s / hand_s:>6.2f}")
        print(f"{'all segments':<22} {'':>9} {total:>8.2f} {floor:>8.2f} {total / floor:>6.2f}")

        # The same from empty again, as the scheduled job does it: every segment of the workspace,
        # --concurrency at a time, each on its own connection.
        await raw.execute("DELETE FROM segment_member WHERE workspace_id = $1", ws)
        await raw.execute("DELETE FROM segment_change WHERE workspace_id = $1", ws)
        await raw.execute("UPDATE segment SET refreshed_at = NULL, refreshed_version = NULL WHERE workspace_id = $1", ws)
        await raw.execute("VACUUM ANALYZE segment_member")
        await raw.execute("VACUUM ANALYZE segment_change")
        t0 = time.perf_counter()
        await segment_jobs.refresh_workspace(Database(engine), ws, concurrency=args.concurrency)
        together = time.perf_counter() - t0
        entered = await raw.fetchval("SELECT count(*) FROM segment_member WHERE workspace_id = $1", ws)
        print(f"{'refresh_workspace':<22} {entered:>9,} {together:>8.2f} {floor:>8.2f} {together / floor:>6.2f}"
              f"   ({args.concurrency} at a time; floor: the hand-written sets one after another)")

        # An incremental refresh with nothing changed, and export memory.
        async with AsyncSession(engine) as session:
            t0 = time.perf_counter()
            await segment_service.refresh_segment(session, workspace_id=ws, segment_id=ids["trait filter"])
            await session.commit()
            print(f"incremental refresh (trait filter, nothing changed): {time.perf_counter() - t0:.2f} s")
        # Export: a segment of everyone (every profile has an age), so the whole audience streams.
        everyone = Segment(workspace_id=ws, name="everyone", rule={"trait": "age", "op": "exists"}, kind="rule", version=1)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            session.add(everyone)
            await session.flush()
            session.add(SegmentVersion(workspace_id=ws, segment_id=everyone.id, version=1, rule=everyone.rule))
            await session.commit()
        async with AsyncSession(engine) as session:
            await segment_service.refresh_segment(session, workspace_id=ws, segment_id=everyone.id, mode="full")
            await session.commit()
        db = Database(engine)
        before = rss_mb()
        rows = 0
        t0 = time.perf_counter()
        async for chunk in segment_service.export_rows(db, workspace_id=ws, segment_id=everyone.id,
                                                       fields="traits.plan,computed.order_count"):
            rows += len(chunk)
        print(f"export of {rows:,} members: {time.perf_counter() - t0:.2f} s, RSS {before:.0f} MB -> {rss_mb():.0f} MB")
    finally:
        await raw.close()
        await engine.dispose()
        if pg is not None:
            pg.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
