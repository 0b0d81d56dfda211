from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Aggregation = Literal["count", "sum", "avg", "min", "max", "first", "last", "most_frequent", "distinct"]

# Lower snake case: starts with a letter, words of [a-z0-9] joined by single underscores.
NAME_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"

ORDER_TRAITS = ("order_count", "total_revenue", "average_order_value", "first_order_at", "last_order_at")
RFM_TRAITS = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_code", "rfm_tier")
CLV_TRAITS = ("probability_alive", "expected_orders_90d", "expected_orders_365d", "expected_spend", "clv_365d")
BUILT_IN_TRAITS = frozenset(ORDER_TRAITS + RFM_TRAITS + CLV_TRAITS)


def _check_name(name: str | None) -> str | None:
    if name is not None and name in BUILT_IN_TRAITS:
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


class ClvFitRequest(BaseModel):
    """Which order history to fit the CLV models on; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    calibration_start: date | None = Field(
        default=None, examples=["1997-01-01"], description="Ignore orders before this day (UTC)."
    )
    calibration_end: date | None = Field(
        default=None, examples=["1997-09-30"],
        description="Last day (UTC) of the calibration period, included; T is counted in whole days up to it. "
        "Default: the day of `as_of`.",
    )
    as_of: datetime | None = Field(
        default=None, description="When profiles are scored (their history up to then). Default: now."
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


class BgNbdParams(BaseModel):
    """BG/NBD: purchase rate ~ Gamma(r, alpha) per week, dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


class GammaGammaParams(BaseModel):
    """Gamma-Gamma: order value ~ Gamma(p, nu), nu ~ Gamma(q, v); fitted on repeat customers."""

    p: float
    q: float
    v: float
    log_likelihood: float


class ClvModelPublic(BaseModel):
    """A workspace's fitted CLV models (time unit: weeks; repeat purchases counted per distinct day)."""

    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams | None = Field(
        description="null when no customer had a repeat purchase with a positive amount."
    )
    customer_count: int = Field(description="Customers in the calibration period.")
    repeat_customer_count: int = Field(description="Of them, customers with a repeat purchase.")
    calibration_start: date | None
    calibration_end: date
    fitted_at: datetime
