"""Incremental computed-trait refresh benchmark, against the floor of rewriting every value.

    .venv/bin/python bench/refresh.py                          # embedded Postgres in a temp dir
    .venv/bin/python bench/refresh.py --database-url postgresql://...   # a migrated database

Builds one workspace (--profiles customers, --events events of which one in five is an
`Order Completed`), computes every value with a full refresh, then times, each in a
transaction rolled back afterwards, an incremental refresh of --scope customers:

- "new order": each of them just placed one more order (most of their values change);
- "nothing new": their events are unchanged since the last refresh.

Reference, measured in the same run and the same way: touching every stored value of those
customers (`UPDATE computed_trait_value SET computed_at = ...`), the least a refresh that
rewrites every value must do. The median of --rounds rounds is reported.

To compare with an earlier commit, run this file from a worktree of it (it uses only
`trait_service.refresh`, whose signature has not changed):

    git worktree add /tmp/before 94701ef && cp bench/refresh.py /tmp/before/bench/ && \
        ln -s "$PWD/.venv" /tmp/before/.venv && (cd /tmp/before && PYTHONPATH=. .venv/bin/python bench/refresh.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine  # noqa: E402

from app.core import migrations  # noqa: E402
from app.core.db import raw_connection  # noqa: E402
from app.traits import service as trait_service  # noqa: E402

EVENTS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Products Searched"]


async def build(dsn: str, profiles: int, events: int) -> uuid.UUID:
    ws = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspace (id, name) VALUES ($1, 'refresh bench')", ws)
        await conn.execute(
            "INSERT INTO profile (workspace_id, id) SELECT $1, gen_random_uuid() FROM generate_series(1, $2)",
            ws, profiles,
        )
        await conn.execute(
            """
            WITH p AS (SELECT id, row_number() OVER () AS n FROM profile WHERE workspace_id = $1)
            INSERT INTO event (workspace_id, message_id, profile_id, type, event, properties, traits, context,
                               integrations, timestamp, received_at)
            SELECT $1, 'bench-' || g, p.id, 'track', ($4::text[])[1 + floor(random() * 5)::int],
                   jsonb_build_object('revenue', round((random() * 200)::numeric, 2)), '{}', '{}', '{}',
                   now() - make_interval(secs => random() * 365 * 86400), now()
            FROM generate_series(1, $3) AS g JOIN p ON p.n = 1 + g % $2
            """,
            ws, profiles, events, EVENTS,
        )
        await conn.execute("ANALYZE event; ANALYZE profile")
    finally:
        await conn.close()
    return ws


async def timed_rounds(engine, ws: uuid.UUID, scope: int, rounds: int, *, new_order: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"refresh": [], "rewrite": []}
    for _ in range(rounds):
        for kind in ("refresh", "rewrite"):
            async with AsyncSession(engine) as session:
                await session.execute(sa.text("SELECT 1"))  # begun by SQLAlchemy (also on code before b020341)
                raw = await raw_connection(session)
                ids = [r["id"] for r in await raw.fetch(
                    "SELECT id FROM profile WHERE workspace_id = $1 ORDER BY id LIMIT $2", ws, scope)]
                if new_order:
                    await raw.execute(
                        """INSERT INTO event (workspace_id, message_id, profile_id, type, event, properties, traits,
                                              context, integrations, timestamp, received_at)
                           SELECT $1, 'new-' || p, p, 'track', 'Order Completed', '{"revenue": 12.5}', '{}', '{}',
                                  '{}', now(), now()
                           FROM unnest($2::uuid[]) AS p""",
                        ws, ids,
                    )
                start = time.perf_counter()
                if kind == "refresh":
                    await trait_service.refresh(session, workspace_id=ws, profile_ids=ids)
                else:
                    await raw.execute(
                        "UPDATE computed_trait_value SET computed_at = clock_timestamp() "
                        "WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])",
                        ws, ids,
                    )
                out[kind].append(time.perf_counter() - start)
                await session.rollback()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="A migrated database (asyncpg DSN); default: embedded, temporary.")
    parser.add_argument("--profiles", type=int, default=60_000)
    parser.add_argument("--events", type=int, default=420_000)
    parser.add_argument("--scope", type=int, default=10_000, help="Customers per incremental refresh.")
    parser.add_argument("--rounds", type=int, default=3)
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
    try:
        ws = await build(dsn, args.profiles, args.events)
        async with AsyncSession(engine) as session:
            full = time.perf_counter()
            await trait_service.refresh(session, workspace_id=ws)
            await session.commit()
            print(f"full refresh of {args.profiles:,} customers, {args.events:,} events: "
                  f"{time.perf_counter() - full:.2f} s")
        print(f"{platform.node()} {os.cpu_count()} cpu, python {platform.python_version()}; "
              f"incremental refresh of {args.scope:,} customers, median of {args.rounds} rounds:")
        for label, new_order in (("new order", True), ("nothing new", False)):
            times = await timed_rounds(engine, ws, args.scope, args.rounds, new_order=new_order)
            refresh, rewrite = statistics.median(times["refresh"]), statistics.median(times["rewrite"])
            print(f"  {label:<12} refresh {refresh:6.2f} s   rewrite every value {rewrite:6.2f} s   "
                  f"ratio {refresh / rewrite:.2f}")
    finally:
        await engine.dispose()
        if pg is not None:
            pg.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
