"""The committed OpenAPI document and the migrations are contracts: they must not drift."""

from __future__ import annotations

import json
from pathlib import Path

from app.core import migrations
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]


def test_openapi_document_matches_the_app() -> None:
    committed = json.loads((ROOT / "openapi" / "openapi.json").read_text())
    live = json.loads(json.dumps(create_app().openapi()))
    assert committed == live, "openapi/openapi.json is stale: run `clientele openapi` (or `make openapi`) and commit it"


def test_operation_ids_are_tag_and_handler() -> None:
    doc = create_app().openapi()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert len(op["tags"]) == 1, (path, method)
            assert op["operationId"].startswith(op["tags"][0] + "_"), (path, method)


def test_public_schemas_have_descriptions() -> None:
    doc = create_app().openapi()
    missing = [name for name, s in doc["components"]["schemas"].items() if not s.get("description") and s.get("type") == "object"]
    assert not missing, f"schemas without a description: {missing}"


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    migrations.check(database_url)
