from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.pagination import CursorPage

FeedbackType = Literal["impression", "click", "accept", "decline", "convert"]
Target = Literal["click", "accept", "convert"]


class Identifier(BaseModel):
    """An identifier of the person, normalised as at ingest."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, examples=["email"])
    value: str = Field(min_length=1, max_length=1000, examples=["jane@example.com"])


class DecisionRequest(BaseModel):
    """Ask what to offer a person in a placement. Give `profile_id` or `identifier`."""

    model_config = ConfigDict(extra="forbid")

    profile_id: uuid.UUID | None = None
    identifier: Identifier | None = None
    placement: str = Field(min_length=1, max_length=128, examples=["home-banner"])
    context: dict[str, Any] = Field(default_factory=dict, description="Free JSON kept in the ledger (page, device...).")
    count: int | None = Field(default=None, ge=1, le=20, description="Offers wanted; at most the placement's max_offers.")
    explain: bool = Field(default=False, description="Also list every excluded candidate and why.")
    explore: bool = Field(
        default=True,
        description="false: no exploration and no control group; the best-scoring offers (for evaluation).",
    )

    @model_validator(mode="after")
    def _who(self) -> DecisionRequest:
        if (self.profile_id is None) == (self.identifier is None):
            raise ValueError("give exactly one of profile_id and identifier")
        return self


class ChosenOffer(BaseModel):
    """An offer the decision returns, in rank order."""

    offer_id: uuid.UUID
    name: str
    rank: int = Field(description="1 for the first slot.")
    score: float | None = Field(description="propensity x value x weight (null for a fallback).")
    propensity: float | None
    value: float
    probability: float = Field(
        description="Chance this offer was chosen for this slot under the policy that chose it (given the "
        "earlier slots), control group included. Use 1/probability to weight outcomes off-policy."
    )
    content: dict[str, Any]


class Exclusion(BaseModel):
    """A candidate offer the decision left out, and why."""

    offer_id: uuid.UUID
    name: str
    reason: Literal["paused", "outside_validity", "not_eligible", "capped", "no_consent", "no_purchase_to_complement"]
    detail: str
    rule_nodes: list[str] | None = Field(default=None, description="not_eligible: JSON pointers of the false rule nodes.")
    cap: str | None = Field(default=None, description="capped: which cap.")
    consent: dict[str, Any] | None = Field(default=None, description="no_consent: the consent check relied on.")


class DecisionPublic(BaseModel):
    """The answer: ranked offers (or the placement's fallback), and what it rests on."""

    decision_id: uuid.UUID
    profile_id: uuid.UUID
    placement: str | None
    channel: str | None
    offers: list[ChosenOffer]
    model_version: int | None = Field(description="The propensity model version that scored (null: priors only).")
    control: bool = Field(description="This decision is in the control group.")
    fallback: bool = Field(default=False, description="No offer was eligible; this is the placement's fallback.")
    exclusions: list[Exclusion] | None = Field(default=None, description="With explain: every excluded candidate.")
    consent: list[dict[str, Any]] = Field(default_factory=list, description="The consent checks relied on.")
    created_at: datetime


class FeedbackPublic(BaseModel):
    """What a person did with an offer of a decision."""

    model_config = ConfigDict(from_attributes=True)

    offer_id: uuid.UUID
    type: FeedbackType
    value: float | None
    source: str
    message_id: str | None = None
    occurred_at: datetime


class DecisionRecord(DecisionPublic):
    """A decision from the ledger, with the candidates it scored and the feedback since."""

    context: dict[str, Any]
    candidates: list[dict[str, Any]]
    policy: dict[str, Any]
    imported: bool
    feedback: list[FeedbackPublic]


class DecisionPage(CursorPage[DecisionRecord]):
    """A person's decisions, newest first."""


class FeedbackCreate(BaseModel):
    """What the person did with an offer of this decision."""

    model_config = ConfigDict(extra="forbid")

    offer_id: uuid.UUID
    type: FeedbackType = Field(examples=["click"])
    value: float | None = Field(default=None, ge=-1e12, le=1e12, description="e.g. the order's revenue for convert.")
    occurred_at: datetime | None = None


class ImportResult(BaseModel):
    """What an import did; bad lines are reported and skipped, never fatal to their neighbours."""

    imported: int
    duplicates: int
    feedback: int
    rejected: list[dict[str, Any]] = Field(description="line (1-based), code, detail")


class TrainJobPublic(BaseModel):
    """A training run of the propensity models (and the item associations)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ModelPublic(BaseModel):
    """One trained version: its target, training metrics on the time-based holdout, per-offer kinds."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    target: Target
    metrics: dict[str, Any]
    trained_at: datetime
    active: bool = Field(description="The version decisions use (the latest).")


class Recommendation(BaseModel):
    """An item and its score (higher is better)."""

    item_id: str
    score: float


class RecommendationList(BaseModel):
    """Items for a person, from co-purchases with what they bought (recent purchases count most)."""

    profile_id: uuid.UUID
    items: list[Recommendation]
