from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.pagination import CursorPage
from app.traits.schemas import ComputedTraitValuePublic


class IdentifierPublic(BaseModel):
    """An identifier of a profile: normalised value for matching, raw value for display."""

    type: str = Field(examples=["email"])
    value: str = Field(examples=["jane@example.com"])
    raw: str = Field(examples=[" Jane@Example.com"])


class ProfilePublic(BaseModel):
    """One person: identifiers, traits, activity span and merge history."""

    id: uuid.UUID
    identifiers: list[IdentifierPublic]
    traits: dict[str, Any]
    computed_traits: dict[str, ComputedTraitValuePublic] = Field(
        default_factory=dict, description="Computed traits by name (built-in and defined), each with when it was computed."
    )
    first_seen_at: datetime | None = Field(description="Earliest event time.")
    last_seen_at: datetime | None = Field(description="Latest event time.")
    created_at: datetime
    updated_at: datetime
    merged_from: list[uuid.UUID] = Field(default_factory=list, description="Profiles merged into this one.")
    requested_id: uuid.UUID | None = Field(
        default=None, description="Set when the id asked for was merged into this profile."
    )


class ProfileListItem(BaseModel):
    """A profile in a list: identifiers and traits."""

    id: uuid.UUID
    identifiers: list[IdentifierPublic]
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ProfilePage(CursorPage[ProfileListItem]):
    """A page of profiles."""


class ProfilePatch(BaseModel):
    """Trait changes: `unset` first, then `set_once` (only traits the profile lacks), then `set`."""

    model_config = ConfigDict(extra="forbid")
    set: dict[str, Any] = Field(default_factory=dict, examples=[{"plan": "pro"}])
    set_once: dict[str, Any] = Field(default_factory=dict, examples=[{"first_source": "newsletter"}])
    unset: list[str] = Field(default_factory=list, max_length=1000, examples=[["temporary_flag"]])


class MergeRequest(BaseModel):
    """Merge two or more profiles into one."""

    model_config = ConfigDict(extra="forbid")
    profile_ids: list[uuid.UUID] = Field(min_length=2, max_length=50)
    survivor_id: uuid.UUID | None = Field(default=None, description="Defaults to the oldest profile.")
    dry_run: bool = Field(default=False, description="Show the result without writing anything.")


class MergeResult(BaseModel):
    """The profile a merge produces (or would produce, for a dry run)."""

    dry_run: bool
    survivor_id: uuid.UUID
    absorbed_ids: list[uuid.UUID]
    merge_ids: list[uuid.UUID] = Field(default_factory=list, description="Ledger entries written (none for a dry run).")
    identifiers: list[IdentifierPublic]
    traits: dict[str, Any]


class SplitRequest(BaseModel):
    """Which merge to undo. Omit both when the profile is an absorbed one or has a single merge."""

    model_config = ConfigDict(extra="forbid")
    merge_id: uuid.UUID | None = None
    absorbed_id: uuid.UUID | None = None


class SplitResult(BaseModel):
    """What a split restored."""

    merge_id: uuid.UUID
    survivor_id: uuid.UUID
    restored_id: uuid.UUID
    identifiers_moved: int
    events_moved: int


class MergeLedgerEntry(BaseModel):
    """One merge: who absorbed whom, why, and whether it was undone."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    survivor_id: uuid.UUID
    absorbed_id: uuid.UUID
    rule: str = Field(description="identify, alias, shared_identifier, manual or dedup.")
    identifier_type: str | None
    identifier_value: str | None
    message_id: str | None
    absorbed_identities: list[dict[str, Any]]
    created_at: datetime
    undone_at: datetime | None
