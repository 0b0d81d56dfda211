"""Proposed segments: k-means (scikit-learn) over customers' scaled RFM, CLV and behaviour.

Features are computed in one SQL statement per run from the events (and the `clv_365d`
computed trait). Skewed counts and amounts are log-transformed (log1p) before standard
scaling, so a few big spenders do not make their own clusters. k is chosen by the mean
silhouette (on a sample of at most 10,000 customers) when not given. Everything is seeded:
the same data and seed give the same clusters.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import ValidationFailed
from app.segments.schemas import ClusterPublic, DiscoverRequest, DiscoverResult, SegmentPublic

MIN_CUSTOMERS = 20
K_RANGE = range(2, 9)
SILHOUETTE_SAMPLE = 10_000
_LOG_FEATURES = {"frequency", "monetary", "average_order_value", "clv_365d", "events_90d"}

# One row per customer. The order value is properties.revenue, else total (as the computed
# traits read it); $1 workspace, $2 as_of (NULL: the last order).
FEATURES_SQL = r"""
WITH orders AS (
    SELECT e.profile_id, e.timestamp,
           coalesce(clientele_numeric(e.properties -> 'revenue'), clientele_numeric(e.properties -> 'total'), 0) AS revenue
    FROM event AS e
    JOIN profile AS p ON p.workspace_id = e.workspace_id AND p.id = e.profile_id AND p.merged_into IS NULL
    WHERE e.workspace_id = $1 AND e.event = 'Order Completed' AND e.profile_id IS NOT NULL
      AND ($2::timestamptz IS NULL OR e.timestamp <= $2::timestamptz)
), ref AS (
    SELECT coalesce($2::timestamptz, max(timestamp)) AS as_of FROM orders
), per AS (
    SELECT o.profile_id, count(*) AS frequency, sum(o.revenue) AS monetary,
           min(o.timestamp) AS first_at, max(o.timestamp) AS last_at
    FROM orders AS o GROUP BY o.profile_id
)
SELECT per.profile_id, ref.as_of,
       extract(epoch FROM ref.as_of - per.last_at) / 86400 AS recency_days,
       per.frequency::float8 AS frequency,
       per.monetary::float8 AS monetary,
       (per.monetary / per.frequency)::float8 AS average_order_value,
       extract(epoch FROM ref.as_of - per.first_at) / 86400 AS tenure_days,
       coalesce((SELECT clientele_numeric(v.value) FROM computed_trait_value AS v
                 WHERE v.workspace_id = $1 AND v.profile_id = per.profile_id AND v.name = 'clv_365d'), 0)::float8 AS clv_365d,
       CASE WHEN $3 THEN (SELECT count(*) FROM event AS b
                          WHERE b.profile_id = per.profile_id AND b.workspace_id IS NOT DISTINCT FROM $1
                            AND b.timestamp > ref.as_of - interval '90 days' AND b.timestamp <= ref.as_of)
            ELSE 0 END::float8 AS events_90d
FROM per CROSS JOIN ref
ORDER BY per.profile_id
"""


@dataclass(frozen=True, slots=True)
class Clustering:
    labels: np.ndarray
    centres: np.ndarray  # plain units
    k: int
    silhouette: float | None
    silhouette_by_k: dict[str, float]


def _transform(x: np.ndarray, features: list[str]) -> np.ndarray:
    out = x.copy()
    for j, f in enumerate(features):
        if f in _LOG_FEATURES:
            out[:, j] = np.log1p(np.clip(out[:, j], 0, None))
    return out


def _untransform(x: np.ndarray, features: list[str]) -> np.ndarray:
    out = x.copy()
    for j, f in enumerate(features):
        if f in _LOG_FEATURES:
            out[:, j] = np.expm1(out[:, j])
    return out


def cluster(x: np.ndarray, features: list[str], *, k: int | None, seed: int) -> Clustering:
    """k-means on log-scaled, standardised features (CPU-bound: run it in a thread)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    z = scaler.fit_transform(_transform(x, features))
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(z), size=min(len(z), SILHOUETTE_SAMPLE), replace=False)
    sample.sort()

    def fit(n: int) -> Any:
        return KMeans(n_clusters=n, n_init=10, random_state=seed).fit(z)

    def score(labels: np.ndarray) -> float | None:
        if len(set(labels[sample].tolist())) < 2:
            return None
        return float(silhouette_score(z[sample], labels[sample], random_state=seed))

    by_k: dict[str, float] = {}
    if k is None:
        best: tuple[float, int, Any] | None = None
        for n in K_RANGE:
            if n >= len(z):
                break
            model = fit(n)
            s = score(model.labels_)
            if s is None:
                continue
            by_k[str(n)] = round(s, 4)
            if best is None or s > best[0] + 1e-9:
                best = (s, n, model)
        if best is None:
            raise ValueError("the customers do not separate into clusters (too few distinct values)")
        silhouette, k, model = best
    else:
        model = fit(k)
        silhouette = score(model.labels_)
    centres = _untransform(scaler.inverse_transform(model.cluster_centers_), features)
    return Clustering(labels=model.labels_.copy(), centres=centres, k=k, silhouette=silhouette, silhouette_by_k=by_k)


def describe(centre: dict[str, float], medians: dict[str, float]) -> str:
    """A marketer's name for a cluster from its centre against the median customer."""
    words: list[str] = []
    value = centre.get("monetary", centre.get("clv_365d", centre.get("average_order_value")))
    median_value = medians.get("monetary", medians.get("clv_365d", medians.get("average_order_value")))
    if value is not None and median_value is not None:
        words.append("high-value" if value > 1.5 * median_value else "low-value" if value < 0.75 * median_value else "mid-value")
    if "frequency" in centre:
        f = centre["frequency"]
        words.append("one-time" if f < 1.5 else "frequent" if f >= max(3.0, 2 * medians["frequency"]) else "repeat")
    if "recency_days" in centre:
        r, m = centre["recency_days"], medians["recency_days"]
        words.append("recent" if r < 0.5 * m else "lapsed" if r > 1.5 * m else "cooling")
    if "events_90d" in centre and not words:
        words.append("active" if centre["events_90d"] > medians["events_90d"] else "quiet")
    return " ".join(words) or "customers"


async def discover(session: AsyncSession, *, workspace_id: uuid.UUID, request: DiscoverRequest) -> DiscoverResult:
    from app.segments import service

    features = list(dict.fromkeys(request.features))
    conn = await raw_connection(session)
    rows = await conn.fetch(FEATURES_SQL, workspace_id, request.as_of, "events_90d" in features)
    if len(rows) < MIN_CUSTOMERS:
        raise ValidationFailed(
            f"Clustering needs at least {MIN_CUSTOMERS} customers with `Order Completed` events; found {len(rows)}.",
            code="not_enough_customers",
        )
    ids = [r["profile_id"] for r in rows]
    as_of: datetime = rows[0]["as_of"]
    x = np.array([[float(r[f]) for f in features] for r in rows], dtype=np.float64)
    if request.k is not None and request.k >= len(rows):
        raise ValidationFailed(f"k={request.k} needs more customers than {len(rows)}.", code="k_too_large")
    try:
        result = await asyncio.to_thread(cluster, x, features, k=request.k, seed=request.seed)
    except ValueError as exc:
        raise ValidationFailed(f"The customers cannot be clustered: {exc}.", code="not_clusterable") from None
    medians = {f: round(float(np.median(x[:, j])), 2) for j, f in enumerate(features)}
    clusters: list[ClusterPublic] = []
    names: dict[str, int] = {}
    sizes = np.bincount(result.labels, minlength=result.k)
    for c in range(result.k):
        centre = {f: round(float(result.centres[c, j]), 2) for j, f in enumerate(features)}
        name = describe(centre, medians)
        names[name] = names.get(name, 0) + 1
        if names[name] > 1:
            name = f"{name} ({names[name]})"
        clusters.append(ClusterPublic(index=c, name=name, size=int(sizes[c]), share=round(float(sizes[c]) / len(ids), 4),
                                      centre=centre))
    saved = None
    if request.save is not None:
        if request.save.cluster >= result.k:
            raise ValidationFailed(f"There is no cluster {request.save.cluster}; k is {result.k}.", code="unknown_cluster")
        members = [pid for pid, label in zip(ids, result.labels.tolist(), strict=True) if label == request.save.cluster]
        chosen = clusters[request.save.cluster]
        source = {"method": "kmeans", "k": result.k, "seed": request.seed, "features": features,
                  "cluster": chosen.index, "cluster_name": chosen.name, "centre": chosen.centre,
                  "as_of": as_of.isoformat(), "customers": len(ids)}
        segment = await service.create_fixed_segment(
            session, workspace_id=workspace_id, name=request.save.name,
            description=request.save.description or f"k-means cluster '{chosen.name}' (fixed members)",
            profile_ids=members, source=source,
        )
        saved = SegmentPublic.model_validate(segment)
    return DiscoverResult(
        customers=len(ids), k=result.k, features=features,
        silhouette=None if result.silhouette is None else round(result.silhouette, 4),
        silhouette_by_k=result.silhouette_by_k, as_of=as_of, medians=medians, clusters=clusters, saved_segment=saved,
    )
