"""Customer lifetime value: BG/NBD purchase counts and Gamma-Gamma spend.

Pure numerical code (numpy/scipy, no database, no web) so it can be unit-tested
against the published CDNOW figures and reused by batch jobs.

Models
------
* BG/NBD -- Fader, Hardie & Lee (2005), "Counting your customers the easy way:
  an alternative to the Pareto/NBD model", Marketing Science 24(2). While alive a
  customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
  every purchase they drop out with probability p ~ Beta(a, b).
* Gamma-Gamma -- Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves
  for customer base analysis", JMR 42(4), and Hardie's note "The Gamma-Gamma model
  of monetary value". Transaction values z ~ Gamma(p, nu), nu ~ Gamma(q, v),
  assumed independent of the purchase process.

Both are fitted by maximum likelihood with scipy.optimize (L-BFGS-B on the log of
the parameters, with analytic gradients). The maths follows the papers and the
`lifetimes` package; no code is taken from it.

Conventions: ``frequency`` is the number of repeat purchases (distinct purchase
days minus one), ``recency`` the time from first to last purchase and ``T`` the
time from first purchase to the end of the observation period, all in the same
time unit (weeks by default, see :func:`summarize`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

FloatArray = NDArray[np.float64]

__all__ = [
    "MODELS",
    "BGNBDParams",
    "GammaGammaParams",
    "HoldoutComparison",
    "MBGNBDParams",
    "ParetoNBDParams",
    "PurchaseParams",
    "RFMSummary",
    "bgnbd_expected_purchases",
    "bgnbd_prob_alive",
    "compare_on_holdout",
    "customer_lifetime_value",
    "expected_purchases",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "fit_mbgnbd",
    "fit_pareto_nbd",
    "fit_purchase_model",
    "gamma_gamma_expected_spend",
    "mbgnbd_expected_purchases",
    "mbgnbd_prob_alive",
    "pareto_nbd_expected_purchases",
    "pareto_nbd_prob_alive",
    "prob_alive",
    "summarize",
]

# Parameters are optimised as log(theta). The box keeps exp() finite; an optimum on
# the box means the likelihood keeps improving as a parameter runs to 0 or infinity,
# i.e. the data cannot identify the model, which we report instead of returning
# meaningless numbers.
_LOG_BOUND = 25.0
_BOUND_SLACK = 1e-3
# Gradient tolerance on the mean negative log-likelihood per log-parameter: at
# this level the parameters are far more precise than their standard errors.
_GTOL = 1e-5
# |log theta| beyond this (theta outside ~[3e-7, 3e6]) in a run that did not
# converge is read as "running off to 0/infinity" rather than a numerical hiccup.
_LOG_DRIFT = 15.0
# Work budget of one fit, in objective evaluations (each one a pass over the distinct
# customer histories). A well-posed fit of any of the models here needs a few dozen; a
# degenerate one chases a parameter towards 0 or infinity and would otherwise keep a
# derivative-free fallback busy for tens of thousands of steps.
# (CDNOW's fits take 16-30.)
_LBFGS_MAX_EVALUATIONS = 200
_NELDER_MEAD_MAX_EVALUATIONS = 400
# Consecutive iterations beyond _LOG_DRIFT after which a run is taken to be running away.
_DRIFT_ITERATIONS = 10


# --------------------------------------------------------------------------- RFM


def _readonly(values: ArrayLike) -> FloatArray:
    arr = np.array(values, dtype=np.float64).reshape(-1)  # copy: callers keep their arrays
    # The dataclass is frozen; make the arrays match so a summary cannot be
    # altered behind the back of code that already used it.
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class RFMSummary:
    """Per-customer recency/frequency/monetary summary, aligned with ``customer_ids``.

    Attributes:
        frequency: repeat purchases, i.e. distinct purchase days minus 1.
        recency: time between first and last purchase day.
        T: time between first purchase day and the end of the observation period.
        monetary_value: mean of the repeat purchase-day totals (the first day is
            excluded, as the Gamma-Gamma model expects); 0 when frequency == 0.
        customer_ids: customer ids in order of first appearance in the input.
    """

    frequency: FloatArray
    recency: FloatArray
    T: FloatArray
    monetary_value: FloatArray
    customer_ids: list[Hashable]

    def __post_init__(self) -> None:
        # Accept any array-like, store read-only float arrays (the dataclass is
        # frozen, so bypass its __setattr__ once here).
        for name in ("frequency", "recency", "T", "monetary_value"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "customer_ids", list(self.customer_ids))
        arrays = (self.frequency, self.recency, self.T, self.monetary_value, self.customer_ids)
        if len({len(values) for values in arrays}) != 1:
            raise ValueError("RFMSummary fields must all have one entry per customer")

    def __len__(self) -> int:
        return len(self.customer_ids)


def _day(value: date) -> int:
    """Calendar-day ordinal; purchases are compared and collapsed per day."""
    if isinstance(value, datetime):  # datetime subclasses date: test it first
        return value.date().toordinal()
    if isinstance(value, date):
        return value.toordinal()
    raise TypeError(f"expected a date or datetime, got {type(value).__name__}")


def _on_or_before(ts: date, end: date, end_day: int) -> bool:
    # Two datetimes compare to the instant; anything involving a plain date
    # compares whole calendar days (a date means "that whole day").
    if isinstance(ts, datetime) and isinstance(end, datetime):
        return ts <= end
    return _day(ts) <= end_day


def summarize(
    transactions: Iterable[tuple[Hashable, datetime | date, float]],
    *,
    observation_end: datetime | date,
    time_unit_days: float = 7.0,
) -> RFMSummary:
    """Build the RFM summary of ``(customer_id, timestamp, amount)`` transactions.

    Purchases on the same calendar day are one purchase (amounts summed), because
    the models count purchase occasions and multi-line baskets or split orders would
    otherwise inflate frequency. Transactions after ``observation_end`` are ignored,
    so customers whose first purchase is later do not appear at all.

    Times are whole calendar days divided by ``time_unit_days``: ``T`` is
    ``observation_end``'s date minus the first purchase date. For example first
    purchase 1997-01-01 and ``observation_end`` 1997-09-30 give T = 272 / 7 = 38.86
    weeks (this is how the BG/NBD paper's CDNOW data are coded). Pass the day after
    the last observed day to count that last day in full.

    Returns an empty summary when there are no transactions in the window.
    """
    if not time_unit_days > 0 or not math.isfinite(time_unit_days):
        raise ValueError(f"time_unit_days must be a positive number, got {time_unit_days!r}")
    end_day = _day(observation_end)

    # customer -> {day ordinal: total amount}; dicts keep first-appearance order.
    days_by_customer: dict[Hashable, dict[int, float]] = {}
    for customer_id, ts, amount in transactions:
        if not _on_or_before(ts, observation_end, end_day):
            continue
        amount = float(amount)
        if not math.isfinite(amount):
            raise ValueError(f"non-finite amount {amount!r} for customer {customer_id!r}")
        days = days_by_customer.setdefault(customer_id, {})
        day = _day(ts)
        days[day] = days.get(day, 0.0) + amount

    n = len(days_by_customer)
    frequency = np.zeros(n)
    recency = np.zeros(n)
    age = np.zeros(n)
    monetary = np.zeros(n)
    for i, days in enumerate(days_by_customer.values()):
        ordered = sorted(days)
        first, last = ordered[0], ordered[-1]
        frequency[i] = len(ordered) - 1
        recency[i] = (last - first) / time_unit_days
        age[i] = (end_day - first) / time_unit_days
        if len(ordered) > 1:
            monetary[i] = sum(days[d] for d in ordered[1:]) / (len(ordered) - 1)

    return RFMSummary(
        frequency=frequency,
        recency=recency,
        T=age,
        monetary_value=monetary,
        customer_ids=list(days_by_customer),
    )


# ------------------------------------------------------------------ validation


def _as_1d(name: str, values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:  # a single customer passed as scalars
        arr = arr.reshape(1)
    elif arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _rfm_arrays(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = _as_1d("frequency", frequency)
    t_x = _as_1d("recency", recency)
    age = _as_1d("T", T)
    if not (len(x) == len(t_x) == len(age)):
        raise ValueError(
            f"frequency, recency and T must have the same length, got {len(x)}, {len(t_x)}, {len(age)}"
        )
    if np.any(x < 0) or np.any(t_x < 0):
        raise ValueError("frequency and recency must be non-negative")
    if np.any(x != np.floor(x)):
        # BG/NBD counts purchases; fractional x would also put Beta(a+1, b+x-1)
        # outside its domain for small b.
        raise ValueError("frequency must be whole numbers of repeat purchases")
    # Small tolerance: recency and T are often computed from floats separately.
    if np.any(t_x > age * (1 + 1e-9) + 1e-12):
        raise ValueError("recency must not exceed T (check the observation period end)")
    return x, t_x, age


def _horizon(t: ArrayLike) -> FloatArray:
    horizon = np.asarray(t, dtype=np.float64)
    if np.any(~np.isfinite(horizon)) or np.any(horizon < 0):
        raise ValueError("t must be non-negative and finite")
    return horizon


def _check_params(**params: float) -> None:
    for name, value in params.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"model parameter {name} must be positive and finite, got {value!r}")


# -------------------------------------------------------------------- fitting


def _fit_log_params(
    objective: Callable[[FloatArray], tuple[float, FloatArray]],
    x0: FloatArray,
    names: tuple[str, ...],
    model: str,
) -> FloatArray:
    """Minimise ``objective(log_params) -> (value, gradient)``; return log-params.

    L-BFGS-B with the analytic gradient. It can stop with a line-search failure
    right at the optimum, where float noise dominates the tiny steps, so success
    is judged by the gradient, not by the optimiser's status; if the gradient is
    not small, Nelder-Mead (derivative-free) gets a second try -- unless the first
    run already drifted far towards 0 or infinity, which is the answer (a
    degenerate likelihood), not a reason to search longer. Both runs have a
    bounded number of evaluations, so a hopeless fit fails in well under a second.
    """
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(x0)

    def converged(z: FloatArray) -> bool:
        value, grad = objective(z)
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            return False
        # Projected gradient: on the box a component pushing outwards is not a
        # failure to converge (the degenerate case is reported separately below).
        grad = np.where((z <= -_LOG_BOUND + _BOUND_SLACK) & (grad > 0), 0.0, grad)
        grad = np.where((z >= _LOG_BOUND - _BOUND_SLACK) & (grad < 0), 0.0, grad)
        return bool(np.max(np.abs(grad)) < _GTOL)

    drifting = [0]

    def stop_when_drifting(intermediate_result: Any) -> None:
        # Iterates that stay far out are chasing a maximum at 0 or infinity: stop chasing.
        far = np.any(np.abs(intermediate_result.x) > _LOG_DRIFT)
        drifting[0] = drifting[0] + 1 if far else 0
        if drifting[0] >= _DRIFT_ITERATIONS:
            raise StopIteration

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            callback=stop_when_drifting,
            options={"maxiter": _LBFGS_MAX_EVALUATIONS, "maxfun": _LBFGS_MAX_EVALUATIONS,
                     "ftol": 1e-14, "gtol": 1e-9},
        )
        best = np.asarray(res.x, dtype=np.float64)
        messages = f"L-BFGS-B: {res.message}"
        ok = converged(best)
        drifted = bool(np.all(np.isfinite(best)) and np.any(np.abs(best) > _LOG_DRIFT))
        if not ok and not drifted:
            drifting[0] = 0
            nm = minimize(
                getattr(objective, "value", None) or (lambda z: objective(z)[0]),
                best if np.all(np.isfinite(best)) else x0,
                method="Nelder-Mead",
                bounds=bounds,
                callback=stop_when_drifting,
                options={"maxfev": _NELDER_MEAD_MAX_EVALUATIONS, "xatol": 1e-10, "fatol": 1e-14},
            )
            best = np.asarray(nm.x, dtype=np.float64)
            messages += f"; Nelder-Mead: {nm.message}"
            ok = converged(best)

    # A converged optimum on the box, or a failed run drifting far out along a
    # flat direction, both mean the likelihood has no interior maximum.
    extreme = np.abs(best) > (_LOG_BOUND - _BOUND_SLACK if ok else _LOG_DRIFT)
    if np.any(extreme):
        which = ", ".join(n for n, hit in zip(names, extreme) if hit)
        raise ValueError(
            f"{model} fit is degenerate: {which} ran towards 0 or infinity, so the data do not "
            "identify the model (too few customers or repeat purchases?)"
        )
    if not ok:
        raise ValueError(
            f"{model} maximum-likelihood fit did not converge ({messages}); check the input "
            "or set a small penalizer"
        )
    return best


def _distinct_histories(
    x: FloatArray, t_x: FloatArray, age: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The distinct (x, t_x, T) rows and how many customers share each.

    Every customer with the same history adds the same term to the likelihood, so
    the fit runs over distinct histories with weights. Histories in whole days
    repeat a lot: a workspace of a million customers has far fewer distinct rows,
    and a degenerate one (everybody alike) has a handful.
    """
    order = np.lexsort((age, t_x, x))  # np.unique(axis=0) sorts rows as bytes, far slower
    xs, ts, ages = x[order], t_x[order], age[order]
    starts = np.flatnonzero(np.r_[True, (np.diff(xs) != 0) | (np.diff(ts) != 0) | (np.diff(ages) != 0)])
    counts = np.diff(np.r_[starts, len(xs)]).astype(np.float64)
    return xs[starts], ts[starts], ages[starts], counts


def _check_identifiable(model: str, x: FloatArray, t_x: FloatArray, age: FloatArray) -> None:
    """Refuse, before any optimisation, data that cannot identify a purchase model.

    Each of these made the likelihood's maximum run off to 0 or infinity, which
    the optimiser can only discover by chasing it; the messages say what is wrong
    with the data instead.
    """
    if len(x) == 0:
        raise ValueError(f"cannot fit {model} on an empty customer set")
    repeat = x > 0
    if not np.any(repeat):
        # Without a single repeat purchase the dropout process is not identified
        # and r runs to 0: there is no maximum to find.
        raise ValueError(f"cannot fit {model}: no customer has a repeat purchase (all frequency == 0)")
    if not np.any(age > 0):
        raise ValueError(
            f"cannot fit {model}: every customer's first purchase is at the end of the observation "
            "period (T == 0), so nobody has been observed for any time"
        )
    if np.all(t_x[repeat] >= age[repeat]):
        raise ValueError(
            f"cannot fit {model}: every repeat buyer bought again at the very end of the observation "
            "period, so nothing shows how customers drop out (is the observation end the last order?)"
        )
    if np.all(x == x[0]) and np.all(t_x == t_x[0]) and np.all(age == age[0]):
        raise ValueError(
            f"cannot fit {model}: all {len(x)} customers have the same history (frequency {x[0]:g}, "
            f"recency {t_x[0]:g}, T {age[0]:g}), which cannot separate purchase rates from dropout"
        )


def _mean_objective(
    terms: Callable[[FloatArray, FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    x: FloatArray,
    t_x: FloatArray,
    age: FloatArray,
    weights: FloatArray,
    penalizer: float,
    loglik: Callable[[FloatArray, FloatArray, FloatArray, FloatArray], FloatArray] | None = None,
) -> Callable[[FloatArray], tuple[float, FloatArray]]:
    """Weighted mean negative log-likelihood plus the L2 penalty, and its gradient.

    With ``loglik`` (the log-likelihood alone, for a model whose gradient is costly) the
    returned function also has a ``value`` attribute for derivative-free steps.
    """
    total = float(weights.sum())

    def value(log_params: FloatArray) -> float:
        assert loglik is not None
        result = -float(weights @ loglik(log_params, x, t_x, age)) / total + penalizer * np.sum(np.exp(log_params) ** 2)
        return float(result) if np.isfinite(result) else np.inf

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = terms(log_params, x, t_x, age)
        theta = np.exp(log_params)
        value = -float(weights @ ll) / total + penalizer * np.sum(theta**2)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(log_params)
        return float(value), -(weights @ grad) / total + 2.0 * penalizer * theta**2

    if loglik is not None:
        objective.value = value  # type: ignore[attr-defined]
    return objective


def _check_penalizer(penalizer: float) -> None:
    if not (penalizer >= 0 and math.isfinite(penalizer)):
        raise ValueError(f"penalizer must be a non-negative number, got {penalizer!r}")


# --------------------------------------------------------------------- BG/NBD


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout ~ Beta(a, b).

    ``log_likelihood`` is the total (unpenalised) log-likelihood of the fitted data.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


def _bgnbd_loglik_terms(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-customer log-likelihood and its gradient w.r.t. the log-parameters.

    Paper eq. (6):  L = Gamma(r+x) alpha^r / Gamma(r) * [ B(a, b+x)/B(a, b) (alpha+T)^-(r+x)
                       + 1{x>0} B(a+1, b+x-1)/B(a, b) (alpha+t_x)^-(r+x) ]
    The bracket is summed in log space (logaddexp) because both terms underflow
    for heavy buyers; customers with x = 0 only have the first term.
    """
    r, alpha, a, b = np.exp(log_params)
    rx = r + x
    repeat = x > 0
    # For x == 0 the second term does not exist; use a harmless x to avoid
    # evaluating Beta(a+1, b-1) at a possibly negative argument.
    x2 = np.where(repeat, x, 1.0)

    log_a1 = betaln(a, b + x) - betaln(a, b) - rx * np.log(alpha + age)
    log_a2 = np.where(
        repeat,
        betaln(a + 1, b + x2 - 1) - betaln(a, b) - rx * np.log(alpha + t_x),
        -np.inf,
    )
    log_bracket = np.logaddexp(log_a1, log_a2)
    ll = gammaln(rx) - gammaln(r) + r * np.log(alpha) + log_bracket

    # d(log_bracket) = w1 d(log_a1) + w2 d(log_a2), with w the normalised weights.
    w1 = np.exp(log_a1 - log_bracket)
    w2 = 1.0 - w1
    dig_ab, dig_a, dig_b = digamma(a + b), digamma(a), digamma(b)
    dig_abx = digamma(a + b + x)
    d_r = digamma(rx) - digamma(r) + np.log(alpha) - w1 * np.log(alpha + age) - w2 * np.log(alpha + t_x)
    d_alpha = r / alpha - w1 * rx / (alpha + age) - w2 * rx / (alpha + t_x)
    d_a = w1 * (dig_ab - dig_abx) + w2 * (digamma(a + 1) - dig_a + dig_ab - dig_abx)
    d_b = w1 * (digamma(b + x) - dig_b + dig_ab - dig_abx) + w2 * (
        digamma(b + x2 - 1) - dig_b + dig_ab - dig_abx
    )
    # Chain rule for theta = exp(log theta).
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b], axis=1)
    return ll, grad


def fit_bgnbd(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, penalizer: float = 0.0
) -> BGNBDParams:
    """Fit the BG/NBD model by maximum likelihood.

    Minimises the mean negative log-likelihood plus ``penalizer * sum(params**2)``
    (the `lifetimes` convention: the mean keeps the penalty's weight independent
    of the number of customers). Customers with frequency 0 are fine.

    Raises:
        ValueError: empty or inconsistent input, data that cannot identify the
            model (see ``_check_identifiable``), non-convergence, or a degenerate
            optimum (a parameter running to 0 or infinity).
    """
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    _check_penalizer(penalizer)
    _check_identifiable("BG/NBD", x, t_x, age)
    ux, ut_x, uage, weights = _distinct_histories(x, t_x, age)
    objective = _mean_objective(_bgnbd_loglik_terms, ux, ut_x, uage, weights, penalizer)

    # Start: r = 1 and alpha such that r/alpha is the observed repeat rate
    # (slightly high-biased, alpha stays well scaled whatever the time unit);
    # a = b = 1 is a flat prior on the dropout probability.
    rate = max(float(x.sum()) / float(age.sum()), 1e-6)
    x0 = np.log(np.array([1.0, 1.0 / rate, 1.0, 1.0]))
    log_params = _fit_log_params(objective, x0, ("r", "alpha", "a", "b"), "BG/NBD")
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    ll, _ = _bgnbd_loglik_terms(log_params, ux, ut_x, uage)
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=float(weights @ ll))


def _bgnbd_dead_odds_log(
    params: BGNBDParams, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """log of  1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x);  -inf when x == 0.

    This is the odds of "dropped out after the last purchase" vs "still alive"
    (paper eq. 13). Kept in log space since it overflows for frequent buyers who
    have been silent for long.
    """
    repeat = x > 0
    x2 = np.where(repeat, x, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_odds = (
            np.log(params.a)
            - np.log(params.b + x2 - 1)
            + (params.r + x2) * (np.log(params.alpha + age) - np.log(params.alpha + t_x))
        )
    return np.where(repeat, log_odds, -np.inf)


def bgnbd_prob_alive(
    params: BGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(customer still alive at T | x, t_x, T), paper eq. (13).

    Customers with no repeat purchase are alive with probability 1 under BG/NBD
    (dropout can only happen right after a purchase) -- a known model property.
    """
    _check_params(r=params.r, alpha=params.alpha, a=params.a, b=params.b)
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    # 1 / (1 + odds) == exp(-log(1 + odds))
    return np.exp(-np.logaddexp(0.0, _bgnbd_dead_odds_log(params, x, t_x, age)))


def bgnbd_expected_purchases(
    params: BGNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """E[purchases in (T, T+t] | x, t_x, T], paper eq. (10).

    ``t`` is a scalar or an array broadcastable against the customers. Uses the
    Euler transformation 2F1(a', b'; c; z) = (1-z)^(c-a'-b') 2F1(c-a', c-b'; c; z),
    so that

        ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)
            = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),   z = t/(alpha+T+t):

    the right-hand side has no power of (r+x) and no 2F1 argument growing with x,
    so it stays accurate for heavy buyers where the direct form overflows.
    """
    _check_params(r=params.r, alpha=params.alpha, a=params.a, b=params.b)
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    horizon = _horizon(t)
    r, alpha, b = params.r, params.alpha, params.b
    # eq. (10) has a removable singularity at a == 1; step off it (relative
    # error of the result ~1e-8, far below the estimation error of a).
    a = params.a if abs(params.a - 1.0) > 1e-8 else 1.0 + 1e-8

    z = horizon / (alpha + age + horizon)
    c = a + b + x - 1
    transformed = np.power(1.0 - z, a - 1) * hyp2f1(a + b - 1 - r, a - 1, c, z)
    numerator = c / (a - 1) * (1.0 - transformed)
    expected = numerator * np.exp(-np.logaddexp(0.0, _bgnbd_dead_odds_log(params, x, t_x, age)))
    # t == 0 gives exactly 0 mathematically; clip float dust around it.
    return np.maximum(expected, 0.0)


# ---------------------------------------------------------------- MBG/NBD


@dataclass(frozen=True)
class MBGNBDParams:
    """Fitted modified BG/NBD parameters (Batislam, Denizel & Filiztekin 2007).

    As BG/NBD, but a customer may also drop out right after the first purchase, so
    one-time buyers are not all alive: purchase rate ~ Gamma(r, alpha), dropout
    probability ~ Beta(a, b) at every purchase including the first.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


def _mbgnbd_loglik_terms(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-customer log-likelihood and gradient w.r.t. the log-parameters.

    L = Gamma(r+x) alpha^r / Gamma(r) * [ B(a, b+x+1)/B(a, b) (alpha+T)^-(r+x)
                                         + B(a+1, b+x)/B(a, b) (alpha+t_x)^-(r+x) ]
    (alive at T after x+1 purchases, or dropped out right after the last one; the
    second term exists for x = 0 too, unlike BG/NBD).
    """
    r, alpha, a, b = np.exp(log_params)
    rx = r + x
    log_a1 = betaln(a, b + x + 1) - betaln(a, b) - rx * np.log(alpha + age)
    log_a2 = betaln(a + 1, b + x) - betaln(a, b) - rx * np.log(alpha + t_x)
    log_bracket = np.logaddexp(log_a1, log_a2)
    ll = gammaln(rx) - gammaln(r) + r * np.log(alpha) + log_bracket

    w1 = np.exp(log_a1 - log_bracket)
    w2 = 1.0 - w1
    dig_ab, dig_a, dig_b = digamma(a + b), digamma(a), digamma(b)
    dig_abx1 = digamma(a + b + x + 1)
    d_r = digamma(rx) - digamma(r) + np.log(alpha) - w1 * np.log(alpha + age) - w2 * np.log(alpha + t_x)
    d_alpha = r / alpha - w1 * rx / (alpha + age) - w2 * rx / (alpha + t_x)
    d_a = w1 * (dig_ab - dig_abx1) + w2 * (digamma(a + 1) - dig_a + dig_ab - dig_abx1)
    d_b = w1 * (digamma(b + x + 1) - dig_b + dig_ab - dig_abx1) + w2 * (
        digamma(b + x) - dig_b + dig_ab - dig_abx1
    )
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b], axis=1)
    return ll, grad


def fit_mbgnbd(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, penalizer: float = 0.0
) -> MBGNBDParams:
    """Fit the modified BG/NBD model by maximum likelihood (same conventions as
    :func:`fit_bgnbd`)."""
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    _check_penalizer(penalizer)
    _check_identifiable("MBG/NBD", x, t_x, age)
    ux, ut_x, uage, weights = _distinct_histories(x, t_x, age)
    objective = _mean_objective(_mbgnbd_loglik_terms, ux, ut_x, uage, weights, penalizer)
    rate = max(float(x.sum()) / float(age.sum()), 1e-6)
    x0 = np.log(np.array([1.0, 1.0 / rate, 1.0, 1.0]))
    log_params = _fit_log_params(objective, x0, ("r", "alpha", "a", "b"), "MBG/NBD")
    r, alpha, a, b = (float(v) for v in np.exp(log_params))
    ll, _ = _mbgnbd_loglik_terms(log_params, ux, ut_x, uage)
    return MBGNBDParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=float(weights @ ll))


def _mbgnbd_dead_odds_log(params: MBGNBDParams, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    """log of  a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x): odds of "dropped out after the last
    purchase" against "alive", for every customer (one-time buyers included)."""
    return (
        np.log(params.a) - np.log(params.b + x)
        + (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + t_x))
    )


def mbgnbd_prob_alive(
    params: MBGNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(alive at T | x, t_x, T) under MBG/NBD; below 1 for one-time buyers too."""
    _check_params(r=params.r, alpha=params.alpha, a=params.a, b=params.b)
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    return np.exp(-np.logaddexp(0.0, _mbgnbd_dead_odds_log(params, x, t_x, age)))


def mbgnbd_expected_purchases(
    params: MBGNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """E[purchases in (T, T+t] | x, t_x, T] under MBG/NBD:

        (a+b+x)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; z)] P(alive),

    z = t/(alpha+T+t), computed through the same Euler transformation as BG/NBD:
    the bracket's product equals (1-z)^(a-1) 2F1(a+b-r, a-1; a+b+x; z).
    """
    _check_params(r=params.r, alpha=params.alpha, a=params.a, b=params.b)
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    horizon = _horizon(t)
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a if abs(params.a - 1.0) > 1e-8 else 1.0 + 1e-8  # removable singularity, as BG/NBD
    z = horizon / (alpha + age + horizon)
    c = a + b + x
    transformed = np.power(1.0 - z, a - 1) * hyp2f1(a + b - r, a - 1, c, z)
    expected = c / (a - 1) * (1.0 - transformed) * np.exp(
        -np.logaddexp(0.0, _mbgnbd_dead_odds_log(params, x, t_x, age))
    )
    return np.maximum(expected, 0.0)


# ------------------------------------------------------------------ Pareto/NBD


@dataclass(frozen=True)
class ParetoNBDParams:
    """Fitted Pareto/NBD parameters (Schmittlein, Morrison & Colombo 1987).

    While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha);
    their lifetime is exponential with rate mu ~ Gamma(s, beta), so dropout can
    happen at any time, not only right after a purchase.
    """

    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float


def _pareto_log_a0(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> FloatArray:
    """log A0 of Fader & Hardie's "A note on deriving the Pareto/NBD model" (2005), eq. (22):

        A0 = F(t_x) - F(T),  F(y) = 2F1(r+s+x, k; r+s+x+1; |alpha-beta|/(m+y)) / (m+y)^(r+s+x)

    with m = max(alpha, beta), k = s+1 when alpha >= beta and r+x otherwise (so the 2F1
    argument stays in [0, 1)). The difference is taken in log space; A0 = 0 (log -inf) when
    t_x == T.
    """
    rsx = r + s + x
    if alpha >= beta:
        m, k = alpha, s + 1.0
    else:
        m, k = beta, r + x
    gap = abs(alpha - beta)
    log_f_tx = np.log(hyp2f1(rsx, k, rsx + 1.0, gap / (m + t_x))) - rsx * np.log(m + t_x)
    log_f_age = np.log(hyp2f1(rsx, k, rsx + 1.0, gap / (m + age))) - rsx * np.log(m + age)
    with np.errstate(divide="ignore"):
        return log_f_tx + np.log1p(-np.exp(np.minimum(log_f_age - log_f_tx, 0.0)))


def _pareto_loglik(log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    """Per-customer log-likelihood (Fader & Hardie's note, eq. 22):

    L = Gamma(r+x) alpha^r beta^s / Gamma(r) * [ 1 / ((alpha+T)^(r+x) (beta+T)^s) + s/(r+s+x) A0 ]
    """
    r, alpha, s, beta = (float(v) for v in np.exp(log_params))
    alive = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
    dead = np.log(s) - np.log(r + s + x) + _pareto_log_a0(r, alpha, s, beta, x, t_x, age)
    return gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + np.logaddexp(alive, dead)


# Central differences in log-parameter space: the 2F1 in the likelihood has no
# closed-form derivative in its parameters. With this step the gradient is good to
# ~1e-9, far below the optimiser's tolerance.
_FD_STEP = 1e-6


def _pareto_loglik_terms(
    log_params: FloatArray, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> tuple[FloatArray, FloatArray]:
    ll = _pareto_loglik(log_params, x, t_x, age)
    grad = np.empty((len(x), len(log_params)))
    for i in range(len(log_params)):
        step = np.zeros_like(log_params)
        step[i] = _FD_STEP
        grad[:, i] = (_pareto_loglik(log_params + step, x, t_x, age)
                      - _pareto_loglik(log_params - step, x, t_x, age)) / (2 * _FD_STEP)
    return ll, grad


def fit_pareto_nbd(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, penalizer: float = 0.0
) -> ParetoNBDParams:
    """Fit the Pareto/NBD model by maximum likelihood (same conventions as :func:`fit_bgnbd`)."""
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    _check_penalizer(penalizer)
    _check_identifiable("Pareto/NBD", x, t_x, age)
    ux, ut_x, uage, weights = _distinct_histories(x, t_x, age)
    objective = _mean_objective(_pareto_loglik_terms, ux, ut_x, uage, weights, penalizer, loglik=_pareto_loglik)
    # Start: purchase rate as for BG/NBD; mean lifetime beta/s of about the
    # observation span, a well-scaled guess whatever the time unit.
    rate = max(float(x.sum()) / float(age.sum()), 1e-6)
    span = max(float(age.mean()), 1e-6)
    x0 = np.log(np.array([1.0, 1.0 / rate, 1.0, span]))
    log_params = _fit_log_params(objective, x0, ("r", "alpha", "s", "beta"), "Pareto/NBD")
    r, alpha, s, beta = (float(v) for v in np.exp(log_params))
    ll = _pareto_loglik(log_params, ux, ut_x, uage)
    return ParetoNBDParams(r=r, alpha=alpha, s=s, beta=beta, log_likelihood=float(weights @ ll))


def _pareto_log_alive(params: ParetoNBDParams, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    log_odds = (
        np.log(s) - np.log(r + s + x) + (r + x) * np.log(alpha + age) + s * np.log(beta + age)
        + _pareto_log_a0(r, alpha, s, beta, x, t_x, age)
    )
    return -np.logaddexp(0.0, log_odds)


def pareto_nbd_prob_alive(
    params: ParetoNBDParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(alive at T | x, t_x, T) = 1 / (1 + s/(r+s+x) (alpha+T)^(r+x) (beta+T)^s A0)."""
    _check_params(r=params.r, alpha=params.alpha, s=params.s, beta=params.beta)
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    return np.exp(_pareto_log_alive(params, x, t_x, age))


def pareto_nbd_expected_purchases(
    params: ParetoNBDParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """E[purchases in (T, T+t] | x, t_x, T] (Schmittlein et al. 1987; Fader & Hardie's note):

        (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)] P(alive),

    whose s -> 1 limit is (r+x)/(alpha+T) (beta+T) log(1 + t/(beta+T)) P(alive).
    """
    _check_params(r=params.r, alpha=params.alpha, s=params.s, beta=params.beta)
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    horizon = _horizon(t)
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    u = np.log1p(horizon / (beta + age))
    # [1 - (1+t/(beta+T))^(1-s)] / (s-1) = -expm1(-(s-1) u) / (s-1)
    lifetime = -np.expm1(-(s - 1.0) * u) / (s - 1.0) if abs(s - 1.0) > 1e-10 else u
    expected = (r + x) / (alpha + age) * (beta + age) * lifetime * np.exp(_pareto_log_alive(params, x, t_x, age))
    return np.maximum(expected, 0.0)


# ------------------------------------------------------------ one interface

PurchaseParams = BGNBDParams | MBGNBDParams | ParetoNBDParams

# Model keys, as the API names them.
MODELS: dict[str, str] = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}
_FITTERS: dict[str, Callable[..., PurchaseParams]] = {
    "bgnbd": fit_bgnbd, "mbgnbd": fit_mbgnbd, "pareto_nbd": fit_pareto_nbd,
}


def model_key(params: PurchaseParams) -> str:
    if isinstance(params, BGNBDParams):
        return "bgnbd"
    if isinstance(params, MBGNBDParams):
        return "mbgnbd"
    if isinstance(params, ParetoNBDParams):
        return "pareto_nbd"
    raise TypeError(f"not a purchase model's parameters: {type(params).__name__}")


def params_of(model: str, values: dict[str, float], log_likelihood: float) -> PurchaseParams:
    """Rebuild fitted parameters from their stored form (``dataclasses.asdict`` minus the
    log-likelihood)."""
    if model == "bgnbd":
        return BGNBDParams(r=values["r"], alpha=values["alpha"], a=values["a"], b=values["b"],
                           log_likelihood=log_likelihood)
    if model == "mbgnbd":
        return MBGNBDParams(r=values["r"], alpha=values["alpha"], a=values["a"], b=values["b"],
                            log_likelihood=log_likelihood)
    if model == "pareto_nbd":
        return ParetoNBDParams(r=values["r"], alpha=values["alpha"], s=values["s"], beta=values["beta"],
                               log_likelihood=log_likelihood)
    raise ValueError(f"unknown purchase model {model!r}; expected one of {', '.join(MODELS)}")


def fit_purchase_model(
    model: str, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, *, penalizer: float = 0.0
) -> PurchaseParams:
    """Fit ``model`` (a key of :data:`MODELS`)."""
    if model not in _FITTERS:
        raise ValueError(f"unknown purchase model {model!r}; expected one of {', '.join(MODELS)}")
    return _FITTERS[model](frequency, recency, T, penalizer=penalizer)


def prob_alive(params: PurchaseParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(alive at T) under whichever model ``params`` belong to."""
    if isinstance(params, BGNBDParams):
        return bgnbd_prob_alive(params, frequency, recency, T)
    if isinstance(params, MBGNBDParams):
        return mbgnbd_prob_alive(params, frequency, recency, T)
    return pareto_nbd_prob_alive(params, frequency, recency, T)


def expected_purchases(
    params: PurchaseParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """E[purchases in (T, T+t]] under whichever model ``params`` belong to."""
    if isinstance(params, BGNBDParams):
        return bgnbd_expected_purchases(params, t, frequency, recency, T)
    if isinstance(params, MBGNBDParams):
        return mbgnbd_expected_purchases(params, t, frequency, recency, T)
    return pareto_nbd_expected_purchases(params, t, frequency, recency, T)


# ------------------------------------------------------- calibration/holdout


@dataclass(frozen=True)
class HoldoutComparison:
    """Predicted against actual repeat purchases in a holdout period, per customer group.

    Customers are those of the calibration period; ``groups`` splits them by their
    calibration frequency (0, 1, ..., ``top``+) as the BG/NBD paper's Figure 4 does.
    ``mae`` and ``rmse`` are per customer; ``total_error`` is (predicted - actual) / actual
    over everyone.
    """

    holdout_units: float
    customers: int
    actual: float
    predicted: float
    total_error: float | None
    mae: float
    rmse: float
    groups: list[dict[str, float | int | str]]


def compare_on_holdout(
    params: PurchaseParams,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    holdout_purchases: ArrayLike,
    *,
    holdout_units: float,
    top: int = 7,
) -> HoldoutComparison:
    """Score a calibration-period fit on the holdout period that follows it.

    ``holdout_purchases`` are each calibration customer's purchases (distinct days)
    in the holdout, which lasts ``holdout_units`` for everyone.
    """
    x, t_x, age = _rfm_arrays(frequency, recency, T)
    actual = _as_1d("holdout_purchases", holdout_purchases)
    if len(actual) != len(x):
        raise ValueError("holdout_purchases must have one entry per calibration customer")
    if not (math.isfinite(holdout_units) and holdout_units > 0):
        raise ValueError(f"holdout_units must be positive, got {holdout_units!r}")
    with np.errstate(all="ignore"):
        predicted = expected_purchases(params, holdout_units, x, t_x, age)
    if not np.all(np.isfinite(predicted)):
        raise ValueError("the model's holdout predictions are not finite")
    groups: list[dict[str, float | int | str]] = []
    for k in range(top + 1):
        members = x >= k if k == top else x == k
        n = int(members.sum())
        if n:
            groups.append({
                "frequency": f"{k}+" if k == top else str(k),
                "customers": n,
                "actual_mean": float(actual[members].mean()),
                "predicted_mean": float(predicted[members].mean()),
            })
    total_actual, total_predicted = float(actual.sum()), float(predicted.sum())
    return HoldoutComparison(
        holdout_units=float(holdout_units),
        customers=len(x),
        actual=total_actual,
        predicted=total_predicted,
        total_error=(total_predicted - total_actual) / total_actual if total_actual > 0 else None,
        mae=float(np.abs(predicted - actual).mean()),
        rmse=float(np.sqrt(((predicted - actual) ** 2).mean())),
        groups=groups,
    )


# ---------------------------------------------------------------- Gamma-Gamma


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters: z ~ Gamma(p, nu), nu ~ Gamma(q, v).

    The population mean transaction value is ``p * v / (q - 1)`` (finite for q > 1).
    ``log_likelihood`` is the total (unpenalised) log-likelihood over the customers
    actually used in the fit (frequency > 0 and monetary value > 0).
    """

    p: float
    q: float
    v: float
    log_likelihood: float

    @property
    def population_mean(self) -> float:
        return self.p * self.v / (self.q - 1) if self.q > 1 else math.inf


def _gg_loglik_terms(
    log_params: FloatArray, x: FloatArray, m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-customer log-likelihood of the mean spend m over x transactions, and gradient.

    f(m | p, q, v, x) = Gamma(px+q) / (Gamma(px) Gamma(q)) v^q m^(px-1) x^(px) / (v + x m)^(px+q)
    """
    p, q, v = np.exp(log_params)
    px = p * x
    log_vxm = np.log(v + x * m)
    ll = (
        gammaln(px + q) - gammaln(px) - gammaln(q)
        + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * log_vxm
    )
    dig = digamma(px + q)
    d_p = x * (dig - digamma(px) + np.log(m) + np.log(x) - log_vxm)
    d_q = dig - digamma(q) + np.log(v) - log_vxm
    d_v = q / v - (px + q) / (v + x * m)
    grad = np.stack([d_p * p, d_q * q, d_v * v], axis=1)
    return ll, grad


def _gg_arrays(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = _as_1d("frequency", frequency)
    m = _as_1d("monetary_value", monetary_value)
    if len(x) != len(m):
        raise ValueError(f"frequency and monetary_value must have the same length, got {len(x)}, {len(m)}")
    if np.any(x < 0):
        raise ValueError("frequency must be non-negative")
    return x, m


def fit_gamma_gamma(
    frequency: ArrayLike, monetary_value: ArrayLike, *, penalizer: float = 0.0
) -> GammaGammaParams:
    """Fit the Gamma-Gamma spend model by maximum likelihood.

    Only customers with at least one repeat purchase and a positive mean repeat
    spend carry information (and the density needs m > 0); the others are
    skipped. The model assumes spend is independent of frequency -- check
    ``np.corrcoef(frequency, monetary_value)`` on those customers before relying on it.

    Raises:
        ValueError: empty input, no customer with frequency > 0 and positive spend,
            non-convergence, or a degenerate optimum.
    """
    x, m = _gg_arrays(frequency, monetary_value)
    if len(x) == 0:
        raise ValueError("cannot fit Gamma-Gamma on an empty customer set")
    if not (penalizer >= 0 and math.isfinite(penalizer)):
        raise ValueError(f"penalizer must be a non-negative number, got {penalizer!r}")
    usable = (x > 0) & (m > 0)
    if not np.any(usable):
        raise ValueError(
            "Gamma-Gamma needs customers with repeat purchases (frequency > 0) and a positive "
            "monetary value; none were given"
        )
    x, m = x[usable], m[usable]

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        ll, grad = _gg_loglik_terms(log_params, x, m)
        theta = np.exp(log_params)
        value = -ll.mean() + penalizer * np.sum(theta**2)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(log_params)
        return float(value), -grad.mean(axis=0) + 2.0 * penalizer * theta**2

    # Start: p = 1, q = 2 and v = mean spend, so the implied population mean
    # p*v/(q-1) equals the observed mean and v carries the currency scale.
    x0 = np.log(np.array([1.0, 2.0, float(m.mean())]))
    log_params = _fit_log_params(objective, x0, ("p", "q", "v"), "Gamma-Gamma")
    p, q, v = (float(val) for val in np.exp(log_params))
    ll, _ = _gg_loglik_terms(log_params, x, m)
    return GammaGammaParams(p=p, q=q, v=v, log_likelihood=float(ll.sum()))


def gamma_gamma_expected_spend(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
) -> FloatArray:
    """E[mean transaction value | x, m_x] = p (v + x m_x) / (p x + q - 1).

    This is a weighted average of the population mean p v / (q - 1) and the
    customer's own mean m_x, the weight on m_x growing with x (shrinkage).
    Customers with frequency 0 get the population mean; that requires q > 1.
    """
    _check_params(p=params.p, q=params.q, v=params.v)
    x, m = _gg_arrays(frequency, monetary_value)
    m = np.where(x > 0, m, 0.0)  # m_x carries no weight when x == 0; ignore whatever was passed
    denominator = params.p * x + params.q - 1
    if np.any(denominator <= 0):
        raise ValueError(
            f"expected spend is undefined where p*x + q <= 1 (q = {params.q:.4g}: the population "
            "mean spend is infinite), e.g. for customers without repeat purchases"
        )
    return params.p * (params.v + x * m) / denominator


# ------------------------------------------------------------------------ CLV


def customer_lifetime_value(
    bg: PurchaseParams,
    gg: GammaGammaParams,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    *,
    horizon_units: float,
    discount_rate_per_unit: float = 0.0,
    steps: int | None = None,
) -> FloatArray:
    """Expected discounted spend over the next ``horizon_units`` time units.

    The horizon is cut into ``steps`` equal periods (default: one per whole time
    unit). For period k ending at t_k, the expected purchases
    E[Y(t_k)] - E[Y(t_{k-1})] are multiplied by the Gamma-Gamma expected spend
    and discounted by (1 + discount_rate_per_unit) ** -t_k, as `lifetimes`'
    ``customer_lifetime_value`` does (there with a monthly rate and monthly steps).
    Cash is thus assumed to arrive at the end of each period.
    """
    if not (math.isfinite(horizon_units) and horizon_units > 0):
        raise ValueError(f"horizon_units must be positive, got {horizon_units!r}")
    if not (math.isfinite(discount_rate_per_unit) and discount_rate_per_unit > -1):
        raise ValueError(f"discount_rate_per_unit must be > -1, got {discount_rate_per_unit!r}")
    n_steps = max(1, math.ceil(horizon_units - 1e-9)) if steps is None else steps
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")

    spend = gamma_gamma_expected_spend(gg, frequency, monetary_value)
    ends = horizon_units * np.arange(1, n_steps + 1) / n_steps
    # Cumulative expected purchases at every step end, shape (steps, customers).
    cumulative = expected_purchases(bg, ends[:, None], frequency, recency, T)
    per_step = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1.0 + discount_rate_per_unit) ** -ends
    return np.asarray((discount[:, None] * per_step).sum(axis=0) * spend, dtype=np.float64)
