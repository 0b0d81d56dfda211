"""Erasure with the other domains' data in place: the consent ledger (append-only, except for
erasure) and segment memberships and changes go with the person; the ledger still refuses an
ordinary DELETE afterwards; nothing of the person is left anywhere in the database."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.conftest import WorkspaceKeys
from tests.privacy.test_privacy_api import (
    dump_database, leaks, live, make_person, profile_of, raw, request, rows_pointing_at,
)
from tests.segments.helpers import create_segment, refresh


async def test_erasure_takes_consent_records_and_segment_memberships(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    ann, bob = make_person("ann"), make_person("bob")
    for p in (ann, bob):
        await live(client, workspace, p)
    profiles = {p.user_id: await profile_of(client, workspace, p) for p in (ann, bob)}
    for prof in profiles.values():
        resp = await client.post(
            f"/v1/profiles/{prof['id']}/consents", headers=workspace.admin_headers,
            json={"purpose": "email_marketing", "channel": "email", "status": "granted", "source": "form",
                  "proof": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}},
        )
        assert resp.status_code in (200, 201), resp.text
    seg = await create_segment(client, workspace, "Lyon, e-mailable",
                               {"and": [{"trait": "city", "op": "eq", "value": "Lyon"},
                                        {"consent": {"purpose": "email_marketing", "channel": "email"}}]})
    result = await refresh(client, workspace, seg["id"], full=True)
    members = await client.get(f"/v1/segments/{seg['id']}/members", headers=workspace.admin_headers)
    assert {m["profile_id"] for m in members.json()["data"]} == {p["id"] for p in profiles.values()}, result

    ann_profile = profiles[ann.user_id]
    ann_ids = [uuid.UUID(ann_profile["id"]), *(uuid.UUID(m) for m in ann_profile.get("merged_from") or [])]
    conn = await raw(connection)
    before = await rows_pointing_at(conn, ann_ids)
    assert {"consent_record.profile_id", "segment_member.profile_id", "segment_change.profile_id"} <= set(before), before

    done = await request(client, workspace, "erasure", "email", ann.email)
    assert done["status"] == "completed", done
    assert await rows_pointing_at(conn, ann_ids) == {}
    assert leaks(await dump_database(conn), ann.needles) == {}

    # Bob keeps his consent and his membership; the ledger is still append-only for everyone else.
    bob_id = uuid.UUID(profiles[bob.user_id]["id"])
    assert await conn.fetchval("SELECT count(*) FROM consent_record WHERE profile_id = $1", bob_id) == 1
    # (The erasure's SET LOCAL lasts to the end of this test's one outer transaction; a later
    # request has a transaction of its own, where the setting is unset.)
    await conn.execute("SELECT set_config('clientele.erasure', '', true)")
    await conn.execute("SAVEPOINT s")
    with pytest.raises(Exception, match="append-only"):
        await conn.execute("DELETE FROM consent_record WHERE profile_id = $1", bob_id)
    await conn.execute("ROLLBACK TO SAVEPOINT s")
    members = await client.get(f"/v1/segments/{seg['id']}/members", headers=workspace.admin_headers)
    assert [m["profile_id"] for m in members.json()["data"]] == [str(bob_id)]


async def test_erasure_holds_every_segment_refresh_until_it_commits(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    """Memberships have no foreign key to profiles (migration 0019): an erasure instead takes
    each segment's refresh lock, so no refresh that read the person writes after it."""
    ann = make_person("ann")
    await live(client, workspace, ann)
    segments = [await create_segment(client, workspace, f"Lyon {i}", {"trait": "city", "op": "eq", "value": "Lyon"})
                for i in range(3)]
    # (Not refreshed here: a refresh takes its segment's lock, and this test runs in one transaction.)
    conn = await raw(connection)
    keys = await conn.fetch(
        "SELECT hashtextextended('segment:' || id::text, 0) AS key FROM segment WHERE workspace_id = $1",
        uuid.UUID(workspace.workspace_id),
    )
    held = """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
              AND ((classid::bigint << 32) | objid::bigint) = ANY($1::bigint[])"""
    assert await conn.fetchval(held, [k["key"] for k in keys]) == 0

    done = await request(client, workspace, "erasure", "email", ann.email)
    assert done["status"] == "completed", done
    # The test's one transaction is still open: the erasure's locks are still held in it.
    assert await conn.fetchval(held, [k["key"] for k in keys]) == len(segments)
