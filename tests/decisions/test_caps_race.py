"""Caps hold under concurrency: the race the row locks on the cap counters exist for.

Without them, 32 decisions for one person arriving together would all read "served 0 times
today" for an offer capped at 1 per day, and all return it."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa

from app.decisions.models import OfferCapCounter

from tests.conftest import create_workspace_via_api, make_client
from tests.decisions.helpers import offer, person, placement


async def test_32_simultaneous_decisions_serve_a_daily_capped_offer_once(committed_app) -> None:
    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "Caps race")
        pid = await person(client, ws, "racer")
        capped = await offer(client, ws, "once-a-day", value=10, caps={"per_profile_per_day": 1})
        total = await offer(client, ws, "three-ever", value=5, caps={"total": 3})
        await offer(client, ws, "filler", value=1)
        await placement(client, ws, max_offers=2)

        async def one() -> list[str]:
            resp = await client.post("/v1/decisions", json={"profile_id": pid, "placement": "banner"},
                                     headers=ws.admin_headers)
            assert resp.status_code == 200, resp.text
            return [o["offer_id"] for o in resp.json()["offers"]]

        results = await asyncio.gather(*[one() for _ in range(32)])
        served = [oid for r in results for oid in r]
        assert served.count(capped["id"]) == 1
        assert served.count(total["id"]) == 3
        assert all(len(r) == 2 or capped["id"] not in r for r in results)
        # The counters say what was served: a decision that lost the race left them as it found them.
        async with committed_app.state.db.session() as session:
            counts = dict((await session.execute(
                sa.select(OfferCapCounter.offer_id, sa.func.sum(OfferCapCounter.count))
                .where(OfferCapCounter.workspace_id == uuid.UUID(ws.workspace_id))
                .group_by(OfferCapCounter.offer_id))).all())
        assert counts == {uuid.UUID(capped["id"]): 1, uuid.UUID(total["id"]): 3}
