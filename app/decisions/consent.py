"""Consent for a decision's channel, through the consent domain: the check a decision relies on.

A decision checks its channel's default purpose (email -> email_marketing, web ->
personalization...) for the person. It reads what the check needs with the person
(`app.consent.repository.check_columns`, columns of its profile read) and `from_state`
answers through `app.consent.service.check_loaded`, the consent domain's own rules (those of
`check`) without a round trip of its own, as stored in the ledger: channel, purpose, allowed,
record_id (the consent record relied on), status and reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.consent import service as consent_service


def purpose_for_channel(channel: str) -> str:
    return consent_service.purpose_for_channel(channel)


def from_state(state: Mapping[str, Any], *, profile_id: uuid.UUID, channel: str, at: datetime) -> dict[str, Any]:
    """The check of `channel` for the person a decision's profile read returned (`state`, with
    the consent columns), merges already followed."""
    purpose = consent_service.purpose_for_channel(channel)
    answer = consent_service.check_loaded(state, profile_id=profile_id, purpose=purpose, channel=channel, at=at)
    return {"channel": channel, "purpose": purpose, "allowed": bool(answer.allowed),
            "record_id": str(answer.record_id) if answer.record_id else None, "status": answer.status,
            "reason": answer.reason}
