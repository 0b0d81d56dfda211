from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Channel = Literal["email", "sms", "direct_mail", "push", "web", "ads"]
OfferKind = Literal["standard", "complementary_item"]
Exploration = Literal["epsilon_greedy", "thompson", "off"]
ControlMode = Literal["random", "none"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.:\-]{0,127}$"


class Caps(BaseModel):
    """How often an offer may be served; every cap is optional. Served offers count as impressions."""

    model_config = ConfigDict(extra="forbid")

    per_profile_per_day: int | None = Field(default=None, ge=0, le=1_000_000, description="Per person and UTC day.")
    per_profile_per_week: int | None = Field(default=None, ge=0, le=1_000_000, description="Per person and ISO week.")
    per_profile_total: int | None = Field(default=None, ge=0, le=1_000_000, description="Per person, ever.")
    total: int | None = Field(default=None, ge=0, le=1_000_000_000, description="Across everyone, ever.")


class OfferFields(BaseModel):
    """The fields of an offer."""

    model_config = ConfigDict(extra="forbid")

    content: dict[str, Any] = Field(
        default_factory=dict, description="Free JSON for the channel to render.",
        examples=[{"headline": "10% off socks", "code": "SOCKS10"}],
    )
    channels: list[Channel] = Field(min_length=1, max_length=8, examples=[["email", "web"]])
    placements: list[str] = Field(
        default_factory=list, max_length=50,
        description="Names of the placements it may fill; empty: any placement on one of its channels.",
    )
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    eligibility: dict[str, Any] | None = Field(
        default=None, description="A segment rule, or {\"segment\": id}; absent: everyone.",
        examples=[{"all": [{"trait": "plan", "op": "eq", "value": "pro"}]}],
    )
    value: float = Field(default=1.0, ge=0, le=1e9, description="Margin or weight of an acceptance.")
    weight: float = Field(default=1.0, ge=0, le=1e6, description="Business lever multiplied into the score.")
    priority: int = Field(default=0, ge=-1000, le=1000, description="Breaks ties between equal scores (higher first).")
    prior_propensity: float | None = Field(
        default=None, gt=0, lt=1, description="Expected response rate before any feedback (cold start)."
    )
    caps: Caps = Field(default_factory=Caps)
    tags: list[str] = Field(default_factory=list, max_length=50)
    paused: bool = False
    kind: OfferKind = Field(
        default="standard",
        description="`complementary_item`: the content is completed with the item most associated with the "
        "person's last purchase (`content.item_id`); not eligible for people with no purchase.",
    )


class OfferCreate(OfferFields):
    """An offer in the catalog."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME, examples=["socks-10pct"])

    @model_validator(mode="after")
    def _window(self) -> OfferCreate:
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be earlier than valid_until")
        return self


class OfferUpdate(BaseModel):
    """Fields to change; absent fields keep their value (send null to clear an optional one)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME)
    content: dict[str, Any] | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=8)
    placements: list[str] | None = Field(default=None, max_length=50)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    eligibility: dict[str, Any] | None = None
    value: float | None = Field(default=None, ge=0, le=1e9)
    weight: float | None = Field(default=None, ge=0, le=1e6)
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    prior_propensity: float | None = Field(default=None, gt=0, lt=1)
    caps: Caps | None = None
    tags: list[str] | None = Field(default=None, max_length=50)
    paused: bool | None = None
    kind: OfferKind | None = None


class OfferPublic(OfferFields):
    """An offer of the catalog."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime


class PlacementFields(BaseModel):
    """The fields of a placement."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel = Field(examples=["web"])
    max_offers: int = Field(default=1, ge=1, le=20, description="The most offers one decision returns.")
    fallback_offer_id: uuid.UUID | None = Field(
        default=None, description="Returned when no offer is eligible (it bypasses eligibility, never consent)."
    )
    exploration: Exploration = Field(
        default="epsilon_greedy", description="How decisions keep learning: epsilon-greedy, Thompson sampling, or off."
    )
    epsilon: float = Field(default=0.1, ge=0, le=1, description="Epsilon-greedy: share of slots filled at random.")
    control_share: float = Field(default=0.0, ge=0, le=1, description="Share of decisions in the control group.")
    control_mode: ControlMode = Field(
        default="random", description="What the control group gets: a random eligible offer, or none."
    )


class PlacementCreate(PlacementFields):
    """A slot offers fill: a page banner, an e-mail block, a call-centre screen."""

    name: str = Field(min_length=1, max_length=128, pattern=NAME, examples=["home-banner"])


class PlacementUpdate(BaseModel):
    """Fields to change; absent fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME)
    channel: Channel | None = None
    max_offers: int | None = Field(default=None, ge=1, le=20)
    fallback_offer_id: uuid.UUID | None = None
    exploration: Exploration | None = None
    epsilon: float | None = Field(default=None, ge=0, le=1)
    control_share: float | None = Field(default=None, ge=0, le=1)
    control_mode: ControlMode | None = None


class PlacementPublic(PlacementFields):
    """A placement and its policy."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime
