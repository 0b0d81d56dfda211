"""Proposed segments on the whole CDNOW cohort (docs/SEGMENTS.md shows its output).

    .venv/bin/python bench/discover_cdnow.py [--k 4] [--seed 0]

Loads /work/shared/data/cdnow_master.txt (or $CLIENTELE_DATASETS_DIR/cdnow_master.txt: 23,570
customers, 69,659 purchases, Jan 1997 - Jun 1998) as `Order Completed` events into a
temporary embedded database and runs the same k-means as `POST /v1/segments/discover`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine  # noqa: E402

from app.core import migrations  # noqa: E402
from app.segments import discovery  # noqa: E402
from app.segments.schemas import DiscoverRequest  # noqa: E402


def data_file() -> Path:
    for base in (os.environ.get("CLIENTELE_DATASETS_DIR"), ROOT.parent / "shared" / "data", "/work/shared/data"):
        if base and (Path(base) / "cdnow_master.txt").exists():
            return Path(base) / "cdnow_master.txt"
    sys.exit("cdnow_master.txt not found: set CLIENTELE_DATASETS_DIR")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", default="recency_days,frequency,monetary")
    args = parser.parse_args()
    from app.core.db import start_embedded_server

    tmp = tempfile.mkdtemp(prefix="clientele-cdnow-")
    pg = start_embedded_server(Path(tmp) / "pgdata")
    try:
        admin = await asyncpg.connect(pg.get_uri(database="postgres"))
        await admin.execute("CREATE DATABASE cdnow")
        await admin.close()
        dsn = pg.get_uri(database="cdnow")
        await asyncio.to_thread(migrations.upgrade, pg.get_uri(database="cdnow", driver="asyncpg"))
        ws = uuid.uuid4()
        rows = []
        for n, line in enumerate(data_file().read_text().splitlines()):
            parts = line.split()
            if len(parts) == 4 and parts[0].isdigit():  # skips a header line
                customer, day, _cds, dollars = parts
                at = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), tzinfo=UTC)
                rows.append((f"cdnow-{n}", int(customer), at, float(dollars)))
        conn = await asyncpg.connect(dsn)
        await conn.execute("INSERT INTO workspace (id, name) VALUES ($1, 'CDNOW')", ws)
        await conn.execute(
            """WITH c AS (SELECT DISTINCT unnest($2::int[]) AS customer),
                    p AS (INSERT INTO profile (workspace_id, id, traits)
                          SELECT $1, gen_random_uuid(), jsonb_build_object('cdnow_id', customer) FROM c RETURNING id, traits)
               INSERT INTO event (workspace_id, message_id, profile_id, type, event, properties, traits, context,
                                  integrations, timestamp, received_at)
               SELECT $1, o.mid, p.id, 'track', 'Order Completed', jsonb_build_object('revenue', o.dollars), '{}', '{}',
                      '{}', o.at, now()
               FROM unnest($3::text[], $2::int[], $4::timestamptz[], $5::float8[]) AS o(mid, customer, at, dollars)
               JOIN p ON (p.traits ->> 'cdnow_id')::int = o.customer""",
            ws, [r[1] for r in rows], [r[0] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
        )
        await conn.close()
        engine = create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
        async with AsyncSession(engine) as session:
            t0 = time.perf_counter()
            request = DiscoverRequest(k=args.k, seed=args.seed, features=args.features.split(","))
            result = await discovery.discover(session, workspace_id=ws, request=request)
            elapsed = time.perf_counter() - t0
        await engine.dispose()
        print(f"{len(rows):,} purchases; discover took {elapsed:.1f} s")
        print(json.dumps(result.model_dump(mode="json", exclude={"saved_segment"}), indent=2))
    finally:
        pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
