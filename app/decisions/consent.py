"""Consent for a decision's channel, through the consent domain: the check a decision relies on.

`check_channel` asks `app.consent.service.check` for the person, the channel and the
channel's default purpose (email -> email_marketing, web -> personalization...) and returns
the answer as stored in the ledger: channel, purpose, allowed, record_id (the consent record
relied on), status and reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import service as consent_service


def purpose_for_channel(channel: str) -> str:
    return consent_service.purpose_for_channel(channel)


async def check_channel(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, channel: str, at: datetime,
    resolved: bool = False,
) -> dict[str, Any]:
    purpose = consent_service.purpose_for_channel(channel)
    answer = await consent_service.check(
        session, workspace_id=workspace_id, profile_id=profile_id, purpose=purpose, channel=channel, at=at,
        resolved=resolved,
    )
    return {"channel": channel, "purpose": purpose, "allowed": bool(answer.allowed),
            "record_id": str(answer.record_id) if answer.record_id else None, "status": answer.status,
            "reason": answer.reason}
