from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
    first_seen_at: datetime | None = Field(description="Earliest event time.")
    last_seen_at: datetime | None = Field(description="Latest event time.")
    created_at: datetime
    updated_at: datetime
    merged_from: list[uuid.UUID] = Field(default_factory=list, description="Profiles merged into this one.")
    requested_id: uuid.UUID | None = Field(
        default=None, description="Set when the id asked for was merged into this profile."
    )
