"""Load the generated store into a workspace through the ingest service: the same validation,
identity resolution and set-based writes as `/v1/batch`, a few thousand messages per
transaction."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import session_write_transaction
from app.demo.generator import DemoPlan, generate
from app.identity.service import identity_settings_from, trait_strategies_from
from app.ingest import service as ingest_service
from app.ingest.parser import ParseOptions, parse_batch
from app.workspaces import service as workspace_service

CHUNK_MESSAGES = 2500


@dataclass(slots=True)
class DemoSummary:
    customers: int
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"customers": self.customers, "messages": self.messages, "accepted": self.accepted,
                "duplicates": self.duplicates, "rejected": self.rejected, "seconds": round(self.seconds, 2)}


async def load_demo(session: AsyncSession, settings: Settings, *, workspace_id: uuid.UUID, plan: DemoPlan) -> DemoSummary:
    """Generate `plan` and store it in the workspace, committing every CHUNK_MESSAGES messages.
    Loading the same plan again stores nothing new (stable message ids)."""
    started = time.perf_counter()
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    identity = identity_settings_from(workspace.settings)
    strategies = trait_strategies_from(workspace.settings)
    await session.commit()
    summary = DemoSummary(customers=plan.customers)
    messages = generate(plan)
    while chunk := list(itertools.islice(messages, CHUNK_MESSAGES)):
        received_at = datetime.now(UTC)
        parsed, rejected = parse_batch(chunk, ParseOptions(
            received_at=received_at, max_message_bytes=settings.ingest_max_message_bytes,
            future_tolerance=timedelta(seconds=settings.ingest_future_tolerance_seconds), identity=identity,
        ))
        result = await ingest_service.ingest(
            session_write_transaction(session), workspace_id=workspace_id, messages=parsed, identity=identity,
            received_at=received_at, trait_strategies=strategies,
        )
        summary.messages += len(chunk)
        summary.accepted += result.accepted
        summary.duplicates += result.duplicates
        summary.rejected += len(rejected)
    summary.seconds = time.perf_counter() - started
    return summary
