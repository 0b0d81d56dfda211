"""Decision benchmark: POST /v1/decisions against a bare primary-key endpoint, in the same run.

    .venv/bin/python bench/decisions.py                       # 1M profiles, 50 offers, 32 clients
    .venv/bin/python bench/decisions.py --profiles 100000 --seconds 20

Set-up (not timed): a workspace with --profiles profiles (traits plan, country, age, vip;
a third with computed order counts; 90% with consent to personalisation, which web offers need), 50 offers on the web channel with eligibility rules
(trait and computed-trait conditions) and caps (per day, per week, total), a placement of 3
slots with epsilon-greedy exploration. The profiles are written with SQL for speed; the
offers and placement through the API.

Timed: one uvicorn server process runs the app plus one bench-only route,
GET /bench/profile/{id}, that does one primary-key lookup of a profile through the same
session machinery (the floor of any endpoint that reads a person). --clients concurrent
clients (one HTTP/1.1 connection each) send requests for random profiles for --seconds,
alternating the two endpoints for --rounds rounds. Reported: throughput and latency
percentiles of each, the CPU time per request of the server, of PostgreSQL (its processes
on this machine) and of the client (user + system, read from the operating system around
each phase: what a request costs each of them, whatever bounds the throughput), and the
decision's throughput as a share of the bare endpoint's.
"""

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ADMIN = "decisions-bench-admin"


def bench_app():  # uvicorn --factory bench.decisions:bench_app
    import sqlalchemy as sa
    from fastapi import HTTPException

    from app.core.db import SessionDep
    from app.main import create_app

    app = create_app()

    # (No `from __future__ import annotations` in this file: FastAPI must see SessionDep itself,
    # not a name it would look up among this module's globals.)
    @app.get("/bench/profile/{profile_id}")
    async def bare(profile_id: uuid.UUID, workspace_id: uuid.UUID, session: SessionDep) -> dict:
        row = (await session.execute(
            sa.text("SELECT id, traits FROM profile WHERE workspace_id = :ws AND id = :id"),
            {"ws": workspace_id, "id": profile_id})).first()
        if row is None:
            raise HTTPException(404)
        return {"id": str(row.id), "traits": row.traits}

    return app


def offers_spec(n: int, rng: random.Random) -> list[dict]:
    plans, countries = ["free", "pro", "team"], ["FR", "DE", "GB", "US", "ES"]
    out = []
    for k in range(n):
        rule = {"and": [{"trait": "plan", "op": "in", "value": rng.sample(plans, 2)},
                        {"trait": "age", "op": "gte", "value": rng.randint(18, 40)}]}
        if k % 3 == 0:
            rule["and"].append({"trait": "country", "op": "in", "value": rng.sample(countries, 3)})
        if k % 5 == 0:
            rule = {"or": [rule, {"computed": "order_count", "op": "gte", "value": 2}]}
        caps = [{"per_profile_per_day": 1}, {"per_profile_per_week": 3}, {"total": 1_000_000}, {}][k % 4]
        out.append({"name": f"offer-{k:02d}", "channels": ["web"], "content": {"headline": f"Offer {k}"},
                    "eligibility": rule, "value": round(rng.uniform(1, 20), 2), "weight": 1.0,
                    "prior_propensity": round(rng.uniform(0.01, 0.2), 3), "caps": caps})
    return out


async def setup(base: str, dsn: str, profiles: int, offers: int) -> tuple[str, str, list[str]]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        resp = await client.post("/v1/workspaces", json={"name": f"decisions-bench-{int(time.time())}"},
                                 headers={"Authorization": f"Bearer {ADMIN}"})
        resp.raise_for_status()
        ws, key = resp.json()["workspace"]["id"], resp.json()["secret_key"]
        auth = {"Authorization": f"Bearer {key}"}
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                """INSERT INTO profile (workspace_id, id, traits)
                   SELECT $1::uuid, gen_random_uuid(), jsonb_build_object(
                       'plan', (ARRAY['free','pro','team'])[1 + i % 3], 'age', 18 + i % 60,
                       'country', (ARRAY['FR','DE','GB','US','ES'])[1 + i % 5], 'vip', i % 17 = 0)
                   FROM generate_series(1, $2) AS i""", ws, profiles)
            await conn.execute(
                """INSERT INTO computed_trait_value (workspace_id, profile_id, name, value, computed_at)
                   SELECT workspace_id, id, 'order_count', to_jsonb((random() * 5)::int), now()
                   FROM profile WHERE workspace_id = $1::uuid AND random() < 0.33""", ws)
            # Web offers need consent to personalisation: 90% of the people gave it (the rest get
            # nothing, which the decision still has to find out and record).
            await conn.execute(
                """INSERT INTO consent_record (workspace_id, id, profile_id, purpose, channel, status, source, occurred_at)
                   SELECT workspace_id, gen_random_uuid(), id, 'personalization', NULL, 'granted', 'import',
                          now() - interval '1 day'
                   FROM profile WHERE workspace_id = $1::uuid AND random() < 0.9""", ws)
            await conn.execute("ANALYZE profile; ANALYZE computed_trait_value; ANALYZE consent_record")
            ids = [str(r["id"]) for r in await conn.fetch(
                "SELECT id FROM profile WHERE workspace_id = $1::uuid ORDER BY random() LIMIT 50000", ws)]
        finally:
            await conn.close()
        for body in offers_spec(offers, random.Random(1)):
            (await client.post("/v1/offers", json=body, headers=auth)).raise_for_status()
        (await client.post("/v1/placements", headers=auth, json={
            "name": "home", "channel": "web", "max_offers": 3, "exploration": "epsilon_greedy", "epsilon": 0.1,
            "control_share": 0.05})).raise_for_status()
    return ws, key, ids


async def phase(base: str, clients: int, seconds: float, make_request) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=1)) as client:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                resp = await make_request(client, rng)
                latencies.append(time.perf_counter() - t)
                if resp.status_code != 200:
                    errors += 1

    await asyncio.gather(*[worker(k) for k in range(clients)])
    return len(latencies), latencies, errors


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] * 1000 if len(values) > 1 else float("nan")


async def main_async(args: argparse.Namespace) -> None:
    if args.database_url:
        url = args.database_url
    else:
        from app.core.db import start_embedded_server

        server = start_embedded_server(Path(tempfile.mkdtemp(prefix="decisions-bench-pg-")))
        url = server.get_uri(database="postgres", driver="asyncpg")
    from app.core import migrations

    await asyncio.to_thread(migrations.upgrade, url)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    port = args.port
    env = {**os.environ, "DATABASE_URL": url, "CLIENTELE_ADMIN_TOKEN": ADMIN, "CLIENTELE_ENV": "test",
           "CLIENTELE_CONSENT_SECRET": secrets.token_urlsafe(32),
           "CLIENTELE_LOG_LEVEL": "WARNING", "CLIENTELE_DB_POOL_SIZE": str(args.pool or args.clients)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.decisions:bench_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--workers", str(args.workers)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                sys.exit("the server exited during start-up; run it by hand to see why")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        t = time.perf_counter()
        ws, key, ids = await setup(base, dsn, args.profiles, args.offers)
        setup_s = time.perf_counter() - t
        auth = {"Authorization": f"Bearer {key}"}

        async def decision(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
            return await client.post("/v1/decisions", headers=auth,
                                     json={"profile_id": rng.choice(ids), "placement": "home"})

        async def bare(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
            return await client.get(f"/bench/profile/{rng.choice(ids)}", params={"workspace_id": ws})

        await phase(base, args.clients, 3, decision)  # warm-up
        await phase(base, args.clients, 3, bare)
        results = {"bare": ([], 0, 0.0), "decision": ([], 0, 0.0)}
        # CPU seconds per phase of the server (with its workers), of PostgreSQL (its processes on
        # this machine, if any) and of this client process.
        cpu = {name: {"server": 0.0, "postgres": 0.0, "client": 0.0} for name in ("bare", "decision")}
        server = psutil.Process(proc.pid)

        def cpu_now() -> dict[str, float]:
            # A process that ended during the phase (a connection the pool closed) is counted in
            # its parent's children times, so those are added too.
            totals = {"server": 0.0, "postgres": 0.0, "client": 0.0}
            groups = [("server", [server, *server.children(recursive=True)]), ("client", [psutil.Process()]),
                      ("postgres", [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"])]
            for group, processes in groups:
                for p in processes:
                    try:
                        t = p.cpu_times()
                        totals[group] += t.user + t.system
                        if group == "postgres" and p.ppid() not in {q.pid for q in processes}:
                            totals[group] += t.children_user + t.children_system
                    except psutil.Error:
                        pass
            return totals

        for _ in range(args.rounds):
            for name, fn in (("bare", bare), ("decision", decision)):
                before = cpu_now()
                n, lat, errors = await phase(base, args.clients, args.seconds, fn)
                after = cpu_now()
                for group in after:
                    cpu[name][group] += after[group] - before[group]
                prev = results[name]
                results[name] = (prev[0] + lat, prev[1] + errors, prev[2] + args.seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"{args.profiles} profiles, {args.offers} offers, {args.clients} clients, {args.workers} server worker(s), "
          f"pool {args.pool or args.clients}, "
          f"{args.rounds} x {args.seconds:.0f} s per endpoint; set-up {setup_s:.0f} s; commit {commit}; "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print("| endpoint | requests/s | p50 ms | p95 ms | p99 ms | errors | CPU ms/request: server / PostgreSQL / client |")
    print("|---|---|---|---|---|---|---|")
    rates = {}
    for name, (lat, errors, secs) in results.items():
        rates[name] = len(lat) / secs
        per = {group: 1000 * seconds / max(len(lat), 1) for group, seconds in cpu[name].items()}
        print(f"| {name} | {rates[name]:.0f} | {pct(lat, 0.5):.1f} | {pct(lat, 0.95):.1f} | {pct(lat, 0.99):.1f} | {errors} "
              f"| {per['server']:.2f} / {per['postgres']:.2f} / {per['client']:.2f} |")
    print(f"decision throughput / bare throughput = {rates['decision'] / rates['bare']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--offers", type=int, default=50)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--pool", type=int, default=None,
                    help="the server's connection pool (default: one connection per client; with fewer, "
                         "SQLAlchemy opens and closes overflow connections all the time, and each new one "
                         "sets up its codecs and has PostgreSQL plan every statement afresh five times)")
    ap.add_argument("--port", type=int, default=8731)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
