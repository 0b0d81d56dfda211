"""The `clientele` command against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from app.core.config import get_settings
from tests.conftest import ROOT


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "CLIENTELE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "clientele"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_workspace_and_key_lifecycle_from_cli(database_url: str, live_server) -> None:
    created = run_cli(database_url, "workspace", "create", "cli-co", "--json")
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    assert set(out) == {"workspace_id", "write_key", "secret_key"}

    key = run_cli(database_url, "key", "create", "-w", out["workspace_id"], "--scope", "read", "--json")
    assert key.returncode == 0, key.stderr
    key_out = json.loads(key.stdout)
    headers = {"Authorization": f"Bearer {key_out['key']}"}
    assert httpx.get(f"{live_server.base_url}/v1/workspace", headers=headers).status_code == 200

    listed = json.loads(run_cli(database_url, "key", "list", "-w", out["workspace_id"], "--json").stdout)
    assert len(listed) == 3 and all("key" not in k for k in listed)

    revoked = run_cli(database_url, "key", "revoke", key_out["id"], "-w", out["workspace_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(f"{live_server.base_url}/v1/workspace", headers=headers).status_code == 401

    # Revoking through another workspace fails and changes nothing.
    other = json.loads(run_cli(database_url, "workspace", "create", "other", "--json").stdout)
    wrong = run_cli(database_url, "key", "revoke", key_out["id"], "-w", other["workspace_id"])
    assert wrong.returncode == 1


def test_openapi_export(tmp_path: Path, database_url: str) -> None:
    target = tmp_path / "openapi.json"
    result = run_cli(database_url, "openapi", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert json.loads(target.read_text())["info"]["title"] == "Clientele"
    get_settings.cache_clear()
