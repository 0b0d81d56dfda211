"""Privacy requests: access exports, erasure that really deletes, suppression, retention.

The checks after an erasure do not trust the code under test to know where data lives: one
reads the database catalogue (information_schema) for every table with a profile or
identifier column, another dumps every row of every table of the database as text (COPY ...
TO STDOUT, what pg_dump does) and looks for the person's e-mail, phone, user id and
anonymous ids.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.auth import forget_workspace
from app.identity import cache as identity_cache
from app.privacy import service as privacy_service
from tests.conftest import WorkspaceKeys


@dataclass
class Person:
    user_id: str
    email: str  # as sent (mixed case); stored normalised in lower case
    phone: str  # as sent; stored as E.164
    phone_e164: str
    anon_1: str
    anon_2: str

    @property
    def needles(self) -> list[str]:
        return [self.user_id, self.email.lower(), self.email, self.phone, self.phone_e164, self.anon_1, self.anon_2]


def make_person(name: str = "ann") -> Person:
    tag = uuid.uuid4().hex[:10]
    number = f"415555{int(tag[:4], 16) % 10_000:04d}"
    return Person(
        user_id=f"u-{name}-{tag}", email=f"{name.title()}.{tag}@Example.com", phone=f"+1 ({number[:3]}) {number[3:6]}-{number[6:]}",
        phone_e164=f"+1{number}", anon_1=f"anon-{name}-{tag}-1", anon_2=f"anon-{name}-{tag}-2",
    )


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, batch: list[dict]) -> dict:
    """One /v1/batch request (its response)."""
    resp = await client.post("/v1/batch", json={"batch": batch}, auth=ws.write_auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def live(client: httpx.AsyncClient, ws: WorkspaceKeys, p: Person) -> None:
    """The person's history in three requests, so that the second device and the signed-up
    person are two profiles before the last identify merges them."""
    messages = history(p)
    results = [await send(client, ws, part) for part in (messages[:1], messages[1:4], messages[4:])]
    assert sum(r["accepted"] for r in results) == 6 and not any(r["rejected"] for r in results), results


def history(p: Person, *, now: datetime | None = None) -> list[dict]:
    """A visitor browses anonymously, signs up (identify), orders; a second device is merged in."""
    now = now or datetime.now(UTC)
    t = lambda days: (now - timedelta(days=days)).isoformat()  # noqa: E731
    return [
        {"type": "page", "anonymousId": p.anon_2, "name": "Home", "timestamp": t(9)},
        {"type": "track", "anonymousId": p.anon_1, "event": "Product Viewed", "properties": {"sku": "A1"},
         "timestamp": t(8)},
        {"type": "identify", "anonymousId": p.anon_1, "userId": p.user_id, "timestamp": t(7),
         "traits": {"email": p.email, "phone": p.phone, "name": "Ann Example", "city": "Lyon"}},
        {"type": "track", "userId": p.user_id, "event": "Order Completed", "timestamp": t(6),
         "properties": {"order_id": f"o-{p.user_id}", "revenue": 42.5}},
        # The second device: identified as the same user, its profile is merged in.
        {"type": "identify", "anonymousId": p.anon_2, "userId": p.user_id, "timestamp": t(5)},
        {"type": "group", "userId": p.user_id, "groupId": "acme-corp", "traits": {"name": "Acme"}, "timestamp": t(4)},
    ]


async def profile_of(client: httpx.AsyncClient, ws: WorkspaceKeys, p: Person) -> dict:
    resp = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": p.user_id},
                            headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def request(client: httpx.AsyncClient, ws: WorkspaceKeys, type_: str, id_type: str, value: str,
                  *, wait: bool = True) -> dict:
    resp = await client.post("/v1/privacy/requests", params={"wait": str(wait).lower()},
                             json={"type": type_, "identifier": {"type": id_type, "value": value}},
                             headers=ws.admin_headers)
    assert resp.status_code == (200 if wait else 202), resp.text
    return resp.json()


async def raw(connection: AsyncConnection):
    return (await connection.get_raw_connection()).driver_connection


# The test's own reading of the catalogue (deliberately not app.privacy.catalog): every
# column of every table that can point at a profile or hold an identifier.
PROFILE_COLUMNS_SQL = """
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'public'
  AND ((data_type = 'uuid' AND (column_name LIKE '%profile%' OR column_name IN ('survivor_id', 'absorbed_id', 'merged_into')))
       OR (data_type = 'ARRAY' AND column_name LIKE '%profile%'))
ORDER BY table_name, column_name
"""
IDENTIFIER_COLUMNS_SQL = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = 'public' AND data_type IN ('text', 'character varying')
  AND (column_name IN ('user_id', 'anonymous_id', 'previous_id', 'email', 'phone', 'raw', 'value')
       OR column_name LIKE 'identifier%')
ORDER BY table_name, column_name
"""


async def rows_pointing_at(conn, profile_ids: list[uuid.UUID]) -> dict[str, int]:
    found: dict[str, int] = {}
    for r in await conn.fetch(PROFILE_COLUMNS_SQL):
        table, column = r["table_name"], r["column_name"]
        cond = f'"{column}" && $1::uuid[]' if r["data_type"] == "ARRAY" else f'"{column}" = ANY($1::uuid[])'
        if table == "profile" and column == "id":
            pass
        n = await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE {cond}', profile_ids)
        if n:
            found[f"{table}.{column}"] = n
    return found


async def rows_holding(conn, values: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    lowered = [v.lower() for v in values]
    for r in await conn.fetch(IDENTIFIER_COLUMNS_SQL):
        table, column = r["table_name"], r["column_name"]
        n = await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE lower("{column}") = ANY($1::text[])', lowered)
        if n:
            found[f"{table}.{column}"] = n
    return found


async def dump_database(conn) -> dict[str, str]:
    """Every row of every table of the database (all schemas but the system's) as COPY text."""
    tables = await conn.fetch(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY 1, 2"
    )
    out: dict[str, str] = {}
    for t in tables:
        chunks: list[bytes] = []

        async def sink(data: bytes) -> None:
            chunks.append(data)

        name = f'"{t["schemaname"]}"."{t["tablename"]}"'
        await conn.copy_from_query(f"SELECT * FROM {name}", output=sink)
        out[name] = b"".join(chunks).decode("utf-8", "replace")
    return out


def leaks(dump: dict[str, str], needles: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table, text in dump.items():
        hits = [n for n in needles if re.search(re.escape(n), text, re.IGNORECASE)]
        if hits:
            found[table] = hits
    return found


async def test_erasure_deletes_the_person_everywhere_and_suppresses_them(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    ann, bob = make_person("ann"), make_person("bob")
    for p in (ann, bob):
        await live(client, workspace, p)
    ann_profile = await profile_of(client, workspace, ann)
    bob_profile = await profile_of(client, workspace, bob)
    # Computed traits, a replayable response holding Ann's profile (Idempotency-Key), and a
    # table another domain might add later, with nothing but the convention to go by.
    refresh = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=workspace.admin_headers)
    assert refresh.status_code == 200, refresh.text
    for prof, key in ((ann_profile, "patch-ann"), (bob_profile, "patch-bob")):
        patched = await client.patch(f"/v1/profiles/{prof['id']}", json={"set": {"tier": "gold"}},
                                     headers={**workspace.admin_headers, "Idempotency-Key": key})
        assert patched.status_code == 200, patched.text
    conn = await raw(connection)
    await conn.execute("CREATE TABLE test_future_consent (workspace_id uuid NOT NULL, profile_id uuid NOT NULL, "
                       "purpose text NOT NULL)")
    for prof in (ann_profile, bob_profile):
        await conn.execute("INSERT INTO test_future_consent VALUES ($1, $2, 'email_marketing')",
                           uuid.UUID(workspace.workspace_id), uuid.UUID(prof["id"]))

    ann_ids = [uuid.UUID(ann_profile["id"]), *(uuid.UUID(m) for m in ann_profile.get("merged_from") or [])]
    assert len(ann_ids) == 2, ann_profile  # the second device's profile was merged in
    before = await rows_pointing_at(conn, ann_ids)
    assert {"event.profile_id", "identity.profile_id", "computed_trait_value.profile_id",
            "profile_merge.survivor_id", "account_member.profile_id", "test_future_consent.profile_id"} <= set(before)
    assert leaks(await dump_database(conn), ann.needles)  # the dump check can fail

    done = await request(client, workspace, "erasure", "email", ann.email.upper())
    assert done["status"] == "completed", done
    assert [e["action"] for e in done["audit"]] == ["received", "processing", "completed"]
    assert done["result"]["found"] and done["result"]["profiles"] == 2
    assert done["result"]["rows"]["test_future_consent"] == 1
    assert done["result"]["idempotency_records"] == 1

    # 1. The catalogue check: no table with a profile or identifier column holds Ann.
    assert await rows_pointing_at(conn, ann_ids) == {}
    assert await rows_holding(conn, ann.needles) == {}
    # 2. The dump check: nothing of Ann anywhere in the database, as text.
    assert leaks(await dump_database(conn), ann.needles) == {}
    # ...while Bob is untouched.
    assert (await profile_of(client, workspace, bob))["traits"]["tier"] == "gold"
    assert await conn.fetchval("SELECT count(*) FROM event WHERE profile_id = $1", uuid.UUID(bob_profile["id"])) == 6
    assert await conn.fetchval("SELECT count(*) FROM idempotency_record WHERE key = 'patch-bob'") == 1
    assert await conn.fetchval("SELECT count(*) FROM test_future_consent") == 1

    # What is kept: the request with its audit trail and a keyed hash per identifier.
    kept = await client.get(f"/v1/privacy/requests/{done['id']}", headers=workspace.admin_headers)
    assert kept.status_code == 200 and kept.json()["status"] == "completed"
    assert "value" not in kept.json() and ann.email.lower() not in kept.text
    sup = await client.get("/v1/privacy/suppressions", headers=workspace.admin_headers)
    assert sorted(s["identifier_type"] for s in sup.json()) == ["anonymous_id", "anonymous_id", "email", "phone", "user_id"]

    # Re-ingest: every message carrying one of Ann's identifiers is dropped and counted.
    again = await send(client, workspace, [*history(ann), {"type": "track", "userId": bob.user_id, "event": "Login"}])
    assert again["suppressed"] == 6 and again["accepted"] == 1, again
    single = await client.post("/v1/identify", json={"userId": "someone-new", "traits": {"email": ann.email}},
                               auth=workspace.write_auth)
    assert single.status_code == 200 and single.json()["suppressed"] == 1, single.text
    # Re-import (the next nightly CRM file) is suppressed the same way.
    csv_body = f"user_id,email,name\nu-new-1,{ann.email},Ann\nu-new-2,carl@example.com,Carl\n"
    imported = await client.post("/v1/imports/profiles", content=csv_body,
                                 headers={**workspace.admin_headers, "Content-Type": "text/csv"})
    assert imported.status_code == 200, imported.text
    assert imported.json()["suppressed"] == 1 and imported.json()["accepted"] == 1, imported.json()
    assert leaks(await dump_database(conn), ann.needles) == {}


async def test_access_export_holds_every_table_with_a_profile_id(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    ann = make_person("ann")
    await live(client, workspace, ann)
    await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=workspace.admin_headers)
    prof = await profile_of(client, workspace, ann)
    ids = [uuid.UUID(prof["id"]), *(uuid.UUID(m) for m in prof.get("merged_from") or [])]
    conn = await raw(connection)
    await conn.execute("CREATE TABLE test_future_membership (workspace_id uuid NOT NULL, profile_id uuid NOT NULL, "
                       "segment text NOT NULL)")
    await conn.execute("INSERT INTO test_future_membership VALUES ($1, $2, 'vip')", uuid.UUID(workspace.workspace_id), ids[0])

    req = await request(client, workspace, "access", "user_id", ann.user_id)
    assert req["status"] == "completed" and req["result"]["found"], req
    resp = await client.get(f"/v1/privacy/requests/{req['id']}/export", headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text
    export = resp.json()
    assert export["format"] == "clientele.access-export/1"
    assert sorted(export["profile_ids"]) == sorted(str(i) for i in ids)
    assert {i["type"] for i in export["identifiers"]} == {"user_id", "email", "phone", "anonymous_id"}
    assert export["traits"]["email"] == ann.email and export["traits"]["city"] == "Lyon"
    assert "order_count" in export["computed_traits"]
    # Every table with a profile_id column (read from the catalogue here) that has rows for
    # the person has exactly those rows in the export.
    tables = [r["table_name"] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'profile_id' "
        "AND table_name <> 'privacy_export'"
    )]
    expected = {}
    for t in tables:
        n = await conn.fetchval(f'SELECT count(*) FROM "{t}" WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])',
                                uuid.UUID(workspace.workspace_id), ids)
        if n:
            expected[t] = n
    assert {"event", "identity", "computed_trait_value", "account_member", "test_future_membership"} <= set(expected)
    for t, n in expected.items():
        assert export["counts"].get(t) == n, (t, n, export["counts"])
    assert export["counts"]["event"] == 6 and len(export["tables"]["event"]) == 6
    assert export["counts"]["profile"] == 2 and export["counts"]["profile_merge"] >= 1
    # The identifier is not kept on the request once processed.
    assert await conn.fetchval("SELECT identifier_value FROM privacy_request WHERE id = $1", uuid.UUID(req["id"])) is None
    # An erasure afterwards deletes the export too (it carries the person's profile_id).
    await request(client, workspace, "erasure", "user_id", ann.user_id)
    gone = await client.get(f"/v1/privacy/requests/{req['id']}/export", headers=workspace.admin_headers)
    assert gone.status_code == 409 and gone.headers["content-type"].startswith("application/problem+json")


async def test_request_runs_as_a_background_job(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, db, connection: AsyncConnection
) -> None:
    ann = make_person("ann")
    await live(client, workspace, ann)
    queued = await request(client, workspace, "erasure", "anonymous_id", ann.anon_2, wait=False)
    assert queued["status"] == "pending" and [e["action"] for e in queued["audit"]] == ["received", "queued"]
    conn = await raw(connection)
    job = await conn.fetchrow("SELECT entrypoint, payload FROM pgqueuer WHERE dedupe_key = $1",
                              f"privacy.process:{queued['id']}")
    assert job["entrypoint"] == "privacy.process" and ann.anon_2.encode() not in job["payload"]
    status = await privacy_service.process_request(
        db, workspace_id=uuid.UUID(workspace.workspace_id), request_id=uuid.UUID(queued["id"])
    )
    assert status == "completed"
    got = (await client.get(f"/v1/privacy/requests/{queued['id']}", headers=workspace.admin_headers)).json()
    assert got["status"] == "completed" and got["result"]["profiles"] == 2
    assert [e["action"] for e in got["audit"]] == ["received", "queued", "processing", "completed"]
    assert got["started_at"] and got["finished_at"]
    # A retried job does nothing twice.
    assert await privacy_service.process_request(
        db, workspace_id=uuid.UUID(workspace.workspace_id), request_id=uuid.UUID(queued["id"])) == "completed"
    assert leaks(await dump_database(conn), ann.needles) == {}


async def test_lifting_a_suppression_lets_the_person_back_as_a_new_profile(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    ann = make_person("ann")
    await send(client, workspace, history(ann))  # the process's identity cache now knows Ann
    old = await profile_of(client, workspace, ann)
    done = await request(client, workspace, "erasure", "user_id", ann.user_id)
    found = await client.get("/v1/privacy/suppressions", params={"identifier_type": "anonymous_id", "identifier_value": ann.anon_1},
                             headers=workspace.admin_headers)
    assert found.status_code == 200 and len(found.json()) == 1, found.text
    assert found.json()[0]["request_id"] == done["id"]
    lifted = await client.delete(f"/v1/privacy/suppressions/{found.json()[0]['id']}", headers=workspace.admin_headers)
    assert lifted.status_code == 200, lifted.text
    again = await client.delete(f"/v1/privacy/suppressions/{found.json()[0]['id']}", headers=workspace.admin_headers)
    assert again.status_code == 404
    # The anonymous id is accepted again, on a new profile: the identity cache does not send
    # it to the erased one.
    back = await send(client, workspace, [{"type": "track", "anonymousId": ann.anon_1, "event": "Back"}])
    assert back["accepted"] == 1 and back["suppressed"] == 0, back
    conn = await raw(connection)
    pid = await conn.fetchval("SELECT profile_id FROM event WHERE anonymous_id = $1", ann.anon_1)
    assert pid is not None and pid != uuid.UUID(old["id"])
    assert await conn.fetchval("SELECT count(*) FROM profile WHERE id = $1", pid) == 1
    # Ann's other identifiers are still suppressed.
    still = await send(client, workspace, [{"type": "track", "userId": ann.user_id, "event": "Back"}])
    assert still["suppressed"] == 1
    audit = (await client.get(f"/v1/privacy/requests/{done['id']}", headers=workspace.admin_headers)).json()["audit"]
    assert audit[-1]["action"] == "suppression_lifted"


async def test_the_identity_cache_forgets_an_erased_person(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    ann = make_person("ann")
    await send(client, workspace, history(ann))
    await send(client, workspace, [{"type": "track", "anonymousId": ann.anon_1, "event": "Warm"}])  # cached now
    await request(client, workspace, "erasure", "email", ann.email)
    conn = await raw(connection)
    # The log holds an erasure mark, not Ann's profile ids.
    marks = await conn.fetch("SELECT profile_id FROM identity_change WHERE workspace_id = $1",
                             uuid.UUID(workspace.workspace_id))
    assert [m["profile_id"] for m in marks][-1] == identity_cache.ERASED
    # Another process's view: its cached workspace settings predate the erasure (they say
    # "no suppressions") and its identity cache still places Ann's anonymous id on her old
    # profile. The erasure mark in the log it reads makes it check, and Ann is dropped.
    await conn.execute("UPDATE workspace SET settings = settings #- '{privacy,suppressions}' WHERE id = $1",
                       uuid.UUID(workspace.workspace_id))
    forget_workspace(uuid.UUID(workspace.workspace_id))
    assert not identity_cache.erasure_seen(uuid.UUID(workspace.workspace_id))
    resp = await send(client, workspace, [{"type": "track", "anonymousId": ann.anon_1, "event": "Again"}])
    assert resp["suppressed"] == 1 and resp["accepted"] == 0
    assert identity_cache.erasure_seen(uuid.UUID(workspace.workspace_id))


async def test_unknown_person_is_suppressed_without_deleting_anything(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    done = await request(client, workspace, "erasure", "email", "nobody@example.org")
    assert done["result"]["found"] is False and done["result"]["rows_deleted"] == 0
    access = await request(client, workspace, "access", "email", "nobody@example.org")
    assert access["result"]["found"] is False
    export = await client.get(f"/v1/privacy/requests/{access['id']}/export", headers=workspace.admin_headers)
    assert export.status_code == 409
    resp = await send(client, workspace, [{"type": "identify", "userId": "x1", "traits": {"email": "Nobody@Example.org"}}])
    assert resp["suppressed"] == 1


@pytest.mark.parametrize("body, pointer", [
    ({"type": "forget", "identifier": {"type": "email", "value": "a@b.co"}}, "/type"),
    ({"type": "erasure", "identifier": {"type": "Email", "value": "a@b.co"}}, "/identifier/type"),
    ({"type": "erasure", "identifier": {"type": "email"}}, "/identifier/value"),
    ({"type": "erasure", "identifier": {"type": "email", "value": "a@b.co"}, "extra": 1}, "/extra"),
])
async def test_bad_requests_are_problems(client: httpx.AsyncClient, workspace: WorkspaceKeys, body, pointer) -> None:
    resp = await client.post("/v1/privacy/requests", json=body, headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/problem+json"), resp.text
    assert pointer in resp.text


async def test_unusable_identifiers_are_rejected(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    for ident in ({"type": "email", "value": "not-an-email"}, {"type": "user_id", "value": "null"}):
        resp = await client.post("/v1/privacy/requests", json={"type": "erasure", "identifier": ident},
                                 headers=workspace.admin_headers)
        assert resp.status_code == 422, resp.text
        assert resp.json()["code"] == "invalid_identifier"
    lookup = await client.get("/v1/privacy/suppressions", params={"identifier_type": "email"}, headers=workspace.admin_headers)
    assert lookup.status_code == 422


async def test_keys_and_workspace_isolation(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    ann = make_person("ann")
    for ws in (workspace, other_workspace):
        await send(client, ws, history(ann))
    done = await request(client, workspace, "erasure", "user_id", ann.user_id)
    access = await request(client, workspace, "access", "user_id", "someone-else")
    sup = (await client.get("/v1/privacy/suppressions", headers=workspace.admin_headers)).json()
    other = other_workspace.admin_headers
    for path in (f"/v1/privacy/requests/{done['id']}", f"/v1/privacy/requests/{access['id']}/export"):
        resp = await client.get(path, headers=other)
        assert resp.status_code == 404, (path, resp.text)
    assert (await client.delete(f"/v1/privacy/suppressions/{sup[0]['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/privacy/requests", headers=other)).json() == []
    assert (await client.get("/v1/privacy/suppressions", headers=other)).json() == []
    # The same person in the other workspace is neither erased nor suppressed there.
    assert (await profile_of(client, other_workspace, ann))["traits"]["city"] == "Lyon"
    resp = await send(client, other_workspace, [{"type": "track", "userId": ann.user_id, "event": "Still here"}])
    assert resp["accepted"] == 1 and resp["suppressed"] == 0
    # Write keys and read-only keys cannot file or read requests.
    write = await client.post("/v1/privacy/requests", json={"type": "access", "identifier": {"type": "user_id", "value": "x"}},
                              auth=workspace.write_auth)
    assert write.status_code in (401, 403)
    key = await client.post("/v1/keys", json={"name": "reader", "scopes": ["read"]}, headers=workspace.admin_headers)
    reader = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await client.get(f"/v1/privacy/requests/{done['id']}", headers=reader)).status_code == 403
    listed = (await client.get("/v1/privacy/requests", headers=workspace.admin_headers)).json()
    assert [r["id"] for r in listed] == [access["id"], done["id"]]


async def test_retention_deletes_only_old_events(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys, db, connection: AsyncConnection
) -> None:
    now = datetime.now(UTC)
    old = lambda i, days: {"type": "track", "userId": f"r-{i}", "event": "Seen",  # noqa: E731
                           "timestamp": (now - timedelta(days=days)).isoformat()}
    batch = [old(i, 400 + i) for i in range(7)] + [old(i, 10) for i in range(5)]
    for ws in (workspace, other_workspace):
        await send(client, ws, batch)
    bad = await client.patch("/v1/workspace", json={"event_retention_days": 0}, headers=workspace.admin_headers)
    assert bad.status_code == 422
    resp = await client.patch("/v1/workspace", json={"event_retention_days": 365}, headers=workspace.admin_headers)
    assert resp.status_code == 200 and resp.json()["event_retention_days"] == 365
    assert (await client.get("/v1/workspace", headers=workspace.admin_headers)).json()["event_retention_days"] == 365
    done = await privacy_service.apply_all_retention(db, batch_size=3, now=now)
    assert done.get(workspace.workspace_id) == 7 and other_workspace.workspace_id not in done
    conn = await raw(connection)
    count = "SELECT count(*) FROM event WHERE workspace_id = $1"
    assert await conn.fetchval(count, uuid.UUID(workspace.workspace_id)) == 5
    assert await conn.fetchval(count, uuid.UUID(other_workspace.workspace_id)) == 12
    assert await conn.fetchval(
        "SELECT min(timestamp) FROM event WHERE workspace_id = $1", uuid.UUID(workspace.workspace_id)
    ) > now - timedelta(days=365)
    off = await client.patch("/v1/workspace", json={"event_retention_days": None}, headers=workspace.admin_headers)
    assert off.json()["event_retention_days"] is None


def test_identifier_hashes_are_standard_hmac_sha256_per_workspace() -> None:
    import hashlib
    import hmac

    from app.privacy.hashing import identifier_hash, identifier_hashes, workspace_key

    a, b = uuid.uuid4(), uuid.uuid4()
    expected = hmac.new(workspace_key(a), b"email:ann@example.com", hashlib.sha256).digest()
    assert identifier_hash(a, "email", "ann@example.com") == expected
    assert identifier_hashes(a, [("email", "ann@example.com"), ("user_id", "x")])[0] == expected
    assert identifier_hash(b, "email", "ann@example.com") != expected  # keyed per workspace
    assert identifier_hash(a, "user_id", "ann@example.com") != expected  # and per type


async def test_identifiers_remembered_as_clear_are_checked_again_after_an_erasure(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    ann, bob = make_person("ann"), make_person("bob")
    await send(client, workspace, history(ann))
    await request(client, workspace, "erasure", "user_id", ann.user_id)  # the workspace now has suppressions
    for i in range(2):  # Bob's identifiers are checked once, then remembered as clear
        ok = await send(client, workspace, [{"type": "track", "userId": bob.user_id, "anonymousId": bob.anon_1,
                                             "event": f"Visit {i}"}])
        assert ok["accepted"] == 1 and ok["suppressed"] == 0
    await request(client, workspace, "erasure", "anonymous_id", bob.anon_1)
    gone = await send(client, workspace, [{"type": "track", "userId": bob.user_id, "anonymousId": bob.anon_1,
                                           "event": "Visit 3"}])
    assert gone["suppressed"] == 1 and gone["accepted"] == 0, gone
