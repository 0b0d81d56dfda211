"""Hillstrom's e-mail test, evaluated off-policy through the decision API.

    .venv/bin/python bench/hillstrom.py [--database-url postgresql+asyncpg://...] [--eval-size N]

64,000 customers were sent a men's e-mail, a women's e-mail or nothing, each with
probability 1/3 (../shared/data/hillstrom.csv). The run:
1. loads every customer as a profile (POST /v1/imports/profiles, NDJSON with typed traits),
   with their consent to marketing e-mails (POST /v1/imports/consents);
2. creates the three arms as offers on the e-mail channel (no e-mail is an offer too);
3. imports one half (random, seeded) as logged decisions with probability 1/3 and their
   outcomes (visit -> click, conversion -> convert with the spend as its value)
   (POST /v1/decisions/import);
4. trains through the normal path (POST /v1/models/train?wait=true&target=convert);
5. asks POST /v1/decisions (explore=false) for every customer of the other half;
6. estimates each policy's value on that half by inverse propensity scoring,
   V = mean(1[policy's arm = logged arm] x outcome / (1/3)), with 95% normal intervals,
   for: the learned policy, the random policy that logged the data (its plain mean), no
   e-mail for anyone, and the men's e-mail for everyone. Differences against the learned
   policy are paired (the same customers), so their intervals are narrower than the
   difference of two intervals.
The model's target (convert) and every setting were fixed before the first run; the figures
are what they are.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core import migrations  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.db import Database, create_engine, start_embedded_server  # noqa: E402
from app.main import create_app  # noqa: E402

DATA = Path("/work/shared/data/hillstrom.csv")
for candidate in (ROOT.parent / "shared" / "data" / "hillstrom.csv",):
    if candidate.exists():
        DATA = candidate
ADMIN = "hillstrom-bench-admin"
ARMS = {"Mens E-Mail": "mens-email", "Womens E-Mail": "womens-email", "No E-Mail": "no-email"}
TRAITS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel")


def load() -> list[dict]:
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        r["user_id"] = f"h{i}"
    return rows


def features(r: dict) -> dict:
    out = {}
    for k in TRAITS:
        v = r[k]
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v
    return out


def ips(match: np.ndarray, outcome: np.ndarray, p: float = 1 / 3) -> np.ndarray:
    return match * outcome / p


def interval(terms: np.ndarray) -> tuple[float, float]:
    return float(terms.mean()), 1.96 * float(terms.std(ddof=1)) / math.sqrt(len(terms))


async def run(args: argparse.Namespace) -> None:
    rows = load()
    rng = random.Random(args.seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    half = len(rows) // 2
    train_idx, eval_idx = order[:half], order[half:]
    if args.eval_size:
        eval_idx = eval_idx[: args.eval_size]

    settings = Settings(env="test", database_url=args.database_url, admin_token=SecretStr(ADMIN), log_level="WARNING",
                        consent_secret=SecretStr(secrets.token_urlsafe(32)),
                        run_worker=False)
    await asyncio.to_thread(migrations.upgrade, args.database_url)
    app = create_app(settings)
    db = Database(create_engine(args.database_url, settings), settings)
    app.state.db = db
    timings = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client:
        resp = await client.post("/v1/workspaces", json={"name": f"hillstrom-{int(time.time())}"},
                                 headers={"Authorization": f"Bearer {ADMIN}"})
        resp.raise_for_status()
        auth = {"Authorization": f"Bearer {resp.json()['secret_key']}"}
        t = time.perf_counter()
        for start in range(0, len(rows), 20000):
            body = b"\n".join(orjson.dumps({"user_id": r["user_id"], **features(r)}) for r in rows[start:start + 20000])
            resp = await client.post("/v1/imports/profiles", content=body,
                                     headers={**auth, "Content-Type": "application/x-ndjson"})
            resp.raise_for_status()
        timings["profiles"] = time.perf_counter() - t
        for arm in ARMS.values():
            resp = await client.post("/v1/offers", headers=auth, json={
                "name": arm, "channels": ["email"], "content": {"campaign": arm}, "value": 1.0})
            resp.raise_for_status()
        resp = await client.post("/v1/placements", headers=auth, json={
            "name": "email-campaign", "channel": "email", "max_offers": 1, "exploration": "epsilon_greedy"})
        resp.raise_for_status()
        await grant_email_consent(client, auth, [r["user_id"] for r in rows])

        t = time.perf_counter()
        start_time = datetime(2008, 3, 1, tzinfo=UTC)
        lines = []
        for k, i in enumerate(train_idx):
            r = rows[i]
            outcomes = []
            if r["visit"] == "1":
                outcomes.append({"type": "click"})
            if r["conversion"] == "1":
                outcomes.append({"type": "convert", "value": float(r["spend"])})
            lines.append(orjson.dumps({
                "identifier": {"type": "user_id", "value": r["user_id"]}, "offer": ARMS[r["treatment"]],
                "probability": 1 / 3, "decided_at": (start_time + timedelta(seconds=k * 30)).isoformat(),
                "features": features(r), "outcomes": outcomes}))
        for start in range(0, len(lines), 10000):
            resp = await client.post("/v1/decisions/import", content=b"\n".join(lines[start:start + 10000]),
                                     headers={**auth, "Content-Type": "application/x-ndjson"})
            resp.raise_for_status()
            assert not resp.json()["rejected"], resp.json()["rejected"][:3]
        timings["import"] = time.perf_counter() - t

        t = time.perf_counter()
        resp = await client.post("/v1/models/train", params={"wait": "true", "target": args.target}, headers=auth)
        resp.raise_for_status()
        timings["train"] = time.perf_counter() - t
        models = (await client.get("/v1/models", headers=auth)).json()
        holdout = models[0]["metrics"].get("holdout", {})

        t = time.perf_counter()
        sem = asyncio.Semaphore(args.concurrency)
        chosen: dict[int, str] = {}

        async def decide(i: int) -> None:
            async with sem:
                resp = await client.post("/v1/decisions", headers=auth, json={
                    "identifier": {"type": "user_id", "value": rows[i]["user_id"]}, "placement": "email-campaign",
                    "explore": False})
                resp.raise_for_status()
                offers = resp.json()["offers"]
                chosen[i] = offers[0]["name"] if offers else "none"

        await asyncio.gather(*[decide(i) for i in eval_idx])
        timings["decisions"] = time.perf_counter() - t
    await db.dispose()

    logged = np.array([ARMS[rows[i]["treatment"]] for i in eval_idx])
    policy = np.array([chosen[i] for i in eval_idx])
    metrics = {
        "visits": np.array([float(rows[i]["visit"]) for i in eval_idx]),
        "conversions": np.array([float(rows[i]["conversion"]) for i in eval_idx]),
        "spend": np.array([float(rows[i]["spend"]) for i in eval_idx]),
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"Hillstrom: {len(train_idx)} logged decisions imported, {len(eval_idx)} customers evaluated "
          f"(seed {args.seed}); target {args.target}; commit {commit}; {platform.machine()}; "
          f"timings {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}")
    print(f"holdout of the training: AUC {holdout.get('auc')}, log loss {holdout.get('log_loss')}, "
          f"calibration error {holdout.get('calibration_error')}")
    arms, counts = np.unique(policy, return_counts=True)
    print("learned policy's choices: " + ", ".join(f"{a} {c / len(policy):.1%}" for a, c in zip(arms, counts, strict=True)))
    print("| per customer | learned policy (IPS) | random (logged) | no e-mail (IPS) | men's for all (IPS) | "
          "learned - random | learned - no e-mail | learned - men's |")
    print("|---|---|---|---|---|---|---|---|")
    for name, y in metrics.items():
        learned = ips((policy == logged).astype(float), y)
        none = ips((logged == "no-email").astype(float), y)
        mens = ips((logged == "mens-email").astype(float), y)
        cells = [interval(learned), interval(y), interval(none), interval(mens),
                 interval(learned - y), interval(learned - none), interval(learned - mens)]
        fmt = "{:.4f} ± {:.4f}" if name != "spend" else "{:.3f} ± {:.3f}"
        print(f"| {name} | " + " | ".join(fmt.format(m, h) for m, h in cells) + " |")


async def grant_email_consent(client: httpx.AsyncClient, auth: dict, user_ids: list[str]) -> None:
    """The e-mail channel needs consent (decisions never offer without it): the customers
    the test mailed had agreed to e-mails, recorded here through the consent import."""
    for start in range(0, len(user_ids), 20000):
        body = b"\n".join(orjson.dumps({"user_id": u, "purpose": "email_marketing", "channel": "email",
                                        "status": "granted", "occurred_at": "2008-02-01T00:00:00Z",
                                        "method": "customer_signup"}) for u in user_ids[start:start + 20000])
        resp = await client.post("/v1/imports/consents", content=body,
                                 headers={**auth, "Content-Type": "application/x-ndjson"})
        resp.raise_for_status()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None, help="default: an embedded server in a temporary directory")
    ap.add_argument("--seed", type=int, default=2008)
    ap.add_argument("--eval-size", type=int, default=0, help="evaluate only this many customers (0: the whole half)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--target", default="convert", choices=["click", "accept", "convert"])
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark needs the Hillstrom dataset (see /work/shared/data/README.md).")
    if args.database_url is None:
        server = start_embedded_server(Path(tempfile.mkdtemp(prefix="hillstrom-pg-")))
        admin_url = server.get_uri(database="postgres", driver="asyncpg")
        args.database_url = admin_url
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
