from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.core.pagination import CursorPage


class EventPublic(BaseModel):
    """A stored event, as received plus what the server added (profile, corrected time)."""

    message_id: str
    profile_id: uuid.UUID | None
    type: str
    event: str | None = None
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    group_id: str | None = None
    previous_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime = Field(description="Event time, corrected for client clock skew.")
    original_timestamp: datetime | None = Field(default=None, description="The timestamp the client sent.")
    sent_at: datetime | None = None
    received_at: datetime
    timestamp_clamped: bool = Field(description="True when the time was in the future and clamped to received_at.")


class EventPage(CursorPage[EventPublic]):
    """A page of events, newest first."""
