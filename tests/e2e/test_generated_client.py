"""A client generated from the committed contract (openapi/openapi.json) by openapi-python-client,
driven against the real server.

The generator has no model for a text/csv or NDJSON request body and skips it with a warning,
so the import routes also document a multipart/form-data upload (the `ImportUpload` schema):
that is the import route a generated client gets. The client is generated afresh from the
committed document on every run (offline, a few seconds) and imported from a temporary folder."""

from __future__ import annotations

import gzip
import importlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, ROOT

PACKAGE = "clientele_client"  # the generator's name for a document titled "Clientele"
# Routes whose only bodies the generator cannot model (NDJSON); any other skipped route is a defect
# of the contract (e.g. two schemas with the same title, which once dropped POST /v1/privacy/requests).
SKIPPED_ON_PURPOSE = {"POST /v1/decisions/import"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable during this module's tests and forgotten afterwards."""
    bin_dir = Path(sys.executable).parent  # the generator and ruff (which formats its output) live beside this Python
    generator = bin_dir / "openapi-python-client"
    assert generator.exists(), "openapi-python-client is a dev dependency: `make install` installs it"
    out = tmp_path_factory.mktemp("generated-client")
    result = subprocess.run(
        [str(generator), "generate", "--path", str(ROOT / "openapi" / "openapi.json"), "--meta", "none",
         "--output-path", str(out / PACKAGE)],
        cwd=out, env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True, text=True, timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    skipped = set(re.findall(r"WARNING parsing (\w+ \S+) within \w+\. Endpoint will not be generated", report))
    assert skipped <= SKIPPED_ON_PURPOSE, report
    assert "Unable to" not in report and "Failure to process" not in report, report
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_generated_client_imports_profiles_as_a_multipart_upload(live_server, generated: ModuleType) -> None:
    import_profiles = importlib.import_module(f"{PACKAGE}.api.ingest.ingest_import_profiles")
    models = importlib.import_module(f"{PACKAGE}.models")
    File = importlib.import_module(f"{PACKAGE}.types").File

    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        created = http.post("/v1/workspaces", json={"name": "generated client"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
        headers = {"Authorization": f"Bearer {created['secret_key']}"}
        client = generated.AuthenticatedClient(base_url=live_server.base_url, token=created["secret_key"],
                                               raise_on_unexpected_status=True)

        people = (b"user_id,email,first_name,plan\n"
                  b"gc-1,Ann.Lee@Example.com,Ann,pro\n"
                  b"gc-2,bob@example.com,Bob,free\n"
                  b"gc-3,cy@example.com,Cy,pro\n")

        def csv_upload() -> object:
            return models.ImportUpload(file=File(payload=io.BytesIO(people), file_name="people.csv", mime_type="text/csv"))

        first = import_profiles.sync(client=client, body=csv_upload())
        assert isinstance(first, models.ImportResponse), first
        assert (first.accepted, first.duplicates, first.rejected_count) == (3, 0, 0)

        # The same file again adds nothing.
        again = import_profiles.sync(client=client, body=csv_upload())
        assert (again.accepted, again.duplicates) == (0, 3)

        # A gzipped NDJSON file whose name says nothing: the generated `format_` field names its format.
        ndjson = gzip.compress(b'{"user_id": "gc-4", "email": "dee@example.com", "plan": "pro"}\n'
                               b'{"user_id": "gc-5"}\n'
                               b'{"plan": "nobody"}\n')
        third = import_profiles.sync(client=client, body=models.ImportUpload(
            file=File(payload=io.BytesIO(ndjson), file_name="export"), format_=models.ImportUploadFormat.NDJSON,
        ))
        assert isinstance(third, models.ImportResponse), third
        assert (third.accepted, third.rejected_count) == (2, 1)
        assert third.rejected[0].code == "missing_identity"

        # They are really there: one profile each, found by user id and by (normalised) e-mail, with their traits.
        for user_id, email, plan in [("gc-1", "ann.lee@example.com", "pro"), ("gc-2", "bob@example.com", "free"),
                                     ("gc-3", "cy@example.com", "pro"), ("gc-4", "dee@example.com", "pro")]:
            found = http.get("/v1/profiles/lookup", params={"type": "user_id", "value": user_id}, headers=headers)
            assert found.status_code == 200, found.text
            by_email = http.get("/v1/profiles/lookup", params={"type": "email", "value": email}, headers=headers)
            assert by_email.json()["id"] == found.json()["id"]
            assert found.json()["traits"]["plan"] == plan
        listed = http.get("/v1/profiles", params={"limit": 100}, headers=headers).json()["data"]
        assert len(listed) == 5
        pros = http.get("/v1/profiles", params={"where": "traits.plan:eq:pro", "limit": 100}, headers=headers).json()
        assert len(pros["data"]) == 3

        # Errors reach the generated client as problem documents: a write key may not import.
        denied = generated.AuthenticatedClient(base_url=live_server.base_url, token=created["write_key"])
        problem = import_profiles.sync_detailed(client=denied, body=csv_upload())
        assert problem.status_code in (401, 403), problem.content
        assert isinstance(problem.parsed, models.Problem)
