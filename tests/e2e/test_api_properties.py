"""Property-based tests of the whole API from its OpenAPI document (schemathesis): every
operation, with valid keys, gets generated requests (valid and invalid values, NUL characters,
huge numbers, odd strings...) and must never answer a 5xx, and must answer only the statuses,
content types and bodies it documents. Bounded (`MAX_EXAMPLES` per operation) so the suite
stays quick; `CLIENTELE_PROPERTY_EXAMPLES=500` explores further.

It runs against the real server (uvicorn over HTTP, `live_server`): requests commit, and a
generated request reaches the same middleware, guards and database as a client's."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, ROOT, WorkspaceKeys

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)



@schemathesis.serializer("text/csv", "application/x-ndjson", "application/jsonl")
def _text_body(ctx, value):
    """Import bodies are text (the import routes document them as strings)."""
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": (value if isinstance(value, str) else str(value)).encode("utf-8", "surrogatepass")}


MAX_EXAMPLES = int(os.environ.get("CLIENTELE_PROPERTY_EXAMPLES", "8"))
INGEST = ("/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias")


@pytest.fixture(scope="session")
def property_keys(live_server) -> WorkspaceKeys:
    resp = httpx.post(f"{live_server.base_url}/v1/workspaces", json={"name": "properties"},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    keys = WorkspaceKeys(body["workspace"]["id"], body["write_key"], body["secret_key"])
    # A few people and events, so reads have something to page through.
    batch = [{"type": "identify", "userId": f"u{i}", "traits": {"plan": "pro", "n": i}} for i in range(5)]
    batch += [{"type": "track", "userId": f"u{i}", "event": "Order Completed", "properties": {"revenue": 10 * i}}
              for i in range(5)]
    assert httpx.post(f"{live_server.base_url}/v1/batch", json={"batch": batch}, auth=keys.write_auth,
                      timeout=10).json()["accepted"] == 10
    return keys


# The committed contract (tests/test_contract.py keeps it equal to the app's).
schema = schemathesis.openapi.from_path(str(ROOT / "openapi" / "openapi.json"))


def _auth(path: str, keys: WorkspaceKeys) -> dict[str, str]:
    if path in INGEST:
        import base64

        return {"Authorization": "Basic " + base64.b64encode(f"{keys.write_key}:".encode()).decode()}
    if path == "/v1/workspaces":
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return {"Authorization": f"Bearer {keys.secret_key}"}


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_only_documented_answers(case, live_server, property_keys: WorkspaceKeys) -> None:
    headers = {**(case.headers or {}), **_auth(case.path, property_keys)}
    case.call_and_validate(
        base_url=live_server.base_url, headers=headers, timeout=30,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
