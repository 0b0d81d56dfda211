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


def test_every_command_names_its_database_and_tables_keep_whole_ids(database_url: str) -> None:
    created = json.loads(run_cli(database_url, "workspace", "create", "A workspace with a rather long name", "--json").stdout)
    env = {"COLUMNS": "60"}  # a narrow terminal: other columns wrap, ids stay whole
    listed = subprocess.run([str(Path(sys.executable).parent / "clientele"), "workspace", "list"], cwd=ROOT,
                            env={**os.environ, "DATABASE_URL": database_url, **env}, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert created["workspace_id"] in listed.stdout
    assert "database: PostgreSQL at postgresql+asyncpg://" in listed.stderr and "XDG_RUNTIME_DIR" not in listed.stderr
    keys = subprocess.run([str(Path(sys.executable).parent / "clientele"), "key", "list", "-w", created["workspace_id"],
                           "--json"], cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url}, capture_output=True,
                          text=True, timeout=120)
    ids = [k["id"] for k in json.loads(keys.stdout)]
    table = run_cli(database_url, "key", "list", "-w", created["workspace_id"])
    assert all(i in table.stdout for i in ids)


def test_the_default_data_directory_does_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    """Run from two directories without DATABASE_URL or CLIENTELE_DATA_DIR: one database."""
    code = "from app.core.config import Settings; print(Settings().pgdata_dir)"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CLIENTELE_DATABASE_URL", "CLIENTELE_DATA_DIR")}
    env["HOME"], env["XDG_DATA_HOME"] = str(tmp_path / "home"), ""
    seen = set()
    for cwd in (tmp_path, ROOT):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, check=True)
        seen.add(out.stdout.strip())
    assert seen == {str(tmp_path / "home" / ".local" / "share" / "clientele" / "pgdata")}
    env["CLIENTELE_DATA_DIR"] = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "mine" / "pgdata")
