"""Propensity models: features, training (scikit-learn), calibration, and scoring.

A model version holds one model per offer: a logistic regression on the person's features,
fitted with sample weights 1 / (logged probability) so the logging policy's preferences do not
bias it (inverse propensity weighting, weights clipped at MAX_WEIGHT), then Platt-calibrated on
a later slice of the data. Offers with too little feedback keep a prior: the offer's
`prior_propensity` (or DEFAULT_PRIOR) shrunk towards what was observed. Everything is stored as
numbers in JSON (coefficients, means, scales, Platt parameters): never pickle.

Metrics are measured on a time-based holdout (the latest HOLDOUT share of the rows) by a model
fitted on the rows before it; the stored model is then refitted on all rows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

DEFAULT_PRIOR = 0.05
PRIOR_STRENGTH = 20.0  # pseudo-observations behind a prior
MIN_POSITIVES = 5
MIN_ROWS = 30
MAX_WEIGHT = 50.0
HOLDOUT = 0.2
MAX_CATEGORIES = 20
MAX_FEATURES = 200
TARGETS = {
    "click": ("click", "accept", "convert"),
    "accept": ("accept", "convert"),
    "convert": ("convert",),
}
BEHAVIOUR = ("events_7d", "events_30d", "days_since_last_event")


# --- features -------------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def snapshot(traits: dict[str, Any], computed: dict[str, Any] | None, behaviour: dict[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of a person for training: scalar traits and computed traits, behaviour."""
    def scalars(d: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (d or {}).items()
                if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 64)}
    return {"t": scalars(traits), "c": scalars(computed), "b": behaviour}


@dataclass(frozen=True, slots=True)
class Feature:
    source: str  # t (trait), c (computed trait), b (behaviour)
    key: str
    category: str | None = None  # one-hot level of a string value; None: numeric

    def name(self) -> str:
        return f"{self.source}.{self.key}" + (f"={self.category}" if self.category is not None else "")


def build_spec(snapshots: Sequence[dict[str, Any]]) -> list[Feature]:
    """Numeric fields present in at least 1% of rows; string fields with few levels, one-hot."""
    n = max(len(snapshots), 1)
    numeric: Counter[tuple[str, str]] = Counter()
    levels: dict[tuple[str, str], Counter[str]] = {}
    for s in snapshots:
        for source in ("t", "c", "b"):
            for k, v in (s.get(source) or {}).items():
                if _number(v) is not None:
                    numeric[(source, k)] += 1
                elif isinstance(v, str):
                    levels.setdefault((source, k), Counter())[v] += 1
    spec = [Feature(s, k) for (s, k), c in sorted(numeric.items()) if c >= 0.01 * n]
    for (s, k), counts in sorted(levels.items()):
        if len(counts) <= MAX_CATEGORIES and sum(counts.values()) >= 0.01 * n:
            spec += [Feature(s, k, level) for level, c in sorted(counts.items()) if c >= 0.005 * n]
    return spec[:MAX_FEATURES]


def vector(spec: Sequence[Feature], snap: dict[str, Any]) -> np.ndarray:
    x = np.zeros(len(spec))
    for i, f in enumerate(spec):
        v = (snap.get(f.source) or {}).get(f.key)
        if f.category is None:
            num = _number(v)
            x[i] = num if num is not None else 0.0
        else:
            x[i] = 1.0 if v == f.category else 0.0
    return x


def spec_to_json(spec: Sequence[Feature]) -> list[list[Any]]:
    return [[f.source, f.key, f.category] for f in spec]


def spec_from_json(data: Sequence[Sequence[Any]]) -> list[Feature]:
    return [Feature(s, k, c) for s, k, c in data]


# --- models ---------------------------------------------------------------------------------

def _sigmoid(z: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


@dataclass(slots=True)
class OfferScorer:
    kind: str  # logistic | prior
    rate: float = DEFAULT_PRIOR
    coef: np.ndarray | None = None
    intercept: float = 0.0
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    platt: tuple[float, float] = (1.0, 0.0)
    n: float = 0.0  # effective observations (Thompson's posterior strength)

    def predict(self, x: np.ndarray) -> float:
        if self.kind != "logistic":
            return self.rate
        z = float(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return float(_sigmoid(self.platt[0] * z + self.platt[1]))

    def to_json(self) -> dict[str, Any]:
        if self.kind != "logistic":
            return {"kind": "prior", "rate": self.rate, "n": self.n}
        return {"kind": "logistic", "coef": [float(c) for c in self.coef], "intercept": self.intercept,
                "mean": [float(m) for m in self.mean], "scale": [float(s) for s in self.scale],
                "platt": list(self.platt), "n": self.n}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OfferScorer:
        if d["kind"] != "logistic":
            return cls(kind="prior", rate=float(d["rate"]), n=float(d.get("n", 0)))
        return cls(kind="logistic", coef=np.array(d["coef"]), intercept=float(d["intercept"]),
                   mean=np.array(d["mean"]), scale=np.array(d["scale"]), platt=tuple(d["platt"]), n=float(d["n"]))


@dataclass(slots=True)
class ModelSet:
    """One stored version, ready to score."""

    version: int | None
    spec: list[Feature] = field(default_factory=list)
    offers: dict[str, OfferScorer] = field(default_factory=dict)

    @classmethod
    def from_params(cls, version: int, params: dict[str, Any]) -> ModelSet:
        return cls(version, spec_from_json(params["spec"]),
                   {k: OfferScorer.from_json(v) for k, v in params["offers"].items()})

    def propensity(self, offer_id: str, prior: float | None, x: np.ndarray | None) -> tuple[float, float]:
        """(propensity, effective observations) of an offer for a person."""
        scorer = self.offers.get(offer_id)
        if scorer is None:
            return (prior if prior is not None else DEFAULT_PRIOR), 0.0
        return scorer.predict(x if x is not None else np.zeros(len(self.spec))), scorer.n


# --- training -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    offer_id: str
    decided_at: datetime
    probability: float
    features: dict[str, Any]
    label: int


def _weights(probabilities: np.ndarray) -> np.ndarray:
    return np.minimum(1.0 / np.maximum(probabilities, 1e-9), MAX_WEIGHT)


def _fit_offer(X: np.ndarray, y: np.ndarray, w: np.ndarray, prior: float) -> OfferScorer:
    """Logistic regression + Platt calibration on the last third (time order), or a prior."""
    positives = float(y.sum())
    n = len(y)
    rate = (float((w * y).sum()) + PRIOR_STRENGTH * prior) / (float(w.sum()) + PRIOR_STRENGTH)
    if positives < MIN_POSITIVES or n - positives < MIN_POSITIVES or n < MIN_ROWS or X.shape[1] == 0:
        return OfferScorer(kind="prior", rate=rate, n=float(n))
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    cut = int(n * 2 / 3)
    fit_idx, cal_idx = np.arange(cut), np.arange(cut, n)
    if y[fit_idx].min() == y[fit_idx].max() or y[cal_idx].min() == y[cal_idx].max():
        fit_idx = cal_idx = np.arange(n)
    lr = LogisticRegression(C=1.0, max_iter=500)
    lr.fit(Z[fit_idx], y[fit_idx], sample_weight=w[fit_idx])
    z_cal = lr.decision_function(Z[cal_idx]).reshape(-1, 1)
    platt = LogisticRegression(C=1e6, max_iter=500)
    platt.fit(z_cal, y[cal_idx], sample_weight=w[cal_idx])
    return OfferScorer(kind="logistic", coef=lr.coef_[0], intercept=float(lr.intercept_[0]), mean=mean, scale=scale,
                       platt=(float(platt.coef_[0][0]), float(platt.intercept_[0])), n=float(n))


def _fit_all(rows: Sequence[Row], spec: list[Feature], priors: dict[str, float | None]) -> dict[str, OfferScorer]:
    by_offer: dict[str, list[Row]] = {}
    for r in rows:
        by_offer.setdefault(r.offer_id, []).append(r)
    out = {}
    for offer_id, group in by_offer.items():
        group.sort(key=lambda r: r.decided_at)
        X = np.array([vector(spec, r.features) for r in group]) if spec else np.zeros((len(group), 0))
        y = np.array([r.label for r in group], dtype=float)
        w = _weights(np.array([r.probability for r in group]))
        prior = priors.get(offer_id)
        out[offer_id] = _fit_offer(X, y, w, prior if prior is not None else DEFAULT_PRIOR)
    for offer_id, prior in priors.items():
        out.setdefault(offer_id, OfferScorer(kind="prior", rate=prior if prior is not None else DEFAULT_PRIOR))
    return out


def _calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    edges = np.linspace(0, 1, bins + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if mask.any():
            mean_p, rate = float(p[mask].mean()), float(y[mask].mean())
            ece += mask.sum() / len(p) * abs(mean_p - rate)
            table.append({"from": float(lo), "to": float(hi), "count": int(mask.sum()),
                          "predicted": round(mean_p, 5), "observed": round(rate, 5)})
    return float(ece), table


def train(rows: Sequence[Row], priors: dict[str, float | None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, metrics) of a new version from the ledger's rows (any order)."""
    rows = sorted(rows, key=lambda r: r.decided_at)
    spec = build_spec([r.features for r in rows])
    metrics: dict[str, Any] = {"rows": len(rows), "positives": int(sum(r.label for r in rows)),
                               "features": len(spec)}
    cut = int(len(rows) * (1 - HOLDOUT))
    train_rows, holdout = rows[:cut], rows[cut:]
    if holdout and train_rows:
        models = _fit_all(train_rows, spec, priors)
        y = np.array([r.label for r in holdout], dtype=float)
        p = np.array([models[r.offer_id].predict(vector(spec, r.features)) if r.offer_id in models else DEFAULT_PRIOR
                      for r in holdout])
        p = np.clip(p, 1e-6, 1 - 1e-6)
        metrics["holdout"] = {
            "rows": len(holdout),
            "from": holdout[0].decided_at.isoformat(),
            "to": holdout[-1].decided_at.isoformat(),
            "positives": int(y.sum()),
            "auc": float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None,
            "log_loss": float(log_loss(y, p, labels=[0, 1])),
            "base_rate_log_loss": (float(log_loss(y, np.full_like(y, max(min(y.mean(), 1 - 1e-6), 1e-6)), labels=[0, 1]))
                                   if len(y) else None),
        }
        ece, table = _calibration(y, p)
        metrics["holdout"]["calibration_error"] = ece
        metrics["holdout"]["calibration"] = table
    models = _fit_all(rows, spec, priors)
    metrics["offers"] = {k: {"kind": m.kind, "rows": int(m.n)} for k, m in models.items()}
    params = {"spec": spec_to_json(spec), "offers": {k: m.to_json() for k, m in models.items()}}
    return params, metrics
