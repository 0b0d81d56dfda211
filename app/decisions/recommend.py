"""Complementary items: item-item associations from co-purchases, and scoring for a person.

Associations (`build`): two items are associated when the same customer bought both; the
strength is the cosine of their customer sets with shrinkage, co / (sqrt(n_i n_j) + SHRINK),
which keeps a pair seen once between two rare items from outranking a pair seen hundreds of
times. Each item keeps its TOP_NEIGHBOURS strongest neighbours.

Scoring a person (`score`): every item they bought votes for its neighbours, weighted by how
recently they bought it (half-life HALF_LIFE_DAYS), so the last purchase counts most; with
`exclude_purchased=False` their own items compete too, by how often and how recently they
bought them (people re-order). Popularity fills what the neighbourhood leaves empty.

The same functions serve `GET /v1/profiles/{id}/recommendations` (from the stored
associations) and bench/recommendations.py (the evaluation on Online Retail).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy import sparse

TOP_NEIGHBOURS = 50
SHRINK = 2.0
HALF_LIFE_DAYS = 60.0
REPURCHASE_WEIGHT = 1.0
POPULARITY_WEIGHT = 1e-3
POPULAR = ""  # item_association rows with item_id '' hold popularity (other_item_id's buyer count)


@dataclass(frozen=True, slots=True)
class Purchase:
    item: str
    at: datetime


def build(purchases: Iterable[tuple[str, str]], *, top: int = TOP_NEIGHBOURS) -> tuple[
    dict[str, list[tuple[str, float, int]]], dict[str, int]
]:
    """(neighbours, popularity) from (customer, item) pairs: item -> [(other, score, co-buyers)]."""
    customers: dict[str, int] = {}
    items: dict[str, int] = {}
    rows, cols = [], []
    seen = set()
    for customer, item in purchases:
        key = (customer, item)
        if key in seen:
            continue
        seen.add(key)
        rows.append(customers.setdefault(customer, len(customers)))
        cols.append(items.setdefault(item, len(items)))
    names = [None] * len(items)
    for name, idx in items.items():
        names[idx] = name
    if not items:
        return {}, {}
    m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(customers), len(items)))
    counts = np.asarray(m.sum(axis=0)).ravel()
    co = (m.T @ m).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    neighbours: dict[str, list[tuple[str, float, int]]] = {}
    for i in range(len(items)):
        start, end = co.indptr[i], co.indptr[i + 1]
        js, vals = co.indices[start:end], co.data[start:end]
        if not len(js):
            continue
        scores = vals / (np.sqrt(counts[i] * counts[js]) + SHRINK)
        order = np.argsort(-scores, kind="stable")[:top]
        neighbours[names[i]] = [(names[js[k]], float(scores[k]), int(vals[k])) for k in order]
    popularity = {names[i]: int(counts[i]) for i in range(len(items))}
    return neighbours, popularity


def score(
    history: Sequence[Purchase],
    neighbours: dict[str, list[tuple[str, float, int]]],
    popularity: dict[str, int],
    *,
    now: datetime,
    count: int = 10,
    exclude_purchased: bool = True,
) -> list[tuple[str, float]]:
    """The top `count` items for a person with this purchase history."""
    recency: dict[str, float] = defaultdict(float)
    for p in history:
        age = max((now - p.at).total_seconds() / 86400.0, 0.0)
        recency[p.item] += 0.5 ** (age / HALF_LIFE_DAYS)
    scores: dict[str, float] = defaultdict(float)
    for item, weight in recency.items():
        for other, s, _ in neighbours.get(item, ()):
            scores[other] += weight * s
    owned = set(recency)
    if exclude_purchased:
        for item in owned:
            scores.pop(item, None)
    else:
        for item, weight in recency.items():
            scores[item] += REPURCHASE_WEIGHT * weight
    top_pop = max(popularity.values()) if popularity else 1
    for item, n in sorted(popularity.items(), key=lambda kv: -kv[1])[: count * 3 + len(owned)]:
        if exclude_purchased and item in owned:
            continue
        scores[item] += POPULARITY_WEIGHT * n / top_pop
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:count]


def complementary(last_order: Sequence[str], neighbours: dict[str, list[tuple[str, float, int]]]) -> str | None:
    """The item most associated with a basket, not in it (for the complementary-item offer)."""
    basket = set(last_order)
    votes: Counter[str] = Counter()
    for item in basket:
        for other, s, _ in neighbours.get(item, ()):
            if other not in basket:
                votes[other] += s
    if not votes:
        return None
    return min(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def hit_and_recall(recommended: Sequence[str], truth: set[str]) -> tuple[float, float]:
    if not truth:
        return math.nan, math.nan
    hits = len(set(recommended) & truth)
    return float(hits > 0), hits / len(truth)
