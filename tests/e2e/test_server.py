"""The real server over real HTTP: uvicorn in a subprocess."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_TOKEN


def test_real_server_round_trip(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok", "migration": None}
        created = http.post("/v1/workspaces", json={"name": "e2e"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert created.status_code == 201, created.text
        secret = created.json()["secret_key"]
        ws = http.get("/v1/workspace", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "e2e-1"})
        assert ws.status_code == 200
        assert ws.headers["x-request-id"] == "e2e-1"
        missing = http.get("/v1/nothing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    # Structured JSON logs carry the request id.
    assert '"request_id": "e2e-1"' in live_server.log_path.read_text()
