"""Rule evaluations over a workspace run with `segment_work_mem` (app/core/config.py)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import get_settings
from app.segments import service as segment_service
from app.workspaces.models import Workspace


async def test_preview_runs_with_segment_work_mem(session: AsyncSession) -> None:
    ws = Workspace(id=uuid.uuid4(), name="work mem")
    session.add(ws)
    await session.flush()
    before = (await session.execute(sa.text("SHOW work_mem"))).scalar_one()
    assert before != get_settings().segment_work_mem, "the test needs a default that differs"
    result = await segment_service.preview(session, workspace_id=ws.id, sample=0,
                                           rule={"computed": "order_count", "op": "gte", "value": 5})
    assert result.count == 0
    assert (await session.execute(sa.text("SHOW work_mem"))).scalar_one() == get_settings().segment_work_mem
