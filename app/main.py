"""The ASGI application: `create_app()` (uvicorn --factory app.main:create_app)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app import api
from app.core.config import Settings, get_settings
from app.core.cors import PublicCorsMiddleware
from app.core.db import Database, aresolve_database_url, create_engine
from app.core.docs import install_docs
from app.core.errors import PROBLEM_CONTENT_TYPE, install_error_handlers
from app.core.guards import InputGuard, MethodGuard
from app.core.logging import configure_logging
from app.core.middleware import (
    BodySizeLimitMiddleware,
    DirectRoutes,
    RequestContextMiddleware,
)
from app.decisions import router as decisions_router
from app.ingest import router as ingest_router
from app.ingest.schemas import EXTRA_SCHEMAS
from app.ingest.throttle import IngestGate
from app.jobs.worker import Worker
from app.workspaces import service as workspace_service

DESCRIPTION = """\
Clientele is an open-source customer data platform for database marketing: it collects
Segment-compatible tracking calls and bulk imports, keeps one clean profile per person, and
serves them to marketers.

Authentication: ingest endpoints take a **write key** (HTTP Basic username, empty password, or
`writeKey` in the body); everything else takes a **secret key** as `Authorization: Bearer`.
Every error is an RFC 9457 `application/problem+json` document.
"""


def operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}_{route.name}" if route.tags else route.name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Everything imported so far lives as long as the process: move it out of the cyclic
    # collector's sight, and collect young objects less often (ingest allocates many short-lived
    # dicts per request, and each full collection used to rescan the whole framework).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    owns_db = getattr(app.state, "db", None) is None
    if owns_db:
        url = await aresolve_database_url(settings)
        app.state.db = Database(create_engine(url, settings), settings)
    # The embedded default: background jobs run in the API process (`clientele worker` runs
    # them elsewhere; both can coexist).
    worker = Worker(app.state.db, settings) if settings.run_worker else None
    try:
        if worker is not None:
            await worker.start()
        yield
    finally:
        if worker is not None:
            await worker.stop()
        if owns_db:
            await app.state.db.dispose()
            app.state.db = None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    app = FastAPI(
        title="Clientele",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # install_docs: Swagger UI and ReDoc from installed files, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = None
    app.state.find_key = workspace_service.find_key  # core.auth's key lookup (core imports no domain)
    install_error_handlers(app)
    install_docs(app)
    app.include_router(api.v1)
    app.include_router(api.root)

    app.state.ingest_gate = IngestGate(
        max_concurrency=settings.ingest_max_concurrency, rate_per_second=settings.ingest_rate_limit_per_second,
        db_concurrency=settings.ingest_db_concurrency,
    )
    single = settings.ingest_max_message_bytes
    tracking = ("track", "identify", "page", "screen", "group", "alias")
    app.add_middleware(MethodGuard)
    app.add_middleware(InputGuard, own_rules=["/v1/batch", "/v1/imports/", *(f"/v1/{t}" for t in tracking)])
    app.add_middleware(DirectRoutes, routes={
        ("POST", "/v1/batch"): (ingest_router.direct_batch, ingest_router.BATCH_ROUTE),
        ("POST", "/v1/decisions"): (decisions_router.direct_decision, decisions_router.DECISION_ROUTE),
    })
    app.add_middleware(
        BodySizeLimitMiddleware,
        default=settings.max_body_bytes,
        limits=[
            ("/v1/imports/", settings.import_max_bytes),
            ("/v1/decisions/import", 64 * 1024 * 1024),
            ("/v1/batch", settings.ingest_max_batch_bytes),
            *((f"/v1/{t}", single) for t in tracking),
        ],
    )
    app.add_middleware(PublicCorsMiddleware, paths=ingest_router.TRACKING_PATHS)
    app.add_middleware(RequestContextMiddleware)  # outermost: sees every response

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _problem_validation_responses(schema)
        _add_schemas(schema, EXTRA_SCHEMAS)
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def _problem_validation_responses(schema: dict[str, Any]) -> None:
    """FastAPI documents 422 as its own HTTPValidationError; ours is a Problem. Say so."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path in schema.get("paths", {}).values():
        for op in path.values():
            resp = op.get("responses", {})
            if "422" in resp:
                resp["422"] = {
                    "description": "Validation error: `errors` holds the JSON pointer of each bad field.",
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}},
                }
            for code, r in resp.items():
                if code.startswith(("4", "5")) and "content" in r:
                    r["content"] = {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}}
    # What the guards and error handlers answer on any route (app/core/guards.py, errors.py).
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            resp = op.setdefault("responses", {})
            body = op.get("requestBody", {}).get("content", {})
            if ("application/json" in body or op.get("parameters")) and "400" not in resp:
                resp["400"] = {
                    "description": "Bad Request: malformed JSON, or a value no route accepts (a NUL character, an "
                    "unpaired surrogate, invalid UTF-8, an integer past 64 bits, a number past a double, nesting past "
                    "64 levels).",
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}},
                }
            if path.startswith("/v1/") and "503" not in resp:
                resp["503"] = {
                    "description": "Service Unavailable: the database cannot be reached or is overloaded; retry "
                    "after `Retry-After` seconds.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}},
                }
    comps = schema.get("components", {}).get("schemas", {})
    comps.pop("HTTPValidationError", None)
    comps.pop("ValidationError", None)


def _add_schemas(schema: dict[str, Any], models: Any) -> None:
    """Components for bodies that handlers parse themselves (documented, not validated by FastAPI)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in generated.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components[model.__name__] = generated
