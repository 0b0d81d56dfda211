"""Arbitration: which offers fill a placement's slots, and the exact probability of each pick.

Scores are propensity x value x weight (Pega's arbitration formula). Slots are filled one at
a time from the offers still available:

- off:            the best remaining offer (ties: higher priority, then lower id). Probability 1.
- epsilon_greedy: with probability epsilon a uniformly random remaining offer, else the best:
                  P(i) = epsilon / n + (1 - epsilon) [i is best].
- thompson:       every remaining offer draws a response rate from its Beta posterior; the
                  highest draw x value x weight wins. P(i wins) = integral of f_i(t) times
                  prod_j F_j(t c_i / c_j) dt (c = value x weight), computed by quadrature.

A control group takes a share `c` of decisions: it gets a uniformly random eligible offer per
slot ("random") or nothing ("none"). The logged probability of a pick is its probability under
the whole logging policy, the mixture of both branches given the picks before it:

  P(i | h) = [c P_c(h) P_c(i|h) + (1-c) P_t(h) P_t(i|h)] / [c P_c(h) + (1-c) P_t(h)]

which is what inverse propensity scoring needs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

_GRID = np.linspace(0.0, 1.0, 1025)


@dataclass(frozen=True, slots=True)
class Arm:
    key: int  # index into the caller's candidates
    score: float  # propensity x value x weight
    propensity: float
    scale: float  # value x weight
    priority: int
    tiebreak: str
    alpha: float = 1.0  # Thompson: Beta posterior of the response rate
    beta: float = 1.0


@dataclass(frozen=True, slots=True)
class Pick:
    key: int
    probability: float


@dataclass(frozen=True, slots=True)
class Policy:
    exploration: str  # off | epsilon_greedy | thompson
    epsilon: float = 0.0
    control_share: float = 0.0
    control_mode: str = "random"  # random | none


def _order(arms: Sequence[Arm]) -> list[Arm]:
    return sorted(arms, key=lambda a: (-a.score, -a.priority, a.tiebreak))


def thompson_probabilities(arms: Sequence[Arm]) -> list[float]:
    """P(arm i has the highest sampled score), for every arm (trapezoid rule on a fixed grid;
    each arm's CDF is tabulated once and read back at t c_i / c_j by interpolation)."""
    n = len(arms)
    if n == 1:
        return [1.0]
    scales = np.array([a.scale for a in arms], dtype=float)
    if not np.any(scales > 0):
        return [1.0 / n] * n
    t = _GRID
    alpha = np.array([a.alpha for a in arms])[:, None]
    beta = np.array([a.beta for a in arms])[:, None]
    pdfs = stats.beta.pdf(t[None, :], alpha, beta)
    cdfs = stats.beta.cdf(t[None, :], alpha, beta)
    probs = np.zeros(n)
    for i in range(n):
        if scales[i] <= 0:
            continue  # a score of zero never beats a positive draw (almost surely)
        integrand = pdfs[i].copy()
        for j in range(n):
            if j != i and scales[j] > 0:
                integrand *= np.interp(t * scales[i] / scales[j], t, cdfs[j], right=1.0)
        probs[i] = np.trapezoid(integrand, t)
    total = probs.sum()
    return list(probs / total) if total > 0 else [1.0 / n] * n


def _treatment_step(remaining: list[Arm], policy: Policy, rng: random.Random) -> tuple[Arm, dict[int, float]]:
    """One slot under the treatment policy: the pick and every remaining arm's probability."""
    ordered = _order(remaining)
    n = len(ordered)
    if policy.exploration == "thompson":
        probs = thompson_probabilities(ordered)
        draws = [rng.betavariate(a.alpha, a.beta) * a.scale for a in ordered]
        best = max(range(n), key=lambda k: draws[k])  # ties have probability zero
        return ordered[best], {a.key: p for a, p in zip(ordered, probs, strict=True)}
    eps = policy.epsilon if policy.exploration == "epsilon_greedy" else 0.0
    probs = {a.key: eps / n for a in ordered}
    probs[ordered[0].key] += 1.0 - eps
    pick = ordered[0] if rng.random() >= eps else ordered[rng.randrange(n)]
    return pick, probs


def choose(arms: Sequence[Arm], count: int, policy: Policy, rng: random.Random) -> tuple[list[Pick], bool]:
    """Fill up to `count` slots; returns the picks and whether this decision is in the control group."""
    control = policy.control_share > 0 and rng.random() < policy.control_share
    c = policy.control_share
    remaining = list(arms)
    picks: list[Pick] = []
    p_hist_control, p_hist_treat = 1.0, 1.0
    if control and policy.control_mode == "none":
        return [], True
    while remaining and len(picks) < count:
        n = len(remaining)
        treat_pick, treat_probs = _treatment_step(remaining, policy, rng)
        control_probs = {a.key: (1.0 / n if policy.control_mode == "random" else 0.0) for a in remaining}
        pick = remaining[rng.randrange(n)] if control else treat_pick
        pc, pt = control_probs[pick.key], treat_probs[pick.key]
        denom = c * p_hist_control + (1 - c) * p_hist_treat
        probability = (c * p_hist_control * pc + (1 - c) * p_hist_treat * pt) / denom if denom > 0 else pt
        picks.append(Pick(pick.key, float(min(max(probability, 0.0), 1.0))))
        p_hist_control *= pc
        p_hist_treat *= pt
        remaining = [a for a in remaining if a.key != pick.key]
    return picks, control
