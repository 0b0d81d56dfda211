from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Aggregation = Literal["count", "sum", "avg", "min", "max", "first", "last", "most_frequent", "distinct"]

# Lower snake case: starts with a letter, words of [a-z0-9] joined by single underscores.
NAME_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"

ORDER_TRAITS = ("order_count", "total_revenue", "average_order_value", "first_order_at", "last_order_at")
RFM_TRAITS = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_code", "rfm_tier")
# CLV traits: two per customer, and two per horizon of the fit (`expected_orders_<N>d`, `clv_<N>d`).
CLV_BASE_TRAITS = ("probability_alive", "expected_spend")
DEFAULT_CLV_HORIZONS_DAYS = (90, 365)
CLV_HORIZON_PATTERN = re.compile(r"^(expected_orders|clv)_[0-9]+d$")
MAX_CLV_HORIZONS = 8


def clv_trait_names(horizons_days: Sequence[int]) -> tuple[str, ...]:
    """The CLV traits a model with these horizons writes."""
    return CLV_BASE_TRAITS + tuple(
        f"{prefix}_{days}d" for days in horizons_days for prefix in ("expected_orders", "clv")
    )


CLV_TRAITS = clv_trait_names(DEFAULT_CLV_HORIZONS_DAYS)
BUILT_IN_TRAITS = frozenset(ORDER_TRAITS + RFM_TRAITS + CLV_TRAITS)


def _check_name(name: str | None) -> str | None:
    if name is not None and (name in BUILT_IN_TRAITS or CLV_HORIZON_PATTERN.match(name)):
        raise ValueError(f"`{name}` is a built-in trait; choose another name")
    return name


class ComputedTraitCreate(BaseModel):
    """A computed trait: one aggregate of an event's property per profile, over a time window."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=64, pattern=NAME_PATTERN, examples=["orders_90d"],
        description="Lower snake case, unique in the workspace, not a built-in trait's name.",
    )
    aggregation: Aggregation = Field(
        examples=["count"],
        description="count: matching events (with `property`: events that have it). sum, avg, min, max: of the "
        "numeric values (numbers or numeric strings; others are skipped). first, last: the value on the "
        "earliest/latest event that has it. most_frequent: the commonest value (ties: the smallest). "
        "distinct: how many different values.",
    )
    event: str = Field(min_length=1, max_length=200, examples=["Order Completed"], description="The track event name.")
    property: str | None = Field(
        default=None, min_length=1, max_length=200, validate_default=True, examples=["revenue"],
        description="Top-level key of the event's properties. Required except for count.",
    )
    window_days: int | None = Field(
        default=None, ge=1, le=3650, examples=[90],
        description="Only events of the last N days (by event time, as of the refresh); null: all time.",
    )

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("property")
    @classmethod
    def _property_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        aggregation = info.data.get("aggregation")
        if value is None and aggregation is not None and aggregation != "count":
            raise ValueError(f"`{aggregation}` aggregates a property: give `property`")
        return value


class ComputedTraitUpdate(BaseModel):
    """Changes to a computed trait; the result is validated as a whole. Its values are dropped
    until the next refresh recomputes them under the new definition."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    aggregation: Aggregation | None = None
    event: str | None = Field(default=None, min_length=1, max_length=200)
    property: str | None = Field(default=None, min_length=1, max_length=200)
    window_days: int | None = Field(default=None, ge=1, le=3650)

    @field_validator("name", "aggregation", "event")
    @classmethod
    def _not_null(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Runs only for fields the client sent: absent means "unchanged", null is an error.
        if value is None:
            raise ValueError(f"`{info.field_name}` cannot be null")
        return _check_name(value) if info.field_name == "name" else value


class ComputedTraitPublic(BaseModel):
    """A computed trait definition."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(examples=["orders_90d"])
    aggregation: Aggregation
    event: str = Field(examples=["Order Completed"])
    property: str | None = Field(examples=["revenue"])
    window_days: int | None = Field(examples=[90], description="null: all time.")
    created_at: datetime
    updated_at: datetime


class ComputedTraitValuePublic(BaseModel):
    """A computed trait's value for one profile and when it was computed."""

    value: Any = Field(description="A number, string (timestamps: ISO 8601 UTC) or other JSON value.", examples=[3])
    computed_at: datetime


class ProfileComputedTraits(BaseModel):
    """Every computed trait of a profile, built-in and defined; absent means no matching events."""

    profile_id: uuid.UUID
    requested_id: uuid.UUID | None = Field(
        default=None, description="Set when the id asked for was merged into this profile."
    )
    computed_traits: dict[str, ComputedTraitValuePublic]


class RefreshJobPublic(BaseModel):
    """A refresh of the workspace's computed traits, run by the worker (or inline with `wait`)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    result: dict[str, Any] | None = Field(
        default=None, description="When done: profiles, values written and removed, CLV outcome, computed_at."
    )
    error: str | None = Field(default=None, description="When failed: why.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


ClvModelChoice = Literal["auto", "bgnbd", "mbgnbd", "pareto_nbd"]
ClvModelKey = Literal["bgnbd", "mbgnbd", "pareto_nbd"]


class ClvFitRequest(BaseModel):
    """How to fit the CLV models; every field is optional. The settings are stored with the model
    and every automatic refit reuses them (a field left out keeps its default rule, evaluated
    again at each refit)."""

    model_config = ConfigDict(extra="forbid")

    calibration_start: date | None = Field(
        default=None, examples=["1997-01-01"], description="Ignore orders before this day (UTC)."
    )
    calibration_end: date | None = Field(
        default=None, examples=["1997-09-30"],
        description="Last day (UTC) of the calibration period, included; T is counted in whole days up to it. "
        "Orders after it, up to the observation end, are the holdout period the models are compared on. "
        "Default: the day of the observation end (no holdout: the comparison then holds out the later half "
        "of the history, and the chosen model is refitted on all of it).",
    )
    as_of: datetime | None = Field(
        default=None, examples=["1998-06-30T23:59:59Z"],
        description="The observation end: profiles are scored on their history up to then. Default: the end "
        "(UTC) of the day of the workspace's latest order when that day is before today (an imported "
        "history), else now.",
    )
    model: ClvModelChoice = Field(
        default="auto", examples=["auto"],
        description="The purchase model: `bgnbd` (BG/NBD), `mbgnbd` (modified BG/NBD: one-time buyers can "
        "be gone too), `pareto_nbd` (Pareto/NBD), or `auto`: the one with the lowest per-customer error "
        "(RMSE) on the holdout period.",
    )
    horizons_days: list[int] = Field(
        default=list(DEFAULT_CLV_HORIZONS_DAYS), min_length=1, max_length=MAX_CLV_HORIZONS, examples=[[90, 273, 365]],
        description="Horizons, in days, of the traits `expected_orders_<N>d` and `clv_<N>d` (e.g. 273 = 39 weeks).",
    )

    @field_validator("calibration_end")
    @classmethod
    def _after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("calibration_start")
        if value is not None and start is not None and start > value:
            raise ValueError("calibration_end must not be before calibration_start")
        return value

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("as_of needs a time zone, e.g. 1997-09-30T23:59:59Z")
        return value

    @field_validator("horizons_days")
    @classmethod
    def _horizons(cls, value: list[int]) -> list[int]:
        if any(not 1 <= days <= 3650 for days in value):
            raise ValueError("each horizon must be between 1 and 3650 days")
        return sorted(set(value))


class PurchaseModelParams(BaseModel):
    """The purchase model's parameters (time unit: weeks). BG/NBD and MBG/NBD: purchase rate ~
    Gamma(r, alpha), dropout probability ~ Beta(a, b). Pareto/NBD: purchase rate ~ Gamma(r, alpha),
    dropout rate ~ Gamma(s, beta)."""

    r: float = Field(examples=[0.2536])
    alpha: float = Field(examples=[5.447])
    a: float | None = Field(default=None, examples=[0.607])
    b: float | None = Field(default=None, examples=[2.647])
    s: float | None = Field(default=None, examples=[None])
    beta: float | None = Field(default=None, examples=[None])


class GammaGammaParams(BaseModel):
    """Gamma-Gamma: order value ~ Gamma(p, nu), nu ~ Gamma(q, v); fitted on repeat customers."""

    p: float
    q: float
    v: float
    log_likelihood: float


class ClvHoldoutGroup(BaseModel):
    """Calibration customers with one number of repeat purchases (the last group: that many or more)."""

    frequency: str = Field(examples=["0", "7+"], description="Repeat purchases in the calibration period.")
    customers: int
    actual_mean: float = Field(description="Mean repeat purchases (distinct days) per customer in the holdout.")
    predicted_mean: float = Field(description="The model's mean prediction for the same customers.")


class ClvCandidate(BaseModel):
    """One model fitted on the comparison's calibration period and scored on its holdout."""

    model: ClvModelKey
    params: PurchaseModelParams | None = None
    log_likelihood: float | None = Field(default=None, description="On the comparison's calibration period.")
    actual: float | None = Field(default=None, description="Repeat purchases in the holdout, all customers.")
    predicted: float | None = None
    total_error: float | None = Field(default=None, description="(predicted - actual) / actual.")
    mae: float | None = Field(default=None, description="Mean absolute error per customer.")
    rmse: float | None = Field(default=None, description="Root-mean-square error per customer: the criterion.")
    groups: list[ClvHoldoutGroup] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why this model could not be fitted, if it could not.")
    whole_period_params: PurchaseModelParams | None = Field(
        default=None, description="`split` comparisons: the model refitted on the whole calibration period.",
    )
    whole_period_log_likelihood: float | None = None
    whole_period_error: str | None = Field(default=None, description="Why that refit failed, if it did.")


class ClvComparison(BaseModel):
    """Calibration/holdout comparison: each candidate fitted on the calibration period, its predicted
    repeat purchases in the holdout period set against what the customers then did."""

    method: Literal["holdout", "split"] = Field(
        description="`holdout`: the fit's own calibration and holdout periods; `split`: no holdout was set, so "
        "the later half of the history was held out for the comparison and the chosen model was then "
        "refitted on the whole calibration period.",
    )
    calibration_start: date | None
    calibration_end: date | None = Field(description="Last day of the comparison's calibration period.")
    holdout_end: date | None = Field(description="Last day of its holdout period.")
    holdout_days: int | None
    customers: int | None = Field(default=None, description="Calibration customers compared.")
    chosen: ClvModelKey
    reason: str = Field(examples=["lowest holdout RMSE per customer (0.993 against 1.018 and 1.003)"])
    candidates: list[ClvCandidate]


class ClvSettings(BaseModel):
    """A fit's settings as requested (null: the default rule, evaluated again at every refit)."""

    calibration_start: date | None = None
    calibration_end: date | None = None
    as_of: datetime | None = None
    model: ClvModelChoice = "auto"
    horizons_days: list[int] = Field(default_factory=lambda: list(DEFAULT_CLV_HORIZONS_DAYS))


class ClvModelPublic(BaseModel):
    """A workspace's fitted CLV models (time unit: weeks; repeat purchases counted per distinct day)
    and the period they cover."""

    model: ClvModelKey = Field(examples=["bgnbd"], description="The purchase model in use.")
    params: PurchaseModelParams
    log_likelihood: float = Field(description="The purchase model's, on its calibration period.")
    gamma_gamma: GammaGammaParams | None = Field(
        description="null when no customer had a repeat purchase with a positive amount."
    )
    customer_count: int = Field(description="Customers in the calibration period.")
    repeat_customer_count: int = Field(description="Of them, customers with a repeat purchase.")
    calibration_start: date | None = Field(description="First day of the calibration period (null: all history).")
    calibration_end: date = Field(description="Last day of the calibration period.")
    observation_end: datetime = Field(
        description="When customers were last scored from: their history up to here (the observation end)."
    )
    settings: ClvSettings = Field(description="What the fit was asked for; automatic refits reuse it.")
    traits: list[str] = Field(
        examples=[["probability_alive", "expected_spend", "expected_orders_90d", "clv_90d"]],
        description="The computed traits this model writes on profiles.",
    )
    comparison: ClvComparison | None = Field(
        description="How the purchase model was chosen and how well it predicted a holdout period."
    )
    fitted_at: datetime
