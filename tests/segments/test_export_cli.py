"""`clientele export segment`: the members of a refreshed segment, written to a file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx

from tests.test_cli import run_cli


def test_export_segment_from_cli(database_url: str, live_server, tmp_path: Path) -> None:
    ws = json.loads(run_cli(database_url, "workspace", "create", "export-co", "--json").stdout)
    base = live_server.base_url
    headers = {"Authorization": f"Bearer {ws['secret_key']}"}
    batch = [{"type": "identify", "userId": f"c{i}", "messageId": f"m{i}", "traits": {"plan": "pro" if i % 3 else "free", "n": i}}
             for i in range(25)]
    assert httpx.post(f"{base}/v1/batch", json={"batch": batch}, auth=(ws["write_key"], "")).status_code == 200
    seg = httpx.post(f"{base}/v1/segments", json={"name": "pro", "rule": {"trait": "plan", "op": "eq", "value": "pro"}},
                     headers=headers).json()
    assert httpx.post(f"{base}/v1/segments/{seg['id']}/refresh?wait=true", headers=headers).status_code == 200

    target = tmp_path / "pro.csv"
    result = run_cli(database_url, "export", "segment", seg["id"], "-w", ws["workspace_id"], "--format", "csv",
                     "-o", str(target), "--fields", "traits.n")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(target.open()))
    assert rows[0] == ["profile_id", "entered_at", "traits.n"]
    assert sorted(int(r[2]) for r in rows[1:]) == [i for i in range(25) if i % 3]

    target = tmp_path / "pro.ndjson"
    result = run_cli(database_url, "export", "segment", seg["id"], "-w", ws["workspace_id"], "--format", "ndjson", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert len(target.read_text().splitlines()) == 16

    other = json.loads(run_cli(database_url, "workspace", "create", "other-co", "--json").stdout)
    wrong = run_cli(database_url, "export", "segment", seg["id"], "-w", other["workspace_id"], "-o", str(tmp_path / "x.csv"))
    assert wrong.returncode == 1 and "No segment" in wrong.stderr
