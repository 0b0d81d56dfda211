"""Ingest benchmark: /v1/batch over HTTP versus the raw PostgreSQL limit, in the same run.

    .venv/bin/python bench/ingest.py                      # embedded Postgres + its own server
    .venv/bin/python bench/ingest.py --url http://127.0.0.1:8000 --admin-token ...   # a running server

HTTP phase: N concurrent clients post pre-built /v1/batch bodies of realistic track messages
(B messages each) to the server (one uvicorn worker per core by default). Raw phase: N asyncpg
connections insert the same kind of rows into the same `event` table (same indexes) with the
event insert ingest runs (`INSERT ... SELECT FROM jsonb_to_recordset(...) ON CONFLICT DO
NOTHING`), the floor of what ingest must do. Both write into fresh workspaces, so neither sees
the other's rows as duplicates. Each round alternates the two phases in --slices slices (so
that both see the same machine); the median round's ratio is reported.

People: --users returning people each send one message in an untimed warm-up (so the server
knows them, as it knows a site's regular visitors); then each timed message comes from one of
them, or, for a --new-share of the messages, from someone never seen before, who costs a new
profile and two identifiers on top of the event. --new-share 0 and 1 are the two extremes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.ids import uuid7  # noqa: E402
from app.ingest.repository import INSERT_EVENTS  # noqa: E402  (ingest's event insert, without its dirty mark)

ORDER = "Order Completed"
# The rest of a store's funnel (Segment's e-commerce spec), weighted as browsing is: many views
# and searches, fewer adds to cart, fewer checkouts.
BROWSING = {"Product Viewed": 45, "Products Searched": 25, "Product Added": 15, "Checkout Started": 10}
# Orders' share of the messages. Each order makes its person due an incremental computed-trait
# refresh, so it sets how much work the job worker does beside ingest. In Hillstrom's e-mail
# test (../shared/data/hillstrom.csv) 0.90% of customers bought and 14.68% visited: one
# visitor in 16 bought. Even if each visit sent a single message, orders would be 6% of them;
# real visits send several. Before 2de8a55 (2026-11-23) the five events were drawn uniformly (orders 20%):
# --order-share 0.2 reproduces that load.
ORDER_SHARE = 0.05
CATEGORIES = ["Books", "Music", "Garden", "Kitchen", "Toys", "Outdoor"]


class People:
    """Who sends each message: one of `returning` people (all known to the server after the
    warm-up), or, with probability `new_share`, someone never seen before (each only once)."""

    def __init__(self, rng: random.Random, returning: int, new_share: float) -> None:
        self.rng, self.returning, self.new_share = rng, returning, new_share
        self.new = 0

    def draw(self) -> str:
        if self.returning == 0 or self.rng.random() < self.new_share:
            self.new += 1
            return f"new-{self.new}"
        return str(self.rng.randrange(self.returning))


def make_message(rng: random.Random, person: str, now: datetime, order_share: float = ORDER_SHARE) -> dict:
    event = ORDER if rng.random() < order_share else rng.choices(list(BROWSING), weights=list(BROWSING.values()))[0]
    properties = {
        "product_id": f"SKU-{rng.randrange(5000):05d}",
        "category": rng.choice(CATEGORIES),
        "price": round(rng.uniform(3, 250), 2),
        "quantity": rng.randint(1, 4),
        "currency": "USD",
    }
    if event == ORDER:
        properties |= {"order_id": uuid.uuid4().hex[:12], "revenue": round(properties["price"] * properties["quantity"], 2)}
    return {
        "type": "track",
        "messageId": uuid.uuid4().hex,
        "userId": f"user-{person}",
        "anonymousId": f"anon-{person}",
        "event": event,
        "timestamp": (now - timedelta(seconds=rng.randrange(86_400))).isoformat().replace("+00:00", "Z"),
        "properties": properties,
        "context": {
            "library": {"name": "analytics-python", "version": "2.3.3"},
            "ip": f"203.0.113.{rng.randrange(255)}",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
            "page": {"path": "/products", "url": "https://shop.example.com/products", "referrer": "https://www.google.com/"},
            "locale": "en-US",
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def create_workspace(http: httpx.AsyncClient, admin_token: str, name: str) -> dict:
    resp = await http.post("/v1/workspaces", json={"name": name}, headers={"Authorization": f"Bearer {admin_token}"})
    resp.raise_for_status()
    return resp.json()


def typical_segments(n: int) -> list[dict]:
    """`n` segments of the kinds marketers define (traits, behaviour in windows, lapsed
    customers, nested rules), over the traits and events this benchmark sends."""
    rules = [
        {"trait": "plan", "op": "eq", "value": "pro"},
        {"event": "Order Completed", "count": {"op": "gte", "value": 2}, "within_days": 90},
        {"and": [{"event": "Order Completed"}, {"not": {"event": "Order Completed", "within_days": 30}}]},
        {"event": "Product Viewed", "within_days": 7},
        {"or": [{"trait": "plan", "op": "in", "value": ["pro", "team"]},
                {"event": "Order Completed", "aggregate": {"fn": "sum", "property": "revenue", "op": "gte", "value": 100}}]},
        {"not": {"event": "Checkout Started", "within_days": 1}},
        {"identifier": "email", "op": "exists"},
        {"and": [{"trait": "plan", "op": "eq", "value": "free"}, {"event": "Order Completed", "within_days": 365}]},
        {"bucket": {"salt": "holdout", "lt": 10}},
        {"event": "Order Completed", "where": [{"property": "revenue", "op": "gt", "value": 50}], "within_days": 30},
    ]
    return [{"name": f"typical {i}", "rule": rules[i % len(rules)]} for i in range(n)]


async def add_suppressions(dsn: str, workspace_id: uuid.UUID, count: int) -> None:
    """Suppressed identifiers (random keyed hashes, as an erasure leaves them) and the
    workspace's hint that ingest must check them."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO suppression (workspace_id, id, identifier_type, identifier_hash)
               SELECT $1, gen_random_uuid(), 'email', sha256(convert_to(g::text || random()::text, 'UTF8'))
               FROM generate_series(1, $2) AS g""",
            workspace_id, count,
        )
        await conn.execute(
            """UPDATE workspace SET settings = jsonb_set(settings, '{privacy}',
                   coalesce(settings->'privacy', '{}') || '{"suppressions": true}') WHERE id = $1""",
            workspace_id,
        )
    finally:
        await conn.close()


async def http_phase(url: str, write_key: str, bodies: list[bytes], concurrency: int) -> tuple[float, int, int]:
    """Keep-alive HTTP/1.1 clients that write pre-built requests and read the responses.

    Deliberately minimal (asyncio streams, no HTTP library): the load generator shares the
    machine with the server and the database, so every cycle it spends is taken from them.
    """
    parsed = httpx.URL(url)
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    requests = [
        (f"POST /v1/batch HTTP/1.1\r\nHost: {parsed.host}\r\nAuthorization: Basic {auth}\r\n"
         f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b
        for b in bodies
    ]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    accepted = 0
    throttled = 0

    async def worker() -> None:
        nonlocal accepted, throttled
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while True:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                while True:
                    writer.write(request)
                    status_line = await reader.readline()
                    status = int(status_line.split()[1])
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.lower() == b"content-length":
                            length = int(value)
                    body = await reader.readexactly(length)
                    if status == 429:
                        throttled += 1
                        await asyncio.sleep(0.05)
                        continue
                    if status != 200:
                        raise RuntimeError(f"HTTP {status}: {body[:500]!r}")
                    accepted += orjson.loads(body)["accepted"]
                    break
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, accepted, throttled


def raw_rows(batch: list[dict], profiles: dict[str, uuid.UUID]) -> tuple[str, list[uuid.UUID]]:
    """The batch as INSERT_EVENTS takes it (rows, profile ids), built before the clock starts.

    Each person keeps one profile id (`profiles`), time-ordered like the server's and made when
    the phase first meets them, so the event indexes get the ids ingest gives them. (Before 2b223bb
    (2026-11-23) each event had a random id of its own, which the profile index spread
    everywhere; not the same rows.)"""
    rows = [{"message_id": m["messageId"], "type": "track", "event": m["event"], "user_id": m["userId"],
             "anonymous_id": m["anonymousId"], "properties": m["properties"], "context": m["context"],
             "ts": m["timestamp"], "original_ts": m["timestamp"]} for m in batch]
    ids = []
    for m in batch:
        pid = profiles.get(m["userId"])
        if pid is None:
            pid = profiles[m["userId"]] = uuid7()
        ids.append(pid)
    return orjson.dumps(rows).decode(), ids


async def raw_phase(
    dsn: str, workspace_id: uuid.UUID, batches: list[list[dict]], concurrency: int,
    profiles: dict[str, uuid.UUID] | None = None,
) -> tuple[float, int]:
    received = datetime.now(UTC)
    profiles = {} if profiles is None else profiles
    prepared = [raw_rows(b, profiles) for b in batches]  # serialisation outside the timed part
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    queue: asyncio.Queue[tuple[str, list[uuid.UUID]]] = asyncio.Queue()
    for p in prepared:
        queue.put_nowait(p)
    inserted = 0

    async def worker() -> None:
        nonlocal inserted
        async with pool.acquire() as conn:
            while True:
                try:
                    payload, profiles = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                # Await first: `inserted += await ...` would read `inserted` before yielding and
                # lose the other workers' additions.
                count = await conn.fetchval(INSERT_EVENTS, workspace_id, received, payload, profiles)
                inserted += count

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await pool.close()
    return elapsed, inserted


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="A running server (default: start one on an embedded Postgres).")
    parser.add_argument("--database-url", help="Postgres of that server, for the raw phase (asyncpg DSN).")
    parser.add_argument("--admin-token", default="bench-admin-token")
    parser.add_argument("--batch-sizes", default="100,500")
    parser.add_argument("--messages", type=int, default=60_000, help="Messages per run.")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--users", type=int, default=20_000,
                        help="Returning people: each sends one message in the untimed warm-up, then they send the "
                             "timed messages (except the --new-share).")
    parser.add_argument("--new-share", type=float, default=0.1,
                        help="Share of timed messages from people never seen before (1.0: all of them).")
    parser.add_argument("--order-share", type=float, default=ORDER_SHARE,
                        help="Share of messages that are orders (each makes its person due an incremental "
                             "computed-trait refresh); the rest browse. 0.2: the uniform mix used before 2de8a55.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes of the server it starts (default: one per core).")
    parser.add_argument("--rounds", type=int, default=3, help="HTTP/raw phase pairs per batch size; the median is reported.")
    parser.add_argument("--slices", type=int, default=4, help="Each round's phases alternate in this many slices.")
    parser.add_argument("--no-worker", action="store_true",
                        help="Start the server without its job worker: ingest alone, without the incremental "
                             "computed-trait refreshes the new orders trigger (run the worker elsewhere).")
    parser.add_argument("--suppressions", type=int, default=0,
                        help="Give the HTTP phase's workspace this many suppressed identifiers (none of the "
                        "benchmark's people), so every batch pays the suppression check.")
    parser.add_argument("--segments", type=int, default=0,
                        help="Define this many typical segments in the HTTP workspace; the server (when started "
                             "here) then refreshes every segment each minute, beside the ingest.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep-data", action="store_true", help="Keep the embedded server's data directory.")
    args = parser.parse_args()

    server = None
    tmp = None
    pg = None
    url, dsn = args.url, args.database_url
    if url is None:
        from app.core.db import start_embedded_server

        tmp = tempfile.mkdtemp(prefix="clientele-bench-")
        pg = start_embedded_server(Path(tmp) / "pgdata")
        admin_dsn = pg.get_uri(database="postgres")
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute("CREATE DATABASE clientele_bench")
        await conn.close()
        dsn = pg.get_uri(database="clientele_bench")
        port = free_port()
        env = {**os.environ, "DATABASE_URL": pg.get_uri(database="clientele_bench", driver="asyncpg"),
               "CLIENTELE_ADMIN_TOKEN": args.admin_token, "CLIENTELE_LOG_LEVEL": "WARNING", "CLIENTELE_LOG_JSON": "false",
               "CLIENTELE_PORT": str(port), "CLIENTELE_INGEST_MAX_CONCURRENCY": "64", "CLIENTELE_WORKERS": str(args.workers)}
        if args.no_worker:
            env["CLIENTELE_RUN_WORKER"] = "false"
        if args.segments:
            env["CLIENTELE_SEGMENTS_REFRESH_CRON"] = "* * * * *"  # the default is every 15 minutes
        server = subprocess.Popen([str(ROOT / ".venv/bin/clientele"), "serve"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "server.log", "wb"))
        print(f"server log: {Path(tmp) / 'server.log'}", file=sys.stderr)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("server did not start")
    assert dsn, "--database-url is required with --url"

    rng = random.Random(42)
    now = datetime.now(UTC)
    results = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for size in [int(s) for s in args.batch_sizes.split(",")]:
                ws_http = await create_workspace(http, args.admin_token, f"bench-http-{size}")
                ws_raw = await create_workspace(http, args.admin_token, f"bench-raw-{size}")
                if args.suppressions:
                    await add_suppressions(dsn, uuid.UUID(ws_http["workspace"]["id"]), args.suppressions)
                for body in typical_segments(args.segments):
                    resp = await http.post("/v1/segments", json=body,
                                           headers={"Authorization": f"Bearer {ws_http['secret_key']}"})
                    resp.raise_for_status()
                people = People(rng, args.users, args.new_share)
                everyone = [make_message(rng, str(i), now, args.order_share) for i in range(args.users)]
                warm = [orjson.dumps({"batch": everyone[i:i + size]}) for i in range(0, len(everyone), size)]
                await http_phase(url, ws_http["write_key"], warm, args.concurrency)
                rounds = []
                raw_profiles: dict[str, uuid.UUID] = {}  # person -> profile id, kept across rounds
                for n in range(args.rounds):
                    # Alternate the phases, and which goes first: the machine's speed drifts
                    # (shared hosts), and the event table and its indexes grow with every
                    # phase, so a ratio is only fair between phases run close together, in
                    # both orders.
                    batches = [[make_message(rng, people.draw(), now, args.order_share) for _ in range(size)]
                               for _ in range(args.messages // size)]
                    bodies = [orjson.dumps({"batch": b}) for b in batches]
                    raw_batches = [[make_message(rng, people.draw(), now, args.order_share) for _ in range(size)]
                                   for _ in range(args.messages // size)]
                    raw_ws = uuid.UUID(ws_raw["workspace"]["id"])
                    # Within a round, the phases alternate slice by slice (a few seconds each),
                    # so both see the same machine: on a shared host its speed changes within
                    # tens of seconds.
                    t_http = t_raw = 0.0
                    accepted = inserted = throttled = 0
                    for i in range(args.slices):
                        part = slice(i * len(bodies) // args.slices, (i + 1) * len(bodies) // args.slices)
                        for phase in (("http", "raw") if (n + i) % 2 == 0 else ("raw", "http")):
                            if phase == "http":
                                t, a, th = await http_phase(url, ws_http["write_key"], bodies[part], args.concurrency)
                                t_http, accepted, throttled = t_http + t, accepted + a, throttled + th
                            else:
                                t, ins = await raw_phase(dsn, raw_ws, raw_batches[part], args.concurrency,
                                                         raw_profiles)
                                t_raw, inserted = t_raw + t, inserted + ins
                    rounds.append({
                        "messages": accepted, "http_events_per_s": round(accepted / t_http),
                        "raw_events_per_s": round(inserted / t_raw),
                        "ratio": round((accepted / t_http) / (inserted / t_raw), 3), "http_429": throttled,
                    })
                    if not args.json:
                        r = rounds[-1]
                        print(f"batch={size:4d}  http {r['http_events_per_s']:>7,} ev/s   raw {r['raw_events_per_s']:>7,} ev/s"
                              f"   ratio {r['ratio']:.2f}   ({accepted:,} msgs, {args.concurrency} clients, "
                              f"{throttled} x 429)", flush=True)
                median = sorted(rounds, key=lambda r: r["ratio"])[(len(rounds) - 1) // 2]  # the lower one when even
                results.append({"batch_size": size, "concurrency": args.concurrency, "users": args.users,
                                "new_share": args.new_share, "order_share": args.order_share,
                                "workers": args.workers, "median": median, "rounds": rounds})
                if args.segments:
                    conn = await asyncpg.connect(dsn)
                    try:
                        n_refresh, members = await conn.fetchrow(
                            """SELECT (SELECT count(*) FROM segment_refresh WHERE workspace_id = $1),
                                      (SELECT coalesce(sum(member_count), 0) FROM segment WHERE workspace_id = $1)""",
                            uuid.UUID(ws_http["workspace"]["id"]))
                    finally:
                        await conn.close()
                    print(f"batch={size:4d}  {args.segments} segments: {n_refresh} refreshes ran during the run, "
                          f"{members:,} memberships", file=sys.stderr, flush=True)
                if not args.json:
                    print(f"batch={size:4d}  median of {len(rounds)}: ratio {median['ratio']:.2f} "
                          f"({median['http_events_per_s']:,} vs {median['raw_events_per_s']:,} ev/s)", flush=True)
    finally:
        if server is not None:
            # SIGTERM: uvicorn drains, and the job worker gives a running job (a segment
            # refresh, say) up to 30 s to finish before cancelling it.
            server.terminate()
            try:
                server.wait(timeout=45)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if tmp is not None:
            # Each run writes gigabytes of events: stop the embedded server and delete them.
            if pg is not None:
                pg.cleanup()
            if args.keep_data:
                print(f"data kept in {tmp}", file=sys.stderr)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": f"{platform.machine()} {os.cpu_count()} cpu",
            "python": platform.python_version(), "results": results}
    if args.json:
        print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
