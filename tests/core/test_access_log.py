"""The access log: one JSON line per request with what an operator filters on."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app.main import create_app
from tests.conftest import WorkspaceKeys, create_workspace_via_api, make_client


def _access_lines(err: str) -> list[dict]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "clientele.access"]


@pytest.fixture
def logged_app(settings, db):
    application = create_app(settings.model_copy(update={"log_level": "INFO", "log_json": True}))
    application.state.db = db
    yield application
    create_app(settings)  # back to the suite's quieter logging


@pytest.fixture
def log_output(logged_app):
    """What the configured log handler writes (its formatter, into a buffer)."""
    root = logging.getLogger()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    yield buffer
    root.removeHandler(handler)


async def test_access_line_carries_method_route_status_duration_bytes_and_workspace(logged_app, log_output) -> None:
    async with make_client(logged_app) as client:
        keys: WorkspaceKeys = await create_workspace_via_api(client)
        log_output.seek(0)
        log_output.truncate()
        read = await client.get("/v1/profiles/00000000-0000-0000-0000-000000000001", headers=keys.admin_headers,
                                params={"x": "1"})
        sent = await client.post("/v1/batch", auth=keys.write_auth,
                                 json={"batch": [{"type": "track", "userId": "u1", "event": "Signed Up"}]})
        anonymous = await client.get("/v1/workspace")
    assert (read.status_code, sent.status_code, anonymous.status_code) == (404, 200, 401)
    first, second, third = _access_lines(log_output.getvalue())
    assert first["event"] == "request" and first["request_id"] == read.headers["x-request-id"]
    assert first["method"] == "GET"
    assert first["path"] == "/v1/profiles/00000000-0000-0000-0000-000000000001"
    assert first["route"] == "/v1/profiles/{profile_id}"
    assert first["status"] == 404
    assert first["bytes"] == len(read.content) > 0
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert first["workspace_id"] == keys.workspace_id
    # The direct route names its route and workspace the same way.
    assert (second["method"], second["route"], second["status"], second["workspace_id"]) == (
        "POST", "/v1/batch", 200, keys.workspace_id)
    assert second["bytes"] == len(sent.content)
    # No key, no workspace.
    assert (third["route"], third["status"], third["workspace_id"]) == ("/v1/workspace", 401, None)
