"""The real server over real HTTP: uvicorn in a subprocess."""

from __future__ import annotations

import json

import httpx

from tests.conftest import ADMIN_TOKEN


def test_real_server_round_trip(live_server) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        ready = http.get("/readyz").json()
        assert ready["migration"] and http.get("/healthz").json() == ready
        created = http.post("/v1/workspaces", json={"name": "e2e"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert created.status_code == 201, created.text
        secret = created.json()["secret_key"]
        ws = http.get("/v1/workspace", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "e2e-1"})
        assert ws.status_code == 200
        assert ws.headers["x-request-id"] == "e2e-1"
        missing = http.get("/v1/nothing")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    # Structured JSON logs carry the request id, and the access line says what was served.
    lines = [json.loads(line) for line in live_server.log_path.read_text().splitlines() if line.startswith("{")]
    (access,) = [line for line in lines if line.get("request_id") == "e2e-1" and line["event"] == "request"]
    assert access["logger"] == "clientele.access"
    assert {k: access[k] for k in ("method", "path", "route", "status", "workspace_id")} == {
        "method": "GET", "path": "/v1/workspace", "route": "/v1/workspace", "status": 200,
        "workspace_id": ws.json()["id"],
    }
    assert access["bytes"] == len(ws.content) and access["duration_ms"] > 0
