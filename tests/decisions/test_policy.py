"""The policy's logged probabilities are the real selection frequencies."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.decisions import policy


def arms(*scores: float) -> list[policy.Arm]:
    return [policy.Arm(key=i, score=s, propensity=s, scale=1.0, priority=0, tiebreak=f"{i:04d}",
                       alpha=1 + s * 50, beta=1 + (1 - s) * 50) for i, s in enumerate(scores)]


@pytest.mark.parametrize("pol", [
    policy.Policy("epsilon_greedy", epsilon=0.3),
    policy.Policy("epsilon_greedy", epsilon=0.2, control_share=0.25, control_mode="random"),
    policy.Policy("thompson"),
    policy.Policy("thompson", control_share=0.2, control_mode="none"),
])
def test_logged_probability_matches_frequency(pol: policy.Policy) -> None:
    rng = random.Random(7)
    candidates = arms(0.3, 0.25, 0.1, 0.05)
    n = 3000
    firsts: Counter[int] = Counter()
    logged: dict[int, float] = {}
    for _ in range(n):
        picks, _ = policy.choose(candidates, 2, pol, rng)
        if picks:
            firsts[picks[0].key] += 1
            logged[picks[0].key] = picks[0].probability  # slot 1: the same for every draw
    for key, probability in logged.items():
        assert abs(firsts[key] / n - probability) < 0.035, (key, firsts[key] / n, probability)
    if pol.control_mode == "none" and pol.control_share:
        assert abs(1 - sum(firsts.values()) / n - pol.control_share) < 0.03


def test_second_slot_probability_is_conditional_on_the_first() -> None:
    rng = random.Random(3)
    pol = policy.Policy("epsilon_greedy", epsilon=0.5)
    candidates = arms(0.3, 0.2, 0.1)
    pairs: Counter[tuple[int, int]] = Counter()
    logged: dict[tuple[int, int], float] = {}
    n = 6000
    for _ in range(n):
        picks, _ = policy.choose(candidates, 2, pol, rng)
        pairs[(picks[0].key, picks[1].key)] += 1
        logged[(picks[0].key, picks[1].key)] = picks[0].probability * picks[1].probability
    for pair, p in logged.items():
        assert abs(pairs[pair] / n - p) < 0.03


def test_exploration_off_is_greedy_and_certain() -> None:
    picks, control = policy.choose(arms(0.1, 0.3, 0.2), 2, policy.Policy("off"), random.Random(1))
    assert [(p.key, p.probability) for p in picks] == [(1, 1.0), (2, 1.0)]
    assert control is False
