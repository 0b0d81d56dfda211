"""The official Segment Python SDK against the real server: change the host and key, nothing else."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN

segment = pytest.importorskip("segment.analytics")


def test_segment_sdk_round_trip(live_server) -> None:
    from segment.analytics.client import Client

    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        created = http.post("/v1/workspaces", json={"name": "sdk"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        headers = {"Authorization": f"Bearer {created['secret_key']}"}

        errors: list[Exception] = []
        client = Client(write_key=created["write_key"], host=live_server.base_url, sync_mode=True,
                        on_error=lambda e, batch: errors.append(e))
        client.page(anonymous_id="anon-sdk", name="Pricing", properties={"path": "/pricing"}, message_id="sdk-1")
        client.identify("user-sdk", {"email": "Sdk.User@Example.com", "plan": "pro"}, anonymous_id="anon-sdk", message_id="sdk-2")
        client.track("user-sdk", "Order Completed", {"revenue": 99.5, "order_id": "o-1"}, message_id="sdk-3")
        client.alias("anon-sdk", "user-sdk", message_id="sdk-4")  # (previous_id, user_id)
        client.flush()
        assert not errors

        events = http.get("/v1/events", headers=headers).json()["data"]
        assert {e["message_id"] for e in events} == {"sdk-1", "sdk-2", "sdk-3", "sdk-4"}
        assert {e["type"] for e in events} == {"page", "identify", "track", "alias"}
        assert all(e["context"]["library"]["name"] == "analytics-python" for e in events)
        profile_ids = {e["profile_id"] for e in events}
        assert len(profile_ids) == 1, [(e["type"], e["user_id"], e["anonymous_id"], e["profile_id"]) for e in events]
        profile = http.get(f"/v1/profiles/{profile_ids.pop()}", headers=headers).json()
        assert profile["traits"]["plan"] == "pro"
        assert {"type": "email", "value": "sdk.user@example.com", "raw": "Sdk.User@Example.com"} in profile["identifiers"]
        timeline = http.get(f"/v1/profiles/{profile['id']}/events", headers=headers).json()["data"]
        assert len(timeline) == 4

        # The SDK retries a batch after a timeout: replaying the same messages adds nothing.
        replay = Client(write_key=created["write_key"], host=live_server.base_url, sync_mode=True,
                        on_error=lambda e, batch: errors.append(e))
        replay.page(anonymous_id="anon-sdk", name="Pricing", properties={"path": "/pricing"}, message_id="sdk-1")
        replay.track("user-sdk", "Order Completed", {"revenue": 99.5, "order_id": "o-1"}, message_id="sdk-3")
        replay.flush()
        assert not errors
        assert len(http.get("/v1/events", headers=headers).json()["data"]) == 4
