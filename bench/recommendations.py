"""Complementary items on UCI Online Retail: hit@10 and recall@10 against two baselines.

    .venv/bin/python bench/recommendations.py [--split 2011-09-01] [--k 10]

Time split: purchases before --split are the history (associations are built from them);
what each customer buys from --split on is the truth. Customers with a history and at least
one later purchase are evaluated. Two tasks:
  all  every item bought later counts (re-orders included); recommendations may repeat history
  new  only items new to the customer count; recommendations leave out what they bought
Methods, all in this run on the same split:
  popularity  the most-bought items (distinct buyers)
  item-kNN    cosine similarity of items' buyer sets, summed over the customer's history
              (the classic item-based collaborative filter, Sarwar et al. 2001; 50 neighbours)
  clientele   app.decisions.recommend as the API runs it: shrunk cosine, history weighted by
              recency, re-orders scored in the `all` task, popularity as the filler
Data: ../shared/data/online_retail.csv.gz (rows without CustomerID, cancellations and
non-positive quantities dropped; postage and fee codes kept as the retailer recorded them).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import platform
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.decisions import recommend  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
if not DATA.exists():
    DATA = Path("/work/shared/data/online_retail.csv.gz")


def load(path: Path) -> list[tuple[str, str, datetime]]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if not r["CustomerID"] or r["InvoiceNo"].startswith("C") or float(r["Quantity"]) <= 0:
                continue
            rows.append((r["CustomerID"], r["StockCode"], datetime.fromisoformat(r["InvoiceDate"])))
    return rows


def item_knn(pairs: list[tuple[str, str]], top: int = 50) -> dict[str, list[tuple[str, float]]]:
    cust: dict[str, int] = {}
    items: dict[str, int] = {}
    seen = set()
    r, c = [], []
    for u, i in pairs:
        if (u, i) in seen:
            continue
        seen.add((u, i))
        r.append(cust.setdefault(u, len(cust)))
        c.append(items.setdefault(i, len(items)))
    names = {v: k for k, v in items.items()}
    m = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(cust), len(items)))
    n = np.asarray(m.sum(axis=0)).ravel()
    co = (m.T @ m).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    out = {}
    for i in range(len(items)):
        js, vals = co.indices[co.indptr[i]:co.indptr[i + 1]], co.data[co.indptr[i]:co.indptr[i + 1]]
        if len(js):
            sims = vals / np.sqrt(n[i] * n[js])
            order = np.argsort(-sims, kind="stable")[:top]
            out[names[i]] = [(names[js[k]], float(sims[k])) for k in order]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="2011-09-01")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing: this benchmark needs the Online Retail dataset (see /work/shared/data/README.md).")
    t0 = time.perf_counter()
    rows = load(DATA)
    split = datetime.fromisoformat(args.split)
    train = [(u, i, t) for u, i, t in rows if t < split]
    test = [(u, i, t) for u, i, t in rows if t >= split]
    history: dict[str, list[recommend.Purchase]] = defaultdict(list)
    for u, i, t in train:
        history[u].append(recommend.Purchase(i, t))
    truth: dict[str, set[str]] = defaultdict(set)
    for u, i, _ in test:
        truth[u].add(i)
    users = sorted(u for u in truth if u in history)
    pairs = [(u, i) for u, i, _ in train]
    neighbours, popularity = recommend.build(pairs)
    knn = item_knn(pairs)
    popular = [i for i, _ in sorted(popularity.items(), key=lambda kv: (-kv[1], kv[0]))]
    k = args.k

    def pop_recs(owned: set[str], exclude: bool) -> list[str]:
        return [i for i in popular if not (exclude and i in owned)][:k]

    def knn_recs(owned: set[str], exclude: bool) -> list[str]:
        scores: dict[str, float] = defaultdict(float)
        for i in owned:
            for j, s in knn.get(i, ()):
                scores[j] += s
        if exclude:
            for i in owned:
                scores.pop(i, None)
        ranked = [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]
        fill = [i for i in popular if i not in scores and not (exclude and i in owned)]
        return (ranked + fill)[:k]

    def ours(u: str, exclude: bool) -> list[str]:
        return [i for i, _ in recommend.score(history[u], neighbours, popularity, now=split, count=k,
                                              exclude_purchased=exclude)]

    results: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for u in users:
        owned = {p.item for p in history[u]}
        for task, exclude, t in (("all", False, truth[u]), ("new", True, truth[u] - owned)):
            if not t:
                continue
            for name, recs in (("popularity", pop_recs(owned, exclude)), ("item-kNN", knn_recs(owned, exclude)),
                               ("clientele", ours(u, exclude))):
                results[(task, name)].append(recommend.hit_and_recall(recs, t))
    elapsed = time.perf_counter() - t0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    print(f"Online Retail, split {args.split}: {len(train)} history lines, {len(test)} later lines, "
          f"{len(users)} customers evaluated; k={k}; commit {commit}; {platform.processor() or platform.machine()}; "
          f"{elapsed:.0f} s")
    print(f"| task | customers | method | hit@{k} (95% CI) | recall@{k} (95% CI) |")
    print("|---|---|---|---|---|")
    for task in ("all", "new"):
        for name in ("popularity", "item-kNN", "clientele"):
            arr = np.array(results[(task, name)])
            n = len(arr)
            h, r = arr[:, 0].mean(), arr[:, 1].mean()
            hci = 1.96 * arr[:, 0].std(ddof=1) / math.sqrt(n)
            rci = 1.96 * arr[:, 1].std(ddof=1) / math.sqrt(n)
            print(f"| {task} | {n} | {name} | {h:.3f} ± {hci:.3f} | {r:.3f} ± {rci:.3f} |")


if __name__ == "__main__":
    main()
