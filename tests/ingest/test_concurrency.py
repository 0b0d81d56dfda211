"""Concurrent ingest against really committed transactions: one person ends as one profile."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import create_workspace_via_api, make_client


async def test_identify_storm_on_one_person_ends_with_one_profile(committed_app) -> None:
    # All 40 requests in flight at once: this test is about identity races, not back-pressure
    # (over the default 32 the surplus would get 429s).
    committed_app.state.ingest_gate.max_concurrency = 64
    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "storm")

        async def identify(i: int) -> httpx.Response:
            # Every request knows the person by a different mix of identifiers.
            msg = {"type": "identify", "anonymousId": f"device-{i % 4}", "userId": "the-user" if i % 3 == 0 else None,
                   "traits": {"email": "Storm@Example.com", "n": i}, "messageId": f"storm-{i}"}
            return await client.post("/v1/batch", json={"batch": [msg]}, auth=ws.write_auth)

        responses = await asyncio.gather(*(identify(i) for i in range(40)))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        assert sum(r.json()["accepted"] for r in responses) == 40

        events = []
        cursor = None
        while True:
            page = (await client.get("/v1/events", params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                                     headers=ws.admin_headers)).json()
            events += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(events) == 40
        profiles = {e["profile_id"] for e in events}
        assert len(profiles) == 1, f"one person, {len(profiles)} profiles"
        profile = (await client.get(f"/v1/profiles/{profiles.pop()}", headers=ws.admin_headers)).json()
        ids = {(i["type"], i["value"]) for i in profile["identifiers"]}
        assert ids == {("user_id", "the-user"), ("email", "storm@example.com"),
                       *{("anonymous_id", f"device-{d}") for d in range(4)}}


async def test_concurrent_new_visitors_get_one_profile_each(committed_app) -> None:
    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "visitors")

        async def batch(k: int) -> httpx.Response:
            # Overlapping visitors across concurrent batches race to create the same people.
            msgs = [{"type": "track", "anonymousId": f"v-{(k + j) % 25}", "event": "Viewed", "messageId": f"b{k}-{j}"}
                    for j in range(10)]
            return await client.post("/v1/batch", json={"batch": msgs}, auth=ws.write_auth)

        responses = await asyncio.gather(*(batch(k) for k in range(20)))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        seen: dict[str, set[str]] = {}
        cursor = None
        while True:
            page = (await client.get("/v1/events", params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
                                     headers=ws.admin_headers)).json()
            for e in page["data"]:
                seen.setdefault(e["anonymous_id"], set()).add(e["profile_id"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 25
        assert all(len(p) == 1 for p in seen.values())
        assert len({next(iter(p)) for p in seen.values()}) == 25
