"""API shapes of the consent domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.pagination import CursorPage

Channel = Literal["email", "sms", "push", "direct_mail", "web", "ads"]
Status = Literal["granted", "denied", "withdrawn"]
Source = Literal["form", "api", "import", "sdk", "support"]
LawfulBasis = Literal["consent", "legitimate_interest", "contract", "legal_obligation", "vital_interest", "public_task"]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Category = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ProofValue = Annotated[str, StringConstraints(max_length=2000)] | int | float | bool

MAX_PROOF_KEYS = 20


# --- purposes ---------------------------------------------------------------------------------

class PurposeCreate(BaseModel):
    """A purpose data may be used for. Opt-in purposes (lawful basis `consent`) must default to
    `denied`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "key": "loyalty_programme", "name": "Loyalty programme", "lawful_basis": "contract", "default_status": "granted",
    }]})

    key: Key = Field(description="Stable identifier, lower snake case.")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    lawful_basis: LawfulBasis
    default_status: Literal["granted", "denied"] = Field(
        default="denied", description="The answer when a person has no record for the purpose."
    )
    sdk_categories: list[Category] = Field(
        default_factory=list, max_length=50,
        description="Consent-manager categories (Segment `context.consent.categoryPreferences` keys, compared "
        "case-insensitively) that speak for this purpose, besides its own key.",
    )


class PurposeUpdate(BaseModel):
    """Fields to change; the key cannot change (records cite it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"default_status": "denied"}]})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    lawful_basis: LawfulBasis | None = None
    default_status: Literal["granted", "denied"] | None = None
    sdk_categories: list[Category] | None = Field(default=None, max_length=50)


class PurposePublic(BaseModel):
    """A purpose of the workspace."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "key": "email_marketing", "name": "E-mail marketing", "description": None, "lawful_basis": "consent",
        "default_status": "denied", "sdk_categories": [], "created_at": "2026-12-04T10:00:00Z",
        "updated_at": "2026-12-04T10:00:00Z",
    }]})

    key: str
    name: str
    description: str | None
    lawful_basis: str
    default_status: str
    sdk_categories: list[str]
    created_at: datetime
    updated_at: datetime


# --- notices ----------------------------------------------------------------------------------

class NoticeCreate(BaseModel):
    """A new version of a privacy notice. `major: true` makes consents given under earlier
    versions of the same notice stale from `published_at` on: they no longer count as granted."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "key": "privacy_policy", "title": "Privacy policy", "url": "https://example.com/privacy/v3", "major": True,
    }]})

    key: Key = Field(description="Which notice this is a version of.")
    version: int | None = Field(default=None, ge=1, le=1_000_000, description="Defaults to the next version.")
    major: bool = False
    title: str = Field(min_length=1, max_length=500)
    url: str | None = Field(default=None, max_length=2000)
    text: str | None = Field(default=None, max_length=200_000)
    published_at: datetime | None = Field(default=None, description="Defaults to now.")


class NoticeUpdate(BaseModel):
    """Changes to a version no consent cites yet (a cited version is immutable: 409)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"title": "Privacy policy (EU)"}]})

    major: bool | None = None
    title: str | None = Field(default=None, min_length=1, max_length=500)
    url: str | None = Field(default=None, max_length=2000)
    text: str | None = Field(default=None, max_length=200_000)
    published_at: datetime | None = None


class NoticePublic(BaseModel):
    """One version of a privacy notice."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "0193a5b0-0000-7000-8000-000000000001", "key": "privacy_policy", "version": 3, "major": True,
        "title": "Privacy policy", "url": "https://example.com/privacy/v3", "text": None,
        "published_at": "2026-12-04T10:00:00Z", "created_at": "2026-12-04T10:00:00Z", "cited": False,
    }]})

    id: uuid.UUID
    key: str
    version: int
    major: bool
    title: str
    url: str | None
    text: str | None
    published_at: datetime
    created_at: datetime
    cited: bool = Field(default=False, description="A consent record cites this version: it can no longer change.")


# --- ledger -----------------------------------------------------------------------------------

class IdentifierRef(BaseModel):
    """An identifier of a person, normalised as at ingest."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, examples=["email"])
    value: str = Field(min_length=1, max_length=1000, examples=["jane@example.com"])


class ConsentBase(BaseModel):
    purpose: Key = Field(description="A purpose of the workspace.")
    channel: Channel | None = Field(default=None, description="Omitted or null: every channel.")
    status: Status
    source: Source = "api"
    method: str | None = Field(default=None, max_length=64, description="How it was given: checkbox, double_opt_in, "
                               "gpc, one_click_unsubscribe...", examples=["double_opt_in"])
    notice: Key | None = Field(default=None, description="The notice shown (its key); optional when the workspace "
                               "has one notice.")
    notice_version: int | None = Field(default=None, ge=1, description="The version of the notice shown.")
    occurred_at: datetime | None = Field(default=None, description="When the person said it; defaults to now.")
    expires_at: datetime | None = Field(default=None, description="A grant stops counting at this time.")
    proof: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], ProofValue] = Field(
        default_factory=dict,
        description="Evidence (IP, user agent, form id...): each value is stored as a keyed hash, never in clear.",
    )

    @field_validator("proof")
    @classmethod
    def _few_proofs(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_PROOF_KEYS:
            raise ValueError(f"at most {MAX_PROOF_KEYS} proof entries")
        return value


class ConsentCreate(ConsentBase):
    """One consent statement for a known profile."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "purpose": "email_marketing", "channel": "email", "status": "granted", "source": "form",
        "method": "double_opt_in", "notice": "privacy_policy", "notice_version": 3,
        "occurred_at": "2026-05-01T09:30:00Z", "proof": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
    }]})


class ConsentByIdentifierCreate(ConsentBase):
    """One consent statement for the person with this identifier (created when unknown)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "identifier": {"type": "email", "value": "jane@example.com"}, "purpose": "email_marketing",
        "channel": "email", "status": "granted", "source": "form", "method": "checkbox",
    }]})

    identifier: IdentifierRef


class ConsentRecordPublic(BaseModel):
    """A ledger record. `proof` holds keyed hashes (`hmac-sha256:<hex>`), never the values."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "0193a5b0-0000-7000-8000-000000000002", "profile_id": "0193a5b0-0000-7000-8000-000000000003",
        "purpose": "email_marketing", "channel": "email", "status": "granted", "source": "form",
        "method": "double_opt_in", "notice_key": "privacy_policy", "notice_version": 3,
        "occurred_at": "2026-05-01T09:30:00Z", "expires_at": None, "recorded_at": "2026-05-01T09:30:01Z",
        "proof": {"ip": "hmac-sha256:5f1c..."}, "message_id": None,
    }]})

    id: uuid.UUID
    profile_id: uuid.UUID
    purpose: str
    channel: str | None
    status: str
    source: str
    method: str | None
    notice_key: str | None
    notice_version: int | None
    occurred_at: datetime
    expires_at: datetime | None
    recorded_at: datetime
    proof: dict[str, str]
    message_id: str | None = Field(description="The ingested message or import row it came from.")


class ConsentHistoryPage(CursorPage[ConsentRecordPublic]):
    """A profile's consent records (with those of profiles merged into it), newest first."""


class ConsentStateItem(BaseModel):
    """May this person's data be used for `purpose` on `channel` now, and on what grounds."""

    purpose: str
    channel: str
    allowed: bool
    status: str = Field(description="granted, denied, withdrawn, expired, stale, default_granted or default_denied.")
    reason: str = Field(examples=["granted 2026-05-01 via double_opt_in under notice privacy_policy v3"])
    record: ConsentRecordPublic | None = Field(description="The record the answer rests on; null for a default.")


class ConsentState(BaseModel):
    """The current state of every purpose on every channel."""

    profile_id: uuid.UUID
    requested_id: uuid.UUID | None = Field(default=None, description="Set when the id asked for was merged into this profile.")
    at: datetime
    items: list[ConsentStateItem]


# --- unsubscribe ------------------------------------------------------------------------------

class UnsubscribeTokenCreate(BaseModel):
    """Issue a one-click opt-out token for one profile, purpose and channel."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "profile_id": "0193a5b0-0000-7000-8000-000000000003", "purpose": "email_marketing", "channel": "email",
        "expires_in_days": 60,
    }]})

    profile_id: uuid.UUID
    purpose: Key
    channel: Channel
    expires_in_days: int = Field(default=30, ge=1, le=366)


class UnsubscribeTokenPublic(BaseModel):
    """The token to put in a message (e.g. behind `List-Unsubscribe`)."""

    token: str
    path: str = Field(description="POST here, without credentials, to record the withdrawal.")
    expires_at: datetime


class UnsubscribeResult(BaseModel):
    """The withdrawal was recorded."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"unsubscribed": True, "purpose": "email_marketing",
                                                               "channel": "email"}]})

    unsubscribed: bool = True
    purpose: str
    channel: str
