"""`clientele privacy access|erase|suppressions|lift|retention` against a real (committed) database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.test_cli import run_cli


def test_access_erase_and_lift_from_the_cli(database_url: str, tmp_path: Path) -> None:
    ws = json.loads(run_cli(database_url, "workspace", "create", "privacy-cli", "--json").stdout)["workspace_id"]
    tag = uuid.uuid4().hex[:8]
    crm = tmp_path / "crm.csv"
    crm.write_text(f"user_id,email,name\ncli-{tag},Dora.{tag}@Example.com,Dora\ncli-other-{tag},eve.{tag}@example.com,Eve\n")
    imported = run_cli(database_url, "import", "profiles", str(crm), "-w", ws, "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["accepted"] == 2

    out = tmp_path / "dora.json"
    access = run_cli(database_url, "privacy", "access", f"dora.{tag}@example.com", "-w", ws, "--output", str(out))
    assert access.returncode == 0, access.stderr
    export = json.loads(out.read_text())
    assert {i["type"] for i in export["identifiers"]} == {"user_id", "email"} and export["traits"]["name"] == "Dora"

    erased = run_cli(database_url, "privacy", "erase", f"cli-{tag}", "-t", "user_id", "-w", ws, "--yes", "--json")
    assert erased.returncode == 0, erased.stderr
    result = json.loads(erased.stdout)
    assert result["status"] == "completed" and result["result"]["profiles"] == 1

    again = run_cli(database_url, "import", "profiles", str(crm), "-w", ws, "--json")
    counts = json.loads(again.stdout)
    assert counts["suppressed"] == 1 and counts["duplicates"] == 1, counts

    found = run_cli(database_url, "privacy", "suppressions", "-w", ws, "-t", "email", "--value", f"DORA.{tag}@example.com", "--json")
    entries = json.loads(found.stdout)
    assert len(entries) == 1 and entries[0]["identifier_type"] == "email"
    lifted = run_cli(database_url, "privacy", "lift", entries[0]["id"], "-w", ws)
    assert lifted.returncode == 0, lifted.stderr
    assert run_cli(database_url, "privacy", "lift", entries[0]["id"], "-w", ws).returncode == 1

    bad = run_cli(database_url, "privacy", "erase", "not-an-email", "-w", ws, "--yes")
    assert bad.returncode == 1 and "not usable" in bad.stderr
    retention = run_cli(database_url, "privacy", "retention")
    assert retention.returncode == 0, retention.stderr
