"""Erasure racing ingest, with real commits: whatever the interleaving, nothing of the person
is left. A batch that took the workspace's shared identity lock before the erasure took it
exclusively is stored and then erased with the rest; a batch after it is suppressed. Without
the lock (or with a suppression check outside it) a batch could store the person between the
erasure's look-up and its commit, or after it, and re-create them."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import create_workspace_via_api, make_client
from tests.privacy.test_privacy_api import make_person, send


async def test_ingest_racing_an_erasure_leaves_nothing_of_the_person(committed_app, engine: AsyncEngine) -> None:
    committed_app.state.ingest_gate.max_concurrency = 64
    ann = make_person("ann")
    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "erasure-race")
        await send(client, ws, [{"type": "identify", "userId": ann.user_id, "anonymousId": ann.anon_1,
                                 "traits": {"email": ann.email}}])

        async def ingest(k: int) -> httpx.Response:
            # Ann from a new device, plus a bystander, in every batch; spread around the erasure.
            await asyncio.sleep(0.005 * k)
            msgs = [{"type": "identify", "userId": ann.user_id, "anonymousId": f"{ann.anon_2}-{k}",
                     "traits": {"email": ann.email}, "messageId": f"race-{k}"},
                    {"type": "track", "userId": f"bystander-{k}", "event": "Seen", "messageId": f"by-{k}"}]
            return await client.post("/v1/batch", json={"batch": msgs}, auth=ws.write_auth)

        async def erase() -> httpx.Response:
            await asyncio.sleep(0.01)
            return await client.post("/v1/privacy/requests", params={"wait": "true"}, headers=ws.admin_headers,
                                     json={"type": "erasure", "identifier": {"type": "email", "value": ann.email}})

        results = await asyncio.gather(erase(), *(ingest(k) for k in range(16)))
        erased, batches = results[0], results[1:]
        assert erased.status_code == 200 and erased.json()["status"] == "completed", erased.text
        assert all(r.status_code == 200 for r in batches), [r.text for r in batches if r.status_code != 200]
        assert sum(r.json()["accepted"] for r in batches) + sum(r.json()["suppressed"] for r in batches) == 32

        # Every device of Ann's that was stored before the erasure is suppressed now; which
        # batches landed before it depends on timing, so ask each batch what happened to Ann's
        # message (accepted: stored, then erased) instead of assuming one. Her first device
        # was stored before the race began.
        stored = [f"{ann.anon_2}-{k}" for k, r in enumerate(batches) if r.json()["accepted"] == 2] + [ann.anon_1]
        after = await send(client, ws, [{"type": "track", "anonymousId": anon, "event": "Late"} for anon in stored])
        assert after["suppressed"] == len(stored) and after["accepted"] == 0

    workspace_id = uuid.UUID(ws.workspace_id)
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        ann_values = [ann.user_id, ann.email.lower(), ann.anon_1] + [f"{ann.anon_2}-{k}" for k in range(16)]
        assert await raw.fetchval(
            "SELECT count(*) FROM identity WHERE workspace_id = $1 AND value = ANY($2::text[])", workspace_id, ann_values
        ) == 0
        assert await raw.fetchval(
            "SELECT count(*) FROM event WHERE workspace_id = $1 AND (user_id = $2 OR message_id LIKE 'race-%')",
            workspace_id, ann.user_id,
        ) == 0
        # The bystanders are all there.
        assert await raw.fetchval(
            "SELECT count(*) FROM event WHERE workspace_id = $1 AND message_id LIKE 'by-%'", workspace_id
        ) == 16
        # Every profile left is a bystander's.
        assert await raw.fetchval(
            "SELECT count(*) FROM profile AS p WHERE p.workspace_id = $1 AND NOT EXISTS "
            "(SELECT 1 FROM identity AS i WHERE i.workspace_id = $1 AND i.profile_id = p.id)", workspace_id
        ) == 0


async def test_retention_skips_rows_another_transaction_holds(committed_app, engine: AsyncEngine) -> None:
    """Retention must not make ingest (or a merge) wait: a row someone holds is left for a later
    batch instead of being waited for. Here a transaction holds one expired event's row lock
    while retention runs; retention finishes at once, deleting the others."""
    from datetime import UTC, datetime, timedelta

    from app.privacy import service as privacy_service

    now = datetime.now(UTC)
    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "retention-race")
        await send(client, ws, [{"type": "track", "userId": f"old-{i}", "event": "Seen", "messageId": f"old-{i}",
                                 "timestamp": (now - timedelta(days=100 + i)).isoformat()} for i in range(5)])
    workspace_id = uuid.UUID(ws.workspace_id)
    async with engine.connect() as holder:
        raw = (await holder.get_raw_connection()).driver_connection
        await holder.exec_driver_sql("SELECT 1")  # begin
        await raw.execute("SELECT 1 FROM event WHERE workspace_id = $1 AND message_id = 'old-2' FOR UPDATE", workspace_id)
        deleted = await asyncio.wait_for(privacy_service.apply_retention(
            committed_app.state.db, workspace_id=workspace_id, days=30, batch_size=2, now=now), timeout=20)
        assert deleted == 4
        await holder.rollback()
    assert await privacy_service.apply_retention(
        committed_app.state.db, workspace_id=workspace_id, days=30, batch_size=2, now=now) == 1
