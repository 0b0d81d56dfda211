"""The ledger is personal data: found by a person's access export and erased with them.

Erasure and the access export find tables by their `profile_id` column (from the database
metadata), so this test does the same: every decision table that holds something about the
person has the column, an export by it finds the person's decisions, and deleting by it (in
one transaction, in any order) leaves nothing of them."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

import app.models  # noqa: F401
from app.core.db import metadata
from tests.conftest import WorkspaceKeys
from tests.decisions.helpers import decide, offer, person, placement

PERSONAL = {"decision", "decision_offer", "decision_feedback", "offer_cap_counter"}


async def test_ledger_in_access_export_and_erased(client: httpx.AsyncClient, workspace: WorkspaceKeys, session) -> None:
    pid = await person(client, workspace, "u1")
    keep = await person(client, workspace, "u2")
    o = await offer(client, workspace, "hello", caps={"per_profile_per_day": 5})
    await placement(client, workspace)
    d = await decide(client, workspace, pid)
    await decide(client, workspace, keep)
    await client.post(f"/v1/decisions/{d['decision_id']}/feedback", json={"offer_id": o["id"], "type": "click"},
                      headers=workspace.admin_headers)
    tables = [t for t in metadata.sorted_tables if "profile_id" in t.c and "workspace_id" in t.c]
    assert PERSONAL <= {t.name for t in tables}
    export = {}
    for t in tables:
        rows = (await session.execute(sa.select(t).where(t.c.workspace_id == workspace.workspace_id,
                                                         t.c.profile_id == pid))).all()
        export[t.name] = len(rows)
    assert all(export[name] >= 1 for name in PERSONAL), export
    await session.execute(sa.text("SET LOCAL clientele.erasure = 'on'"))
    for t in reversed(tables):
        await session.execute(sa.delete(t).where(t.c.workspace_id == workspace.workspace_id, t.c.profile_id == pid))
    await session.flush()
    assert (await client.get(f"/v1/decisions/{d['decision_id']}", headers=workspace.admin_headers)).status_code == 404
    others = (await client.get(f"/v1/profiles/{keep}/decisions", headers=workspace.admin_headers)).json()["data"]
    assert len(others) == 1
