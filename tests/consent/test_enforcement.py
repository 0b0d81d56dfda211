"""`check` (Python, one profile) and `consent_clause` (SQL, every profile at once) must give the
same answer on the same data: defaults, withdrawal after a grant, expiry, stale notices,
all-channel records against channel ones, and merged profiles (stricter wins before the merge,
the latest after it). If either drifts from the rules in app/consent/service.py, this fails."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import repository as consent_repository
from app.consent import service as consent_service
from app.consent.models import CHANNELS
from app.profiles.models import Profile
from tests.conftest import WorkspaceKeys
from tests.consent.test_consent_api import consent, profile_id

PURPOSES = ("email_marketing", "sms_marketing", "direct_mail", "personalization", "advertising", "analytics")


async def _scenario(client: httpx.AsyncClient, ws: WorkspaceKeys) -> dict[str, str]:
    admin = ws.admin_headers
    await client.post("/v1/consent/notices", json={"key": "pp", "title": "PP", "url": "https://e.com/1",
                                                   "published_at": "2026-01-01T00:00:00Z"}, headers=admin)
    await client.post("/v1/consent/notices", json={"key": "pp", "title": "PP", "url": "https://e.com/2", "major": True,
                                                   "published_at": "2026-05-01T00:00:00Z"}, headers=admin)
    p = {name: await profile_id(client, ws, name) for name in ("nothing", "withdrew", "stale", "expiring", "survivor",
                                                                "lenient", "gpc_then_ads", "quiet")}
    p["absorbed"] = await profile_id(client, ws, "absorbed-anon", "anonymous_id")
    p["generous"] = await profile_id(client, ws, "generous-anon", "anonymous_id")

    async def say(who: str, purpose: str, channel: str | None, status: str, when: str, **extra) -> None:
        body = {"purpose": purpose, "status": status, "occurred_at": when, **extra}
        if channel is not None:
            body["channel"] = channel
        resp = await consent(client, ws, p[who], **body)
        assert resp.status_code == 201, resp.text

    await say("withdrew", "email_marketing", "email", "granted", "2026-02-01T00:00:00Z")
    await say("withdrew", "email_marketing", "email", "withdrawn", "2026-04-01T00:00:00Z")
    await say("withdrew", "direct_mail", "direct_mail", "denied", "2026-02-01T00:00:00Z")
    await say("stale", "email_marketing", "email", "granted", "2026-02-01T00:00:00Z", notice="pp", notice_version=1)
    await say("stale", "sms_marketing", None, "granted", "2026-02-01T00:00:00Z", notice="pp", notice_version=2)
    await say("expiring", "sms_marketing", "sms", "granted", "2026-02-01T00:00:00Z", expires_at="2026-06-01T00:00:00Z")
    await say("gpc_then_ads", "advertising", None, "denied", "2026-02-01T00:00:00Z", source="sdk", method="gpc")
    await say("gpc_then_ads", "advertising", "ads", "granted", "2026-03-01T00:00:00Z")
    # Merges: survivor granted e-mail, absorbed denied it earlier (stricter wins); absorbed
    # granted push; "lenient" has nothing and absorbs "generous", who granted e-mail.
    await say("survivor", "email_marketing", "email", "granted", "2026-03-01T00:00:00Z")
    await say("absorbed", "email_marketing", "email", "denied", "2026-02-01T00:00:00Z")
    await say("absorbed", "personalization", "push", "granted", "2026-02-01T00:00:00Z")
    await say("generous", "email_marketing", None, "granted", "2026-02-01T00:00:00Z")
    for survivor, absorbed in (("survivor", "absorbed"), ("lenient", "generous")):
        merged = await client.post("/v1/profiles/merge", json={"profile_ids": [p[survivor], p[absorbed]],
                                                               "survivor_id": p[survivor]}, headers=admin)
        assert merged.status_code == 200, merged.text
    # After the merge, "lenient" withdraws SMS... and re-grants e-mail on the web (all channels stays).
    now = datetime.now(UTC).isoformat()
    await say("lenient", "sms_marketing", "sms", "withdrawn", now)
    return p


async def test_check_and_consent_clause_agree(client: httpx.AsyncClient, workspace: WorkspaceKeys, db) -> None:
    p = await _scenario(client, workspace)
    async with db.session() as session:
        await _compare(session, workspace, p)


async def _compare(session: AsyncSession, workspace: WorkspaceKeys, p: dict[str, str]) -> None:
    ws = uuid.UUID(workspace.workspace_id)
    survivors = {name: uuid.UUID(pid) for name, pid in p.items() if name not in ("absorbed", "generous")}
    times = [datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)]
    compared = allowed = 0
    for at in times:
        for purpose in (*PURPOSES, "no_such_purpose"):
            for channel in CHANNELS:
                clause = consent_service.consent_clause(workspace_id=ws, purpose=purpose, channel=channel, at=at)
                rows = await session.execute(
                    sa.select(Profile.id, clause).where(Profile.workspace_id == ws, Profile.id.in_(list(survivors.values())))
                )
                in_sql = {pid: bool(ok) for pid, ok in rows}
                for name, pid in survivors.items():
                    answer = await consent_service.check(session, workspace_id=ws, profile_id=pid, purpose=purpose,
                                                         channel=channel, at=at)
                    assert answer.allowed == in_sql[pid], (name, purpose, channel, at, answer)
                    compared += 1
                    allowed += answer.allowed
    assert compared == len(times) * 7 * 6 * len(survivors) and 0 < allowed < compared

    # The cases the scenario stages, spelled out.
    async def ask(name: str, purpose: str, channel: str, at: datetime) -> consent_service.ConsentCheck:
        return await consent_service.check(session, workspace_id=ws, profile_id=uuid.UUID(p[name]), purpose=purpose,
                                           channel=channel, at=at)

    mar, jul = datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC)
    assert (await ask("nothing", "email_marketing", "email", jul)).status == "default_denied"
    assert (await ask("nothing", "direct_mail", "direct_mail", jul)).allowed
    assert (await ask("withdrew", "email_marketing", "email", mar)).allowed
    assert (await ask("withdrew", "email_marketing", "email", jul)).status == "withdrawn"
    assert (await ask("stale", "email_marketing", "email", mar)).allowed
    assert (await ask("stale", "email_marketing", "email", jul)).status == "stale"
    assert (await ask("stale", "sms_marketing", "sms", jul)).allowed  # given under the major version itself
    assert (await ask("expiring", "sms_marketing", "sms", jul)).status == "expired"
    assert (await ask("gpc_then_ads", "advertising", "ads", jul)).allowed
    assert not (await ask("gpc_then_ads", "advertising", "web", jul)).allowed
    merged = await ask("survivor", "email_marketing", "email", jul)
    assert not merged.allowed and "stricter" in merged.reason
    assert (await ask("survivor", "personalization", "push", jul)).allowed
    assert (await ask("absorbed", "personalization", "push", jul)).profile_id == uuid.UUID(p["survivor"])
    assert (await ask("lenient", "email_marketing", "sms", jul)).allowed
    # The absorbed row itself is never selected by the clause: ask about its survivor.
    absorbed_row = await session.scalar(
        sa.select(consent_service.consent_clause(workspace_id=ws, purpose="personalization", channel="push", at=jul))
        .select_from(Profile).where(Profile.workspace_id == ws, Profile.id == uuid.UUID(p["absorbed"]))
    )
    assert absorbed_row is False


async def test_clause_in_a_where_counts_consenting_profiles(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys, db
) -> None:
    ws = uuid.UUID(workspace.workspace_id)
    for i in range(5):
        pid = await profile_id(client, workspace, f"u{i}")
        if i % 2 == 0:
            await consent(client, workspace, pid, purpose="email_marketing", channel="email", status="granted")
    # The other workspace's grants do not count here.
    theirs = await profile_id(client, other_workspace, "u1")
    await consent(client, other_workspace, theirs, purpose="email_marketing", channel="email", status="granted")
    later = datetime.now(UTC) + timedelta(seconds=5)
    clause = consent_service.consent_clause(workspace_id=ws, purpose="email_marketing", channel="email", at=later)
    async with db.session() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(Profile).where(Profile.workspace_id == ws, clause))
    assert count == 3
    assert consent_service.purpose_for_channel("ads") == "advertising"
    assert {c: consent_service.purpose_for_channel(c) for c in CHANNELS} == {
        "email": "email_marketing", "sms": "sms_marketing", "direct_mail": "direct_mail", "push": "personalization",
        "web": "personalization", "ads": "advertising",
    }


async def test_check_loaded_answers_as_check(client: httpx.AsyncClient, workspace: WorkspaceKeys, db) -> None:
    """A decision reads the check's inputs with the person (`check_columns`) and answers with
    `check_loaded`: the same answer as `check`, word for word, in every case of the scenario."""
    p = await _scenario(client, workspace)
    ws = uuid.UUID(workspace.workspace_id)
    profile = Profile.__table__
    columns = [expr.label(name) for name, expr in consent_repository.check_columns(profile).items()]
    survivors = {name: uuid.UUID(pid) for name, pid in p.items() if name not in ("absorbed", "generous")}
    times = [datetime(2026, 3, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)]
    statuses = set()
    async with db.session() as session:
        for at in times:
            for purpose in (*PURPOSES, "no_such_purpose"):
                for channel in CHANNELS:
                    for name, pid in survivors.items():
                        row = (await session.execute(
                            sa.select(*columns).where(profile.c.workspace_id == ws, profile.c.id == pid),
                            {"check_purpose": purpose, "check_channel": channel},
                        )).mappings().one()
                        loaded = consent_service.check_loaded(row, profile_id=pid, purpose=purpose, channel=channel,
                                                              at=at)
                        answer = await consent_service.check(session, workspace_id=ws, profile_id=pid,
                                                             purpose=purpose, channel=channel, at=at)
                        assert (loaded.allowed, loaded.status, loaded.reason, loaded.record_id, loaded.profile_id) == (
                            answer.allowed, answer.status, answer.reason, answer.record_id, answer.profile_id,
                        ), (name, purpose, channel, at)
                        statuses.add(answer.status)
    # Every kind of answer the scenario stages was compared.
    assert {"granted", "withdrawn", "denied", "stale", "expired", "default_denied", "default_granted",
            "unknown_purpose"} <= statuses
