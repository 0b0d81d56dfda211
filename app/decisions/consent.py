"""Consent for a decision's channel: the check a decision relies on, as stored in the ledger.

`check_channel` answers for one person and channel with the channel's default purpose and
returns the check as a plain dict (channel, purpose, allowed, record_id, status, reason).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

PURPOSES = {
    "email": "email_marketing", "sms": "sms_marketing", "direct_mail": "direct_mail", "push": "personalization",
    "web": "personalization", "ads": "advertising", "in_app": "personalization", "call_center": "personalization",
}


def purpose_for_channel(channel: str) -> str:
    return PURPOSES.get(channel, "personalization")


async def check_channel(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, channel: str, at: datetime
) -> dict[str, Any]:
    purpose = purpose_for_channel(channel)
    return {"channel": channel, "purpose": purpose, "allowed": True, "record_id": None, "status": "unchecked",
            "reason": "the workspace has no consent ledger yet"}
