"""BG/NBD + Gamma-Gamma maths, checked against the published CDNOW figures.

Reference figures (CDNOW 1/10 sample, 2,357 customers, 39-week calibration):
  BG/NBD  r=0.243 alpha=4.414 a=0.793 b=2.426 LL=-9582.4, and E[Y(39) | x=2,
          t_x=30.43, T=38.86] = 1.226  (Fader, Hardie & Lee 2005, Marketing Science)
  Gamma-Gamma p=6.25 q=3.74 v=15.44 on the 946 repeat buyers  (Fader, Hardie & Lee
          2005, JMR; Hardie, "The Gamma-Gamma model of monetary value")
  Pareto/NBD r=0.553 alpha=10.578 s=0.606 beta=11.669 LL=-9595.0  (Fader & Hardie, "A note
          on implementing the Pareto/NBD model in MATLAB", 2005)
and, for the modified BG/NBD (no published CDNOW fit) and the whole 78 weeks, the `lifetimes`
library 0.11.3 (numpy 1.24, scipy 1.10, pandas 1.5) on the same data, computed once offline with
`summary_data_from_transaction_data(..., freq="D", freq_multiplier=7)` and its fitters.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest
from scipy.special import hyp2f1

from app.traits import clv as clv_module
from app.traits.clv import (
    MODELS,
    BGNBDParams,
    GammaGammaParams,
    MBGNBDParams,
    ParetoNBDParams,
    RFMSummary,
    bgnbd_expected_purchases,
    bgnbd_prob_alive,
    compare_on_holdout,
    customer_lifetime_value,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    fit_purchase_model,
    gamma_gamma_expected_spend,
    mbgnbd_expected_purchases,
    params_of,
    pareto_nbd_expected_purchases,
    prob_alive,
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


# ------------------------------------------- MBG/NBD and Pareto/NBD: references

WHOLE_END = date(1998, 6, 30)  # the last purchase day in the file: weeks 1..78
# lifetimes 0.11.3: fitted parameters, and for sample ids 1, 2, 3, 100, 1516 (x = 3, 1, 0, 1, 41
# over 78 weeks; 2, 1, 0, 1, 26 over 39) P(alive) and E[purchases in the next 39 weeks].
LIFETIMES = {
    (WHOLE_END, "bgnbd"): (
        {"r": 0.25356104359918297, "alpha": 5.447251837074499, "a": 0.6073660515644056, "b": 2.6472346803200373},
        [0.6611192848216465, 0.16744845480274645, 1.0, 0.5426690757477812, 0.9345628467190399],
        [0.9240880572748356, 0.09182707015468373, 0.11293766136072725, 0.2995227157151425, 17.54422168727332],
    ),
    (WHOLE_END, "mbgnbd"): (
        {"r": 0.6178433835703616, "alpha": 8.656959152457842, "a": 0.5515250603185984, "b": 1.0090591706720198},
        [0.6302757923135355, 0.1053495991561239, 0.3061555639738356, 0.43049793552701454, 0.9423009033879145],
        [0.9388169869740506, 0.07086480681265259, 0.07951315180109969, 0.29136599545666375, 17.34521795272415],
    ),
    (WHOLE_END, "pareto_nbd"): (
        {"r": 0.5630114324354722, "alpha": 12.559288585579003, "s": 0.4080700170422258, "beta": 10.512094222876057},
        [0.7281896118663708, 0.10211064398305192, 0.26480525180454956, 0.48218244518471276, 0.9673271481462024],
        [1.0349444507189212, 0.06366320741936085, 0.05947016630906433, 0.30240489003499904, 17.448001832992997],
    ),
    (CALIBRATION_END, "bgnbd"): (
        {"r": 0.2425945434210672, "alpha": 4.413602716077373, "a": 0.7929218333478439, "b": 2.425905728721631},
        [0.726620297788256, 0.2123910243493672, 1.0, 0.6469924176400688, 0.9688544473027234],
        [1.2259944296717151, 0.2034188276052977, 0.19479364221264212, 0.6268530191592023, 20.748903903930266],
    ),
    (CALIBRATION_END, "mbgnbd"): (
        {"r": 0.524842903149598, "alpha": 6.183081764399279, "a": 0.8913595172711999, "b": 1.6140029311982655},
        [0.7061384907953513, 0.1709510803310356, 0.38972310430883694, 0.6172211290481301, 0.9654846449716143],
        [1.2627588401713274, 0.18894488774744078, 0.15396600986397643, 0.6896350425260604, 19.446608437929456],
    ),
    (CALIBRATION_END, "pareto_nbd"): (
        {"r": 0.5532648723468012, "alpha": 10.577423574388616, "s": 0.6062424011946382, "beta": 11.66859433133799},
        [0.8691333865611696, 0.16799331141745255, 0.29511041398989224, 0.7647212341554427, 0.9978733886624112],
        [1.4551992962889524, 0.1711109033718312, 0.10706753524639054, 0.7866781055343036, 20.114909587703597],
    ),
}
REFERENCE_IDS = [1, 2, 3, 100, 1516]


@pytest.fixture(scope="module")
def whole(cdnow_transactions: list[tuple[int, date, float]]) -> RFMSummary:
    return summarize(cdnow_transactions, observation_end=WHOLE_END)


def _period(end: date, calibration: RFMSummary, whole: RFMSummary) -> RFMSummary:
    return calibration if end == CALIBRATION_END else whole


@pytest.mark.parametrize("end,model", list(LIFETIMES))
def test_fits_match_lifetimes(end: date, model: str, calibration: RFMSummary, whole: RFMSummary) -> None:
    summary = _period(end, calibration, whole)
    fitted = fit_purchase_model(model, summary.frequency, summary.recency, summary.T)
    expected, _, _ = LIFETIMES[(end, model)]
    for name, value in expected.items():
        # lifetimes stops Nelder-Mead at a looser tolerance; 1e-3 is far inside the standard errors.
        assert getattr(fitted, name) == pytest.approx(value, rel=1e-3), (name, fitted)


@pytest.mark.parametrize("end,model", list(LIFETIMES))
def test_predictions_equal_lifetimes_given_its_parameters(
    end: date, model: str, calibration: RFMSummary, whole: RFMSummary
) -> None:
    summary = _period(end, calibration, whole)
    values, alive, expected_39 = LIFETIMES[(end, model)]
    params = params_of(model, values, 0.0)
    i = [summary.customer_ids.index(c) for c in REFERENCE_IDS]
    x, t_x, T = summary.frequency[i], summary.recency[i], summary.T[i]
    np.testing.assert_allclose(prob_alive(params, x, t_x, T), alive, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(expected_purchases(params, 39.0, x, t_x, T), expected_39, rtol=1e-9)


def test_pareto_nbd_matches_the_published_fit(calibration: RFMSummary) -> None:
    fitted = fit_purchase_model("pareto_nbd", calibration.frequency, calibration.recency, calibration.T)
    assert isinstance(fitted, ParetoNBDParams)
    for name, value in {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}.items():
        assert _within(getattr(fitted, name), value, rel=0.002), fitted
    assert fitted.log_likelihood == pytest.approx(-9594.98, abs=0.01)


def test_mbgnbd_gives_one_time_buyers_a_chance_of_being_gone(calibration: RFMSummary) -> None:
    x, t_x, T = calibration.frequency, calibration.recency, calibration.T
    fitted = fit_purchase_model("mbgnbd", x, t_x, T)
    assert isinstance(fitted, MBGNBDParams)
    alive = prob_alive(fitted, x, t_x, T)
    assert np.all((alive > 0) & (alive < 1))
    # BG/NBD's P(alive) = 1 for every one-time buyer, whatever their silence; MBG/NBD's falls with it.
    young, old = prob_alive(fitted, [0, 0], [0.0, 0.0], [2.0, 38.0])
    assert 0 < old < young < 1


def test_mbgnbd_expected_purchases_equal_the_literal_formula(calibration: RFMSummary) -> None:
    x, t_x, T = calibration.frequency, calibration.recency, calibration.T
    p = MBGNBDParams(r=0.525, alpha=6.183, a=0.891, b=1.614, log_likelihood=0.0)
    for t in (1.0, 39.0, 78.0):
        z = t / (p.alpha + T + t)
        literal = (
            (p.a + p.b + x) / (p.a - 1)
            * (1 - hyp2f1(p.r + x, p.b + x + 1, p.a + p.b + x, z) * ((p.alpha + T) / (p.alpha + t + T)) ** (p.r + x))
            / (1 + p.a / (p.b + x) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x))
        )
        np.testing.assert_allclose(mbgnbd_expected_purchases(p, t, x, t_x, T), literal, rtol=1e-9)


def test_pareto_expected_purchases_are_continuous_at_s_1() -> None:
    args = (39.0, [0, 3, 20], [0.0, 20.0, 37.0], [38.0, 38.0, 38.0])
    at_one = pareto_nbd_expected_purchases(ParetoNBDParams(0.55, 10.6, 1.0, 11.7, 0.0), *args)
    near = pareto_nbd_expected_purchases(ParetoNBDParams(0.55, 10.6, 1.0 + 1e-7, 11.7, 0.0), *args)
    np.testing.assert_allclose(at_one, near, rtol=1e-6)
    assert np.all(at_one > 0)


def test_mbgnbd_gradient_matches_finite_differences(calibration: RFMSummary) -> None:
    x, t_x, T = calibration.frequency, calibration.recency, calibration.T
    z = np.log(np.array([0.5, 6.0, 0.9, 1.6]))
    _, grad = clv_module._mbgnbd_loglik_terms(z, x, t_x, T)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6
        numeric = (clv_module._mbgnbd_loglik_terms(z + step, x, t_x, T)[0]
                   - clv_module._mbgnbd_loglik_terms(z - step, x, t_x, T)[0]) / 2e-6
        np.testing.assert_allclose(grad[:, i], numeric, rtol=1e-5, atol=1e-7)


def test_holdout_comparison_on_cdnow(
    cdnow_transactions: list[tuple[int, date, float]], bg: BGNBDParams, calibration: RFMSummary
) -> None:
    later: dict[int, set[date]] = {}
    for customer, day, _ in cdnow_transactions:
        if day > CALIBRATION_END:
            later.setdefault(customer, set()).add(day)
    actual = [len(later.get(c, ())) for c in calibration.customer_ids]
    result = compare_on_holdout(bg, calibration.frequency, calibration.recency, calibration.T, actual,
                                holdout_units=39.0)
    assert (result.customers, result.actual) == (2357, 1882)
    assert result.predicted == pytest.approx(1653.4, abs=0.1)  # the paper's Figure 3 total
    assert result.total_error == pytest.approx((1653.4 - 1882) / 1882, abs=1e-4)
    assert [g["frequency"] for g in result.groups] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(g["customers"] for g in result.groups) == 2357
    zero = result.groups[0]
    assert zero["customers"] == 1411 and zero["actual_mean"] == pytest.approx(0.237, abs=1e-3)
    assert zero["predicted_mean"] == pytest.approx(0.225, abs=1e-3)
    assert 0 < result.mae < result.rmse


# ------------------------------------------------- degenerate data fails fast

_BUDGET = clv_module._LBFGS_MAX_EVALUATIONS + clv_module._NELDER_MEAD_MAX_EVALUATIONS + 3
_TERMS = {"bgnbd": "_bgnbd_loglik_terms", "mbgnbd": "_mbgnbd_loglik_terms", "pareto_nbd": "_pareto_loglik"}


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Each model's likelihood evaluations, as the number of histories each one read."""
    calls: dict[str, list[int]] = {model: [] for model in MODELS}
    for model, name in _TERMS.items():
        original = getattr(clv_module, name)

        def counting(log_params, x, t_x, age, _original=original, _calls=calls[model]):  # noqa: ANN001
            _calls.append(len(x))
            return _original(log_params, x, t_x, age)

        monkeypatch.setattr(clv_module, name, counting)
    return calls


@pytest.mark.parametrize("model", list(MODELS))
def test_degenerate_data_is_refused_before_any_optimisation(model: str, evaluations: dict[str, list[int]]) -> None:
    n = 50_000
    cases = [
        ((np.full(n, 2.0), np.full(n, 10.0), np.full(n, 30.0)), "all 50000 customers have the same history"),
        ((np.r_[np.zeros(n - 9), np.arange(1.0, 10.0)], np.r_[np.zeros(n - 9), np.full(9, 30.0)], np.full(n, 30.0)),
         "every repeat buyer bought again at the very end"),
        ((np.zeros(n), np.zeros(n), np.full(n, 30.0)), "no customer has a repeat purchase"),
        ((np.zeros(n), np.zeros(n), np.zeros(n)), "no customer has a repeat purchase"),
        ((np.r_[np.zeros(n - 1), 1.0], np.zeros(n), np.zeros(n)), "T == 0"),
    ]
    for (x, t_x, T), message in cases:
        with pytest.raises(ValueError, match=message):
            fit_purchase_model(model, x, t_x, T)
    assert evaluations[model] == []


@pytest.mark.parametrize("model", list(MODELS))
def test_a_likelihood_without_a_maximum_fails_within_the_evaluation_budget(
    model: str, evaluations: dict[str, list[int]]
) -> None:
    """50,000 customers of two kinds: the optimum runs off to 0 or infinity. Once this took
    minutes (tens of thousands of derivative-free steps over every customer); now the work is
    bounded in evaluations, and each evaluation reads the two distinct histories only."""
    n = 50_000
    x = np.r_[np.ones(n // 2), np.full(n // 2, 2.0)]
    t_x = np.r_[np.full(n // 2, 5.0), np.full(n // 2, 6.0)]
    with pytest.raises(ValueError, match="degenerate|did not converge"):
        fit_purchase_model(model, x, t_x, np.full(n, 10.0))
    calls = evaluations[model]
    # A Pareto/NBD step with a gradient costs 9 evaluations (central differences).
    per_step = 9 if model == "pareto_nbd" else 1
    assert 0 < len(calls) <= _BUDGET * per_step
    assert len(calls) <= 200 * per_step  # in practice: about 40-70 steps
    assert set(calls) == {2}
