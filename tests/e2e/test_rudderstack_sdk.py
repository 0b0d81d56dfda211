"""RudderStack's Python SDK against the real server: it sends an identify's traits in
`context.traits` only (not at the top level as Segment's SDK does); they must reach the
profile all the same."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN

pytest.importorskip("rudderstack.analytics")


def test_rudderstack_sdk_keeps_identify_traits(live_server) -> None:
    from rudderstack.analytics.client import Client

    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        created = http.post("/v1/workspaces", json={"name": "rudder"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        headers = {"Authorization": f"Bearer {created['secret_key']}"}

        errors: list[Exception] = []
        client = Client(write_key=created["write_key"], host=live_server.base_url, sync_mode=True,
                        on_error=lambda e, batch: errors.append(e))
        client.page(anonymous_id="anon-rs", name="Pricing", properties={"path": "/pricing"}, message_id="rs-1")
        client.identify("user-rs", {"email": "Rudder.User@Example.com", "plan": "pro", "seats": 12},
                        anonymous_id="anon-rs", message_id="rs-2")
        client.track("user-rs", "Order Completed", {"revenue": 99.5, "order_id": "o-1"}, message_id="rs-3")
        client.flush()
        assert not errors

        events = http.get("/v1/events", headers=headers).json()["data"]
        assert {e["message_id"] for e in events} == {"rs-1", "rs-2", "rs-3"}
        identify = next(e for e in events if e["type"] == "identify")
        assert identify["context"]["traits"]["plan"] == "pro"  # where this SDK puts them
        assert all(e["context"]["library"]["name"] == "analytics-python" or "rudder" in e["context"]["library"]["name"]
                   for e in events)
        profile_ids = {e["profile_id"] for e in events}
        assert len(profile_ids) == 1
        profile = http.get(f"/v1/profiles/{profile_ids.pop()}", headers=headers).json()
        assert profile["traits"] == {"email": "Rudder.User@Example.com", "plan": "pro", "seats": 12}
        assert {"type": "email", "value": "rudder.user@example.com", "raw": "Rudder.User@Example.com"} in profile["identifiers"]

        # A later identify sent the Segment way (top-level traits) wins over context.traits.
        both = http.post("/v1/identify", auth=(created["write_key"], ""), json={
            "userId": "user-rs", "messageId": "rs-4", "traits": {"plan": "enterprise"},
            "context": {"traits": {"plan": "free", "region": "eu"}},
        })
        assert both.status_code == 200, both.text
        profile = http.get(f"/v1/profiles/{profile['id']}", headers=headers).json()
        assert profile["traits"]["plan"] == "enterprise"
        assert profile["traits"]["region"] == "eu"
