from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.core.errors import DATABASE_RETRY_AFTER_SECONDS, ServiceUnavailable, responses
from app.core.migrations import head_revisions

router = APIRouter(tags=["health"])
_RETRY = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}


# /healthz must answer even when the database does not: it waits this long for the revision.
HEALTHZ_DATABASE_TIMEOUT_SECONDS = 1.0


class Health(BaseModel):
    """Liveness or readiness status."""

    status: str = Field(examples=["ok"])
    migration: str | None = Field(
        default=None, examples=["0011"],
        description="The database's Alembic revision; null from /healthz when the database did not answer within a second.",
    )


async def _database_revisions(request: Request) -> list[str]:
    db = getattr(request.app.state, "db", None)
    if db is None:
        raise ServiceUnavailable("The database is not configured yet.")
    async with db.session() as session:
        return list((await session.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all())


@router.get("/healthz", response_model=Health, summary="Liveness: the process is up")
async def healthz(request: Request) -> Health:
    """Always 200 while the process serves; `migration` says which schema its database has
    (readiness, with a 503 when the database is behind, is /readyz)."""
    try:
        version = await asyncio.wait_for(_database_revisions(request), HEALTHZ_DATABASE_TIMEOUT_SECONDS)
    except Exception:  # liveness does not depend on the database
        return Health(status="ok")
    return Health(status="ok", migration=",".join(sorted(version)) or None)


@router.get("/readyz", response_model=Health, responses=responses(503), summary="Readiness: database reachable and migrated")
async def readyz(request: Request) -> Health:
    if getattr(request.app.state, "db", None) is None:
        raise ServiceUnavailable("The database is not configured yet.", headers=_RETRY)
    try:
        version = await _database_revisions(request)
    except Exception as exc:  # any failure to reach the database means "not ready"
        raise ServiceUnavailable(
            f"The database is unreachable or not migrated ({type(exc).__name__}).", headers=_RETRY
        ) from exc
    heads = head_revisions()
    if set(version) != heads:
        raise ServiceUnavailable(
            f"The database is at migration {sorted(version) or 'none'}, the code expects {sorted(heads)}; "
            "run `clientele migrate`.", headers=_RETRY,
        )
    return Health(status="ok", migration=",".join(sorted(version)))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
