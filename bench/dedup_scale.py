"""De-duplication of a large workspace the way a user runs it: the CLI, and the API's background job.

    .venv/bin/python -m bench.dedup_scale --n 1000000                     # both paths, 1M profiles
    .venv/bin/python -m bench.dedup_scale --n 200000 --via api
    .venv/bin/python -m bench.dedup_scale --n 1000000 --records /tmp/people-1m.pickle   # reuse the people

Starts a server (``clientele serve`` with its worker) on an embedded Postgres, creates a
workspace through the API, writes ``generate_synthetic_people(n, 0.1, --seed)`` into it as
profiles with ``COPY`` (traits first_name, last_name, email, phone, postcode, address,
birthdate; building 1M profiles through ingest would measure ingest), then:

* **cli**: ``clientele dedup -w WS --json`` (review only) under ``/usr/bin/time -v``: the wall
  time and peak RSS of the whole command (it loads the profiles, matches, writes the
  candidates);
* **api**: ``POST /v1/dedup/runs`` (a workspace over 100,000 profiles answers 202 with a
  queued run), then ``GET /v1/dedup/runs/{id}`` every 2 s until the run is completed or
  failed: the time from the request to ``completed`` and the server process's peak RSS
  (VmHWM, the worker runs inside it).

Each path's candidates are read back from the database and scored against the generator's
true pairs (precision, recall, F1 at the default threshold). The generator takes ~4 minutes
for 1M people; ``--records FILE`` keeps them in a pickle for the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import platform
import re
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.ids import uuid7  # noqa: E402
from app.dedup.matcher import DEFAULT_THRESHOLD, PersonRecord  # noqa: E402
from bench.dedup_febrl import start_server  # noqa: E402
from bench.dedup_synthetic import generate_synthetic_people  # noqa: E402

TRAITS = ("first_name", "last_name", "email", "phone", "postcode", "address", "birthdate")


def people(n: int, seed: int, cache: str | None) -> tuple[list[PersonRecord], set[tuple[str, str]]]:
    if cache and Path(cache).exists():
        with open(cache, "rb") as fh:
            records, truth = pickle.load(fh)
        if len(records) == n:
            return records, truth
    records, truth = generate_synthetic_people(n, 0.1, seed)
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump((records, truth), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return records, truth


def traits_of(r: PersonRecord) -> str:
    out: dict[str, Any] = {}
    for name in TRAITS:
        value = getattr(r, name)
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, date) else value
    return json.dumps(out)


async def load(dsn: str, workspace_id: uuid.UUID, records: list[PersonRecord]) -> dict[uuid.UUID, str]:
    import asyncpg

    ids = {uuid7(): r.id for r in records}
    conn = await asyncpg.connect(dsn)
    try:
        rows = ((workspace_id, pid, traits_of(r)) for pid, r in zip(ids, records, strict=True))
        await conn.copy_records_to_table("profile", columns=["workspace_id", "id", "traits"], records=list(rows),
                                         schema_name="public")
        await conn.execute("ANALYZE profile")
    finally:
        await conn.close()
    return ids


async def quality(dsn: str, workspace_id: uuid.UUID, run_id: str, names: dict[uuid.UUID, str],
                  truth: set[tuple[str, str]]) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT profile_a_id, profile_b_id FROM dedup_candidate WHERE workspace_id = $1 AND run_id = $2 "
            "AND score >= $3", workspace_id, uuid.UUID(run_id), DEFAULT_THRESHOLD)
    finally:
        await conn.close()
    found = {tuple(sorted((names[r["profile_a_id"]], names[r["profile_b_id"]]))) for r in rows}
    hits = len(found & truth)
    p = hits / len(found) if found else 0.0
    r = hits / len(truth) if truth else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def via_cli(dsn: str, workspace_id: uuid.UUID) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
           "CLIENTELE_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(["/usr/bin/time", "-v", str(ROOT / ".venv/bin/clientele"), "dedup", "-w", str(workspace_id),
                           "--json", "--top", "1"], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"clientele dedup failed:\n{proc.stderr[-3000:]}")
    run = json.loads(proc.stdout)["run"]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)  # type: ignore[union-attr]
    seconds = sum(float(x) * 60**i for i, x in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))  # type: ignore[union-attr]
    return {"run": run, "seconds": round(seconds, 1), "peak_rss_mb": rss // 1024}


async def via_api(url: str, secret: str, server_pid: int) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        t0 = time.perf_counter()
        resp = await http.post("/v1/dedup/runs", json={}, headers=headers)
        resp.raise_for_status()
        answered = time.perf_counter() - t0
        run = resp.json()
        status_code, first_status = resp.status_code, run["status"]
        while run["status"] in ("queued", "running"):
            await asyncio.sleep(2)
            run = (await http.get(f"/v1/dedup/runs/{run['id']}", headers=headers)).json()
        seconds = time.perf_counter() - t0
    if run["status"] != "completed":
        raise SystemExit(f"the run {run['status']}: {run.get('error')}")
    return {"run": run, "http_status": status_code, "first_status": first_status, "answered_in_s": round(answered, 2),
            "seconds": round(seconds, 1), "server_peak_rss_mb": peak_rss_mb(server_pid)}


def peak_rss_mb(pid: int) -> int:
    """VmHWM of the process and its children (the serve command may run uvicorn in a child)."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        if m := re.search(r"VmHWM:\s+(\d+) kB", status):
            total = max(total, int(m.group(1)))
    return total // 1024


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out + [g for c in out for g in children(c)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--records", help="Pickle of the generated people: read if it holds n, else written.")
    parser.add_argument("--via", choices=("cli", "api", "both"), default="both")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"# {platform.node()} {os.cpu_count()} cpus, commit {commit}, n {args.n:,}", flush=True)

    t0 = time.perf_counter()
    records, truth = people(args.n, args.seed, args.records)
    print(f"people: {len(records):,}, true pairs {len(truth):,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    admin = "bench-admin-token"
    url, server, pg = start_server(admin, run_worker=True)
    try:
        import httpx

        resp = httpx.post(f"{url}/v1/workspaces", json={"name": f"dedup-scale-{args.n}"},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        resp.raise_for_status()
        ws = resp.json()
        workspace_id = uuid.UUID(ws["workspace"]["id"])
        dsn = os.environ["BENCH_DSN"]
        t0 = time.perf_counter()
        names = asyncio.run(load(dsn, workspace_id, records))
        print(f"profiles written with COPY: {time.perf_counter() - t0:.0f} s", flush=True)
        del records
        results: dict[str, Any] = {}
        if args.via in ("cli", "both"):
            out = via_cli(dsn, workspace_id)
            out["quality"] = asyncio.run(quality(dsn, workspace_id, out["run"]["id"], names, truth))
            results["cli"] = out
            print(f"cli: {out['seconds']} s, peak RSS {out['peak_rss_mb']} MB, counts {out['run']['counts']}, "
                  f"at {DEFAULT_THRESHOLD}: {out['quality']}", flush=True)
        if args.via in ("api", "both"):
            out = asyncio.run(via_api(url, ws["secret_key"], server.pid))
            out["quality"] = asyncio.run(quality(dsn, workspace_id, out["run"]["id"], names, truth))
            results["api"] = out
            print(f"api: HTTP {out['http_status']} {out['first_status']} in {out['answered_in_s']} s, completed after "
                  f"{out['seconds']} s, server peak RSS {out['server_peak_rss_mb']} MB, counts {out['run']['counts']}, "
                  f"at {DEFAULT_THRESHOLD}: {out['quality']}", flush=True)
        for path in results.values():
            path["run"].pop("model", None)
            path["run"].pop("unreadable", None)
        print(json.dumps(results))
    finally:
        server.terminate()
        server.wait(timeout=60)
        pg.cleanup()


if __name__ == "__main__":
    main()
