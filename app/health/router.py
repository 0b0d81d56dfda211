from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.core.errors import DATABASE_RETRY_AFTER_SECONDS, ServiceUnavailable, responses
from app.core.migrations import head_revisions

router = APIRouter(tags=["health"])
_RETRY = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}


class Health(BaseModel):
    """Liveness or readiness status."""

    status: str = Field(examples=["ok"])
    migration: str | None = Field(default=None, description="The database's Alembic revision (readyz only).")


@router.get("/healthz", response_model=Health, summary="Liveness: the process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=responses(503), summary="Readiness: database reachable and migrated")
async def readyz(request: Request) -> Health:
    db = getattr(request.app.state, "db", None)
    if db is None:
        raise ServiceUnavailable("The database is not configured yet.", headers=_RETRY)
    try:
        async with db.session() as session:
            version = (await session.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars().all()
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
