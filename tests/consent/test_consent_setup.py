"""Consent set-up: migration 0014 seeds existing workspaces, and the consent secret refuses its
default outside development."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import make_url

from app.consent.service import DEFAULT_PURPOSES
from app.core import migrations
from app.core.config import Settings
from tests.core.test_migrations import scratch_url  # noqa: F401  (fixture)


async def test_0014_seeds_existing_workspaces_and_goes_down(scratch_url: str) -> None:  # noqa: F811
    await asyncio.to_thread(migrations.upgrade, scratch_url, "0011")
    dsn = make_url(scratch_url).set(drivername="postgresql").render_as_string(False)
    ws = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO workspace (id, name) VALUES ($1, 'before consent')", ws)
        await asyncio.to_thread(migrations.upgrade, scratch_url, "0014")
        rows = await conn.fetch(
            "SELECT key, lawful_basis, default_status, sdk_categories FROM consent_purpose WHERE workspace_id = $1", ws
        )
        assert sorted((r["key"], r["lawful_basis"], r["default_status"], tuple(r["sdk_categories"])) for r in rows) == sorted(
            (key, basis, default, categories) for key, _, basis, default, categories in DEFAULT_PURPOSES
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE consent_purpose SET default_status = 'granted' WHERE key = 'email_marketing'")
        await asyncio.to_thread(migrations.downgrade, scratch_url, "0011")
        assert await conn.fetchval("SELECT to_regclass('consent_record')") is None
    finally:
        await conn.close()


def test_consent_secret_refuses_its_default_outside_development() -> None:
    assert Settings(env="development").consent_secret.get_secret_value()
    for env in ("test", "production"):
        with pytest.raises(ValidationError, match="CLIENTELE_CONSENT_SECRET"):
            Settings(env=env, admin_token=SecretStr("strong"))
        Settings(env=env, admin_token=SecretStr("strong"), consent_secret=SecretStr("also strong"),
                 privacy_secret=SecretStr("strong too"))
