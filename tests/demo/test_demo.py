"""The demo store: deterministic, loaded through ingest, and rich enough to show something."""

from __future__ import annotations

import uuid
from datetime import date

import httpx
import sqlalchemy as sa

from app.demo.generator import DemoPlan, generate
from app.demo.service import load_demo
from tests.conftest import WorkspaceKeys

PLAN = DemoPlan(customers=150, seed=7, end=date(2026, 11, 30))


def test_same_seed_same_messages_and_valid_segment_shapes() -> None:
    first, again = list(generate(PLAN)), list(generate(PLAN))
    assert first == again
    assert first != list(generate(DemoPlan(customers=150, seed=8, end=PLAN.end)))
    assert len({m["messageId"] for m in first}) == len(first)
    orders = [m for m in first if m.get("event") == "Order Completed"]
    assert len(orders) > PLAN.customers  # repeat buyers
    for order in orders:
        props = order["properties"]
        assert props["revenue"] > 0 and props["currency"] == "USD" and props["order_id"]
        assert props["products"] and all({"product_id", "sku", "name", "price", "quantity"} <= set(p) for p in props["products"])
    assert max(m["timestamp"] for m in first) < "2026-12-01"
    assert {m["type"] for m in first} == {"page", "track", "identify", "group"}


async def test_loaded_demo_has_repeat_buyers_duplicates_and_groups(
    app, client: httpx.AsyncClient, workspace: WorkspaceKeys, session
) -> None:
    workspace_id = uuid.UUID(workspace.workspace_id)
    summary = await load_demo(session, app.state.settings, workspace_id=workspace_id, plan=PLAN)
    assert summary.rejected == 0 and summary.accepted == summary.messages > 1000
    again = await load_demo(session, app.state.settings, workspace_id=workspace_id, plan=PLAN)
    assert again.accepted == 0 and again.duplicates == again.messages  # nothing stored twice

    people = (await session.execute(sa.text(
        "SELECT count(*) FROM profile WHERE workspace_id = :ws AND merged_into IS NULL"), {"ws": workspace_id})).scalar()
    guests = sum(1 for m in generate(PLAN) if m["type"] == "identify" and m.get("anonymousId", "").startswith("guest-"))
    # Anonymous visits were stitched to their customers; newsletter sign-ups merged on e-mail;
    # guest checkouts stay separate people until de-duplication finds them.
    assert people == PLAN.customers + guests

    refreshed = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=workspace.admin_headers)
    assert refreshed.status_code in (200, 201, 202), refreshed.text
    tiers = (await session.execute(sa.text(
        "SELECT count(DISTINCT value) FROM computed_trait_value WHERE workspace_id = :ws AND name = 'rfm_tier'"
    ), {"ws": workspace_id})).scalar()
    assert tiers >= 4  # customers spread over RFM tiers

    run = await client.post("/v1/dedup/runs", json={}, headers=workspace.admin_headers)
    assert run.status_code in (200, 201), run.text
    assert run.json()["counts"]["candidates"] >= guests // 2

    groups = (await client.get("/v1/groups", headers=workspace.admin_headers)).json()["data"]
    assert groups and all(g["member_count"] >= 1 for g in groups)
