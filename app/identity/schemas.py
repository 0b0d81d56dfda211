from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

Strategy = Literal["most_recent", "oldest", "non_empty", "sum", "union"]


class IdentitySettingsPublic(BaseModel):
    """The workspace's identity rules as in force (defaults included)."""

    default_region: str = Field(description="Region for phone numbers without a country code (ISO 3166).")
    blocked_values: list[str] = Field(description="Values that never identify anyone.")
    limits: dict[str, int] = Field(description="Most identifiers of a type one profile may hold.")
    default_limit: int = Field(description="Limit for types not in `limits`.")
    priority: list[str] = Field(description="Identifier types from most to least trusted.")
    trait_strategies: dict[str, Strategy] = Field(description="How a merge combines each trait; default most_recent.")
    dedup_joins: list[str] = Field(
        default_factory=list,
        description="Identifier types a confirmed de-duplication merge may join beyond their limit (e.g. `user_id`: "
                    "two customer numbers of one person in a CRM). Only dedup merges (a run's threshold or a "
                    "reviewer's merge); ingest and manual merges keep the limits. See docs/DEDUP.md.",
    )


class IdentitySettingsUpdate(BaseModel):
    """New identity rules. Omitted fields keep their defaults; blocked values add to the built-in list."""

    model_config = ConfigDict(extra="forbid")
    default_region: str | None = Field(default=None, examples=["GB"])
    blocked_values: list[str] | None = Field(default=None, max_length=10_000, examples=[["noreply@acme.com"]])
    limits: dict[str, int] | None = Field(default=None, examples=[{"user_id": 1, "email": 5}])
    priority: list[str] | None = Field(default=None, examples=[["user_id", "email", "phone", "anonymous_id"]])
    trait_strategies: dict[str, Strategy] | None = Field(default=None, examples=[{"lifetime_orders": "sum"}])
    dedup_joins: list[str] | None = Field(
        default=None, max_length=20, examples=[["user_id"]],
        description="Identifier types a confirmed de-duplication merge may join beyond their limit; empty by default.",
    )

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not a region phonenumbers knows (ISO 3166 alpha-2, e.g. US, GB)")
        return v.upper() if v else v

    @field_validator("limits")
    @classmethod
    def _limits(cls, v: dict[str, int] | None) -> dict[str, int] | None:
        if v is not None and any(n < 1 or n > 10_000 for n in v.values()):
            raise ValueError("limits must be between 1 and 10000")
        return v


class IdentityConflictPublic(BaseModel):
    """A link that identity limits refused: the two profiles stayed apart."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    profile_id: uuid.UUID
    other_profile_id: uuid.UUID | None
    identifier_type: str
    identifier_value: str
    reason: str
    message_id: str | None
    created_at: datetime
