"""BG/NBD + Gamma-Gamma maths, checked against the published CDNOW figures.

Reference figures (CDNOW 1/10 sample, 2,357 customers, 39-week calibration):
  BG/NBD  r=0.243 alpha=4.414 a=0.793 b=2.426 LL=-9582.4, and E[Y(39) | x=2,
          t_x=30.43, T=38.86] = 1.226  (Fader, Hardie & Lee 2005, Marketing Science)
  Gamma-Gamma p=6.25 q=3.74 v=15.44 on the 946 repeat buyers  (Fader, Hardie & Lee
          2005, JMR; Hardie, "The Gamma-Gamma model of monetary value")
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
from scipy.special import hyp2f1

from app.traits.clv import (
    BGNBDParams,
    GammaGammaParams,
    RFMSummary,
    bgnbd_expected_purchases,
    bgnbd_prob_alive,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
    summarize,
)
from tests.datasets import dataset

CDNOW_SAMPLE = dataset("cdnow_sample.txt")
# The paper's calibration period is weeks 1..39 = 1997-01-01..1997-09-30, and its
# data code T as whole days from first purchase to 1997-09-30, divided by 7: a
# customer first buying on 1997-01-01 has T = 272/7 = 38.86 weeks (first row of
# Hardie's cdnow_customers file: x=2, t_x=30.43, T=38.86). Purchases on 09-30
# count. Using T = 39 (the end of 09-30, 273 days) gives a = 0.814, 2.7% off the
# paper, so observation_end = 1997-09-30 with day differences is the definition.
CALIBRATION_END = date(1997, 9, 30)


def _within(value: float, expected: float, rel: float = 0.02) -> bool:
    return abs(value - expected) <= rel * abs(expected)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cdnow_transactions() -> list[tuple[int, date, float]]:
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {CDNOW_SAMPLE} (see ../shared/data/README.md)")
    rows = []
    for line in CDNOW_SAMPLE.read_text().splitlines():
        if not line.strip():
            continue
        _original_id, sample_id, day, _cds, dollars = line.split()
        rows.append((int(sample_id), datetime.strptime(day, "%Y%m%d").date(), float(dollars)))
    assert len(rows) == 6919
    return rows


@pytest.fixture(scope="module")
def calibration(cdnow_transactions: list[tuple[int, date, float]]) -> RFMSummary:
    return summarize(cdnow_transactions, observation_end=CALIBRATION_END)


@pytest.fixture(scope="module")
def bg(calibration: RFMSummary) -> BGNBDParams:
    return fit_bgnbd(calibration.frequency, calibration.recency, calibration.T)


@pytest.fixture(scope="module")
def gg(calibration: RFMSummary) -> GammaGammaParams:
    return fit_gamma_gamma(calibration.frequency, calibration.monetary_value)


# ------------------------------------------------------------ CDNOW: BG/NBD


def test_cdnow_calibration_summary(calibration: RFMSummary) -> None:
    assert len(calibration) == 2357
    assert calibration.customer_ids[:3] == [1, 2, 3]
    assert calibration.frequency.sum() == 2457  # repeat purchase days in weeks 1..39
    assert int((calibration.frequency > 0).sum()) == 946
    # Customer 1: purchases 01-01, 01-18, 08-02 in calibration (12-12 is later).
    assert calibration.frequency[0] == 2
    assert calibration.recency[0] == pytest.approx(213 / 7)  # 30.43 weeks
    assert calibration.T[0] == pytest.approx(272 / 7)  # 38.86 weeks
    assert calibration.monetary_value[0] == pytest.approx((29.73 + 14.96) / 2)
    assert np.all(calibration.recency <= calibration.T)
    assert np.all(calibration.monetary_value[calibration.frequency == 0] == 0)


def test_cdnow_bgnbd_matches_paper(bg: BGNBDParams) -> None:
    assert _within(bg.r, 0.243), bg
    assert _within(bg.alpha, 4.414), bg
    assert _within(bg.a, 0.793), bg
    assert _within(bg.b, 2.426), bg
    assert _within(bg.log_likelihood, -9582.4), bg


def test_cdnow_conditional_expectation_matches_paper(bg: BGNBDParams) -> None:
    expected = bgnbd_expected_purchases(bg, 39.0, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, rel=0.005)


def test_expected_purchases_equal_paper_formula(bg: BGNBDParams, calibration: RFMSummary) -> None:
    """The Euler-transformed implementation equals eq. (10) written out literally."""
    x, t_x, T = calibration.frequency, calibration.recency, calibration.T
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    for t in (1.0, 39.0, 78.0):
        z = t / (alpha + T + t)
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, z)
        literal = (
            (a + b + x - 1) / (a - 1)
            * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyper)
            / (1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
        )
        np.testing.assert_allclose(bgnbd_expected_purchases(bg, t, x, t_x, T), literal, rtol=1e-9)


def test_cdnow_prediction_sanity(bg: BGNBDParams, calibration: RFMSummary) -> None:
    x, t_x, T = calibration.frequency, calibration.recency, calibration.T
    alive = bgnbd_prob_alive(bg, x, t_x, T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[x == 0] == 1)  # BG/NBD: dropout only happens after a purchase

    horizons = (0.0, 1.0, 13.0, 39.0, 78.0)
    by_horizon = np.stack([bgnbd_expected_purchases(bg, t, x, t_x, T) for t in horizons])
    assert np.all(by_horizon >= 0)
    assert np.all(by_horizon[0] == 0)
    assert np.all(np.diff(by_horizon, axis=0) > 0)

    idle = bgnbd_expected_purchases(bg, 39.0, [0], [0.0], [38.86])
    frequent_recent = bgnbd_expected_purchases(bg, 39.0, [10], [38.0], [38.86])
    frequent_lapsed = bgnbd_expected_purchases(bg, 39.0, [10], [5.0], [38.86])
    assert idle[0] < frequent_recent[0]
    assert frequent_lapsed[0] < frequent_recent[0]
    assert bgnbd_prob_alive(bg, [10], [5.0], [38.86])[0] < 0.01


def test_bgnbd_time_unit_invariance(
    cdnow_transactions: list[tuple[int, date, float]], bg: BGNBDParams
) -> None:
    """Measuring time in days instead of weeks only rescales alpha."""
    days = summarize(cdnow_transactions, observation_end=CALIBRATION_END, time_unit_days=1.0)
    fit = fit_bgnbd(days.frequency, days.recency, days.T)
    assert fit.r == pytest.approx(bg.r, rel=1e-4)
    assert fit.alpha == pytest.approx(bg.alpha * 7, rel=1e-4)
    assert fit.a == pytest.approx(bg.a, rel=1e-4)
    assert fit.b == pytest.approx(bg.b, rel=1e-4)


# ------------------------------------------------------- CDNOW: Gamma-Gamma


def test_cdnow_gamma_gamma(gg: GammaGammaParams, calibration: RFMSummary) -> None:
    assert gg.p > 0 and gg.v > 0 and gg.q > 1
    assert np.isfinite(gg.log_likelihood)
    assert _within(gg.p, 6.25) and _within(gg.q, 3.74) and _within(gg.v, 15.44), gg

    x, m = calibration.frequency, calibration.monetary_value
    spend = gamma_gamma_expected_spend(gg, x, m)
    assert np.all(spend > 0)
    np.testing.assert_allclose(spend[x == 0], gg.p * gg.v / (gg.q - 1))

    # Shrinkage: strictly between the customer's own mean and the population mean.
    population = gg.population_mean
    for i in np.flatnonzero(x > 0)[:25]:
        low, high = sorted((m[i], population))
        assert low < spend[i] < high, (i, m[i], spend[i], population)
    # More repeat purchases -> closer to the customer's own mean.
    few, many = gamma_gamma_expected_spend(gg, [1, 20], [100.0, 100.0])
    assert abs(many - 100.0) < abs(few - 100.0)


def test_cdnow_customer_lifetime_value(
    bg: BGNBDParams, gg: GammaGammaParams, calibration: RFMSummary
) -> None:
    args = (calibration.frequency, calibration.recency, calibration.T, calibration.monetary_value)
    undiscounted = customer_lifetime_value(bg, gg, *args, horizon_units=52.0)
    spend = gamma_gamma_expected_spend(gg, calibration.frequency, calibration.monetary_value)
    purchases = bgnbd_expected_purchases(bg, 52.0, calibration.frequency, calibration.recency, calibration.T)
    # Without discounting the per-step increments telescope to E[Y(52)] * spend.
    np.testing.assert_allclose(undiscounted, purchases * spend, rtol=1e-9)
    one_step = customer_lifetime_value(bg, gg, *args, horizon_units=52.0, steps=1)
    np.testing.assert_allclose(one_step, undiscounted, rtol=1e-9)

    discounted = customer_lifetime_value(bg, gg, *args, horizon_units=52.0, discount_rate_per_unit=0.002)
    assert np.all(discounted > 0)
    assert np.all(discounted < undiscounted)
    # Discounting the whole 52 weeks at the end is a lower bound.
    assert np.all(discounted >= undiscounted * 1.002**-52 - 1e-12)


# ----------------------------------------------------------------- edge cases


def test_summarize_ignores_later_transactions_and_collapses_same_day() -> None:
    transactions = [
        ("a", datetime(2024, 1, 1, 9), 10.0),
        ("a", datetime(2024, 1, 1, 17), 5.0),  # same day: one purchase of 15
        ("a", date(2024, 1, 8), 20.0),
        ("a", datetime(2024, 1, 15, 8), 4.0),
        ("a", datetime(2024, 1, 15, 12), 6.0),  # same day as the previous: 10
        ("a", date(2024, 2, 1), 999.0),  # after observation_end
        ("b", date(2024, 1, 29), 7.0),
        ("c", date(2024, 2, 2), 1.0),  # first purchase after observation_end: not a customer yet
    ]
    summary = summarize(transactions, observation_end=date(2024, 1, 29))
    assert summary.customer_ids == ["a", "b"]
    np.testing.assert_allclose(summary.frequency, [2, 0])
    np.testing.assert_allclose(summary.recency, [2.0, 0.0])
    np.testing.assert_allclose(summary.T, [4.0, 0.0])
    np.testing.assert_allclose(summary.monetary_value, [(20.0 + 10.0) / 2, 0.0])
    with pytest.raises(ValueError):
        summary.frequency[0] = 5  # read-only, like the frozen dataclass


def test_summarize_datetime_observation_end_is_an_instant() -> None:
    transactions = [("a", datetime(2024, 1, 1, 9), 1.0), ("a", datetime(2024, 1, 3, 18), 1.0)]
    before = summarize(transactions, observation_end=datetime(2024, 1, 3, 12), time_unit_days=1.0)
    after = summarize(transactions, observation_end=datetime(2024, 1, 3, 23), time_unit_days=1.0)
    assert before.frequency[0] == 0 and after.frequency[0] == 1
    assert before.T[0] == after.T[0] == 2.0


def test_empty_input() -> None:
    empty = summarize([], observation_end=date(2024, 1, 1))
    assert len(empty) == 0 and empty.frequency.shape == (0,)
    with pytest.raises(ValueError, match="empty"):
        fit_bgnbd(empty.frequency, empty.recency, empty.T)
    with pytest.raises(ValueError, match="empty"):
        fit_gamma_gamma([], [])


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="time_unit_days"):
        summarize([], observation_end=date(2024, 1, 1), time_unit_days=0)
    with pytest.raises(ValueError, match="recency must not exceed T"):
        fit_bgnbd([1, 2], [5.0, 30.0], [10.0, 20.0])
    with pytest.raises(ValueError, match="same length"):
        fit_bgnbd([1, 2], [5.0], [10.0, 20.0])
    with pytest.raises(ValueError, match="NaN"):
        fit_bgnbd([1, np.nan], [5.0, 1.0], [10.0, 20.0])
    with pytest.raises(ValueError, match="whole numbers"):
        fit_bgnbd([0.5], [1.0], [2.0])
    with pytest.raises(ValueError, match="no customer has a repeat purchase"):
        fit_bgnbd([0, 0, 0], [0, 0, 0], [10.0, 20.0, 30.0])


def test_gamma_gamma_needs_repeat_buyers() -> None:
    with pytest.raises(ValueError, match="frequency > 0"):
        fit_gamma_gamma([0, 0, 0], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="frequency > 0"):
        fit_gamma_gamma([2, 3], [0.0, -5.0])  # refunds only: no positive spend


def test_degenerate_bgnbd_fit_is_reported() -> None:
    # One customer cannot identify four parameters: refused before any optimisation.
    with pytest.raises(ValueError, match="same history"):
        fit_bgnbd([1], [5.0], [10.0])
    # Two histories cannot either: the likelihood has no interior maximum.
    with pytest.raises(ValueError, match="degenerate"):
        fit_bgnbd([1, 2], [5.0, 6.0], [10.0, 10.0])


def test_bgnbd_recovers_simulated_parameters() -> None:
    """Fit data drawn from the model itself (fixed seed), including many frequency-0 customers."""
    rng = np.random.default_rng(7)
    n, horizon = 5000, 52.0
    r, alpha, a, b = 0.5, 3.0, 0.8, 2.5
    rates = rng.gamma(r, 1 / alpha, n)
    dropout = rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / rates[i])
            if t > horizon:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < dropout[i]:
                break
    fit = fit_bgnbd(x, t_x, np.full(n, horizon))
    assert (x == 0).mean() > 0.2
    assert fit.r == pytest.approx(r, rel=0.15)
    assert fit.alpha == pytest.approx(alpha, rel=0.2)
    assert fit.a == pytest.approx(a, rel=0.3)
    assert fit.b == pytest.approx(b, rel=0.3)
