"""Segment-compatible tracking API: wire format, auth, rejections, limits, idempotency, time."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from tests.conftest import WorkspaceKeys

PROBLEM = "application/problem+json"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, batch: list[dict], **extra) -> httpx.Response:
    return await client.post("/v1/batch", json={"batch": batch, **extra}, auth=ws.write_auth)


async def events(client: httpx.AsyncClient, ws: WorkspaceKeys, **params) -> list[dict]:
    resp = await client.get("/v1/events", params=params, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


async def test_batch_stores_every_type_and_links_identity(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [
        {"type": "page", "anonymousId": "anon-1", "name": "Home", "messageId": "m1"},
        {"type": "identify", "anonymousId": "anon-1", "userId": "u1", "traits": {"email": "Jane@Example.com", "plan": "pro"}, "messageId": "m2"},
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"revenue": 42.5}, "messageId": "m3"},
        {"type": "screen", "userId": "u1", "name": "Cart", "messageId": "m4"},
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}, "messageId": "m5"},
        {"type": "alias", "userId": "u1", "previousId": "anon-1", "messageId": "m6"},
    ]
    resp = await send(client, workspace, batch)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True, "accepted": 6, "duplicates": 0, "suppressed": 0, "rejected": []}
    stored = await events(client, workspace)
    assert len(stored) == 6
    profiles = {e["profile_id"] for e in stored}
    assert len(profiles) == 1, "anonymous page view and known user must be one profile"
    profile = (await client.get(f"/v1/profiles/{profiles.pop()}", headers=workspace.admin_headers)).json()
    assert profile["traits"] == {"email": "Jane@Example.com", "plan": "pro"}
    ids = {(i["type"], i["value"]) for i in profile["identifiers"]}
    assert ids == {("anonymous_id", "anon-1"), ("user_id", "u1"), ("email", "jane@example.com")}


async def test_replayed_batch_adds_nothing(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [{"type": "track", "userId": "u1", "event": "Viewed", "messageId": f"r{i}"} for i in range(5)]
    first = (await send(client, workspace, batch)).json()
    second = (await send(client, workspace, batch)).json()
    assert (first["accepted"], first["duplicates"]) == (5, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 5)
    assert len(await events(client, workspace)) == 5


async def test_replayed_identify_does_not_overwrite_newer_traits(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    old = {"type": "identify", "userId": "u1", "traits": {"plan": "free"}, "messageId": "id-old"}
    new = {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "id-new"}
    await send(client, workspace, [old])
    await send(client, workspace, [new])
    await send(client, workspace, [old])  # SDK retry of the old one
    pid = (await events(client, workspace))[0]["profile_id"]
    profile = (await client.get(f"/v1/profiles/{pid}", headers=workspace.admin_headers)).json()
    assert profile["traits"]["plan"] == "pro"


async def test_duplicate_message_ids_inside_one_batch(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    msg = {"type": "track", "userId": "u1", "event": "A", "messageId": "same"}
    body = (await send(client, workspace, [msg, msg])).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)


async def test_missing_message_id_is_generated_and_retry_safe(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    msg = {"type": "track", "userId": "u1", "event": "A", "timestamp": "2024-05-01T10:00:00Z"}
    assert (await send(client, workspace, [msg], sentAt="2024-05-01T10:00:01Z")).json()["accepted"] == 1
    # The same message retried later (new sentAt) deduplicates on its content.
    again = (await send(client, workspace, [msg], sentAt="2024-05-01T10:05:00Z")).json()
    assert again["duplicates"] == 1
    stored = await events(client, workspace)
    assert stored[0]["message_id"].startswith("srv-")


@pytest.mark.parametrize(
    "message,code",
    [
        ({"type": "track", "event": "A"}, "missing_identity"),
        ({"type": "track", "userId": "u"}, "missing_event"),
        ({"type": "launch", "userId": "u"}, "unknown_type"),
        ({"userId": "u", "event": "A"}, "missing_type"),
        ({"type": "track", "userId": "u", "event": "A", "timestamp": "yesterday"}, "bad_timestamp"),
        ({"type": "track", "userId": "u", "event": "A", "timestamp": 1714557600}, "bad_timestamp"),
        ({"type": "track", "userId": "u", "event": "A", "properties": [1, 2]}, "bad_field"),
        ({"type": "track", "userId": {"id": 1}, "event": "A"}, "bad_field"),
        ({"type": "group", "userId": "u"}, "missing_group_id"),
        ({"type": "alias", "userId": "u"}, "missing_previous_id"),
        ({"type": "track", "userId": "undefined", "event": "A"}, "blocked_identifier"),
        ({"type": "track", "userId": "u", "event": "A", "messageId": {"x": 1}}, "bad_message_id"),
        ("not an object", "not_an_object"),
        ({"type": "track", "userId": "u", "event": "A", "properties": {"note": "a\x00b"}}, "bad_character"),
        ({"type": "track", "userId": "u\x00", "event": "A", "messageId": "nul-id"}, "bad_character"),
    ],
)
async def test_each_rejection_reason_keeps_valid_neighbours(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, message, code: str
) -> None:
    good = [{"type": "track", "userId": "u1", "event": "Good", "messageId": f"g{i}"} for i in range(2)]
    resp = await send(client, workspace, [good[0], message, good[1]])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 2
    assert len(body["rejected"]) == 1
    rejection = body["rejected"][0]
    assert rejection["index"] == 1
    assert rejection["code"] == code
    assert rejection["reason"]
    assert len(await events(client, workspace)) == 2


async def test_oversized_message_is_rejected_alone(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    big = {"type": "track", "userId": "u1", "event": "Big", "messageId": "big", "properties": {"blob": "x" * 33_000}}
    ok = {"type": "track", "userId": "u1", "event": "Small", "messageId": "small"}
    body = (await send(client, workspace, [big, ok])).json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 0, "messageId": "big", "code": "oversized", "reason": body["rejected"][0]["reason"]}]
    assert "32768" in body["rejected"][0]["reason"]


async def test_nul_in_batch_level_context_is_400(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [{"type": "track", "userId": "u1", "event": "A", "messageId": "ctx-nul"}]
    resp = await send(client, workspace, batch, context={"app": "x\x00"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "bad_character"


async def test_batch_over_message_limit_is_413(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [{"type": "track", "userId": "u", "event": "A"}] * 2501
    resp = await client.post("/v1/batch", content=gzip.compress(orjson.dumps({"batch": batch})),
                             headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, auth=workspace.write_auth)
    assert resp.status_code == 413
    assert "2501" in resp.json()["detail"]


async def test_batch_over_byte_limit_is_413(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [{"type": "track", "userId": "u", "event": "A", "properties": {"p": "x" * 20_000}} for _ in range(30)]
    resp = await send(client, workspace, batch)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == PROBLEM


async def test_gzip_bomb_is_413(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    payload = b'{"batch": [' + b" " * 5_000_000 + b"]}"
    resp = await client.post("/v1/batch", content=gzip.compress(payload),
                             headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, auth=workspace.write_auth)
    assert resp.status_code == 413
    assert "decompressed" in resp.json()["detail"]


async def test_gzip_body_is_accepted(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u1", "event": "Zipped", "messageId": "z1"}]})
    resp = await client.post("/v1/batch", content=gzip.compress(body),
                             headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, auth=workspace.write_auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 1
    bad = await client.post("/v1/batch", content=b"not gzip", headers={"Content-Encoding": "gzip"}, auth=workspace.write_auth)
    assert bad.status_code == 400 and bad.json()["code"] == "bad_encoding"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"batch": {}}', b'"text"'])
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, workspace: WorkspaceKeys, content: bytes) -> None:
    resp = await client.post("/v1/batch", content=content, headers={"Content-Type": "application/json"}, auth=workspace.write_auth)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM


async def test_write_key_in_body(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post("/v1/batch", json={"writeKey": workspace.write_key, "batch": [{"type": "track", "userId": "u", "event": "A"}]})
    assert resp.status_code == 200, resp.text


async def test_ingest_auth(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    msg = {"batch": [{"type": "track", "userId": "u", "event": "A"}]}
    assert (await client.post("/v1/batch", json=msg)).status_code == 401
    assert (await client.post("/v1/batch", json=msg, auth=("cl_wk_unknown", ""))).status_code == 401
    secret_basic = await client.post("/v1/batch", json=msg, auth=(workspace.secret_key, ""))
    assert secret_basic.status_code == 403
    secret_bearer = await client.post("/v1/batch", json=msg, headers=workspace.admin_headers)
    assert secret_bearer.status_code == 403
    assert "write key" in secret_bearer.json()["detail"]
    # and the write key is refused on read routes
    read = await client.get("/v1/events", headers={"Authorization": f"Bearer {workspace.write_key}"})
    assert read.status_code == 403
    read_basic = await client.get("/v1/events", auth=workspace.write_auth)
    assert read_basic.status_code == 401


async def test_revoked_write_key_is_401(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    keys = (await client.get("/v1/keys", headers=workspace.admin_headers)).json()
    write = next(k for k in keys if k["kind"] == "write")
    await client.delete(f"/v1/keys/{write['id']}", headers=workspace.admin_headers)
    resp = await send(client, workspace, [{"type": "track", "userId": "u", "event": "A"}])
    assert resp.status_code == 401


async def test_single_message_endpoints(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    ok = await client.post("/v1/track", json={"userId": "u1", "event": "Clicked"}, auth=workspace.write_auth)
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    for path, body in [("/v1/identify", {"userId": "u1", "traits": {"a": 1}}), ("/v1/page", {"anonymousId": "a", "name": "Home"}),
                       ("/v1/screen", {"userId": "u1", "name": "S"}), ("/v1/group", {"userId": "u1", "groupId": "g"}),
                       ("/v1/alias", {"userId": "u1", "previousId": "a"})]:
        resp = await client.post(path, json=body, auth=workspace.write_auth)
        assert resp.status_code == 200, (path, resp.text)
    bad = await client.post("/v1/track", json={"userId": "u1"}, auth=workspace.write_auth)
    assert bad.status_code == 400
    assert bad.json()["code"] == "missing_event"
    wrong = await client.post("/v1/track", json={"type": "identify", "userId": "u1"}, auth=workspace.write_auth)
    assert wrong.status_code == 400
    too_big = await client.post("/v1/track", json={"userId": "u1", "event": "x", "properties": {"p": "x" * 40_000}}, auth=workspace.write_auth)
    assert too_big.status_code == 413


async def test_clock_skew_is_corrected(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    # The client's clock runs one hour fast: it says it sent at now+1h an event from now+1h-10s.
    now = datetime.now(UTC)
    msg = {"type": "track", "userId": "u1", "event": "Skewed", "messageId": "skew",
           "timestamp": iso(now + timedelta(hours=1, seconds=-10)), "sentAt": iso(now + timedelta(hours=1))}
    await send(client, workspace, [msg])
    stored = (await events(client, workspace))[0]
    ts = datetime.fromisoformat(stored["timestamp"])
    received = datetime.fromisoformat(stored["received_at"])
    assert abs((received - ts) - timedelta(seconds=10)) < timedelta(seconds=1)
    assert datetime.fromisoformat(stored["original_timestamp"]) == now.replace(microsecond=now.microsecond) + timedelta(hours=1, seconds=-10)
    assert stored["timestamp_clamped"] is False


async def test_future_timestamp_is_clamped_and_flagged(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    future = datetime.now(UTC) + timedelta(days=3)
    await send(client, workspace, [{"type": "track", "userId": "u1", "event": "Future", "timestamp": iso(future)}])
    stored = (await events(client, workspace))[0]
    assert stored["timestamp_clamped"] is True
    assert stored["timestamp"] == stored["received_at"]
    assert stored["original_timestamp"].startswith(future.date().isoformat())


async def test_batch_context_and_integrations_merge(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    batch = [{"type": "track", "userId": "u1", "event": "A", "context": {"ip": "1.2.3.4"}}]
    await send(client, workspace, batch, context={"library": {"name": "analytics-python"}, "ip": "9.9.9.9"})
    stored = (await events(client, workspace))[0]
    assert stored["context"] == {"library": {"name": "analytics-python"}, "ip": "1.2.3.4"}


async def test_external_ids_link_profiles(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    ext = {"externalIds": [{"id": "C-9", "type": "crm_id", "collection": "users", "encoding": "none"}]}
    await send(client, workspace, [{"type": "track", "anonymousId": "dev-1", "event": "A", "context": ext}])
    await send(client, workspace, [{"type": "track", "anonymousId": "dev-2", "event": "B", "context": ext}])
    stored = await events(client, workspace)
    assert len({e["profile_id"] for e in stored}) == 1


async def test_identify_set_once_and_unset(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, [{"type": "identify", "userId": "u1", "traits": {"plan": "free", "temp": 1},
                                    "context": {"traits_set_once": {"first_source": "ads"}}}])
    await send(client, workspace, [{"type": "identify", "userId": "u1", "traits": {"plan": "pro"},
                                    "context": {"traits_set_once": {"first_source": "email"}, "traits_unset": ["temp"]}}])
    pid = (await events(client, workspace))[0]["profile_id"]
    traits = (await client.get(f"/v1/profiles/{pid}", headers=workspace.admin_headers)).json()["traits"]
    assert traits == {"plan": "pro", "first_source": "ads"}


async def test_identify_links_anonymous_history_to_existing_customer(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, [{"type": "identify", "userId": "u1", "traits": {"name": "Jane"}, "messageId": "a"}])
    await send(client, workspace, [{"type": "page", "anonymousId": "laptop", "name": "Home", "messageId": "b"}])
    # Two profiles so far; logging in on the laptop merges the anonymous one into the customer.
    assert len({e["profile_id"] for e in await events(client, workspace)}) == 2
    await send(client, workspace, [{"type": "identify", "userId": "u1", "anonymousId": "laptop", "messageId": "c"}])
    stored = await events(client, workspace)
    assert len({e["profile_id"] for e in stored}) == 1
    profile = (await client.get(f"/v1/profiles/{stored[0]['profile_id']}", headers=workspace.admin_headers)).json()
    assert len(profile["merged_from"]) == 1
    absorbed = profile["merged_from"][0]
    again = (await client.get(f"/v1/profiles/{absorbed}", headers=workspace.admin_headers)).json()
    assert again["id"] == profile["id"] and again["requested_id"] == absorbed


async def test_two_user_ids_never_merge(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, [{"type": "identify", "userId": "alice", "anonymousId": "shared-tablet"}])
    await send(client, workspace, [{"type": "identify", "userId": "bob", "anonymousId": "shared-tablet"}])
    stored = await events(client, workspace)
    by_user = {e["user_id"]: e["profile_id"] for e in stored}
    assert by_user["alice"] != by_user["bob"]


async def test_events_filters_and_cursor(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    batch = [{"type": "track", "userId": "u1", "event": "E" if i % 2 else "O", "messageId": f"e{i:02d}",
              "timestamp": iso(base + timedelta(hours=i))} for i in range(10)]
    await send(client, workspace, batch)
    seen = []
    cursor = None
    while True:
        params = {"limit": 3, "event": "E"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/events", params=params, headers=workspace.admin_headers)).json()
        seen += [e["message_id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["e09", "e07", "e05", "e03", "e01"]
    window = await events(client, workspace, since=iso(base + timedelta(hours=2)), until=iso(base + timedelta(hours=5)))
    assert [e["message_id"] for e in window] == ["e04", "e03", "e02"]
    bad = await client.get("/v1/events", params={"cursor": "garbage!"}, headers=workspace.admin_headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    pid = window[0]["profile_id"]
    timeline = (await client.get(f"/v1/profiles/{pid}/events", params={"limit": 2}, headers=workspace.admin_headers)).json()
    assert [e["message_id"] for e in timeline["data"]] == ["e09", "e08"] and timeline["next_cursor"]


async def test_workspace_isolation(client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys) -> None:
    await send(client, workspace, [{"type": "identify", "userId": "u1", "messageId": "same-id"}])
    # The same messageId and userId in another workspace are a different event and person.
    body = (await send(client, other_workspace, [{"type": "identify", "userId": "u1", "messageId": "same-id"}])).json()
    assert body["accepted"] == 1
    mine, theirs = await events(client, workspace), await events(client, other_workspace)
    assert len(mine) == len(theirs) == 1
    assert mine[0]["profile_id"] != theirs[0]["profile_id"]
    cross = await client.get(f"/v1/profiles/{theirs[0]['profile_id']}", headers=workspace.admin_headers)
    assert cross.status_code == 404
    cross_events = await client.get(f"/v1/profiles/{theirs[0]['profile_id']}/events", headers=workspace.admin_headers)
    assert cross_events.status_code == 404


async def test_rate_limit_gives_429_with_retry_after(app, client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    from app.ingest.throttle import IngestGate

    app.state.ingest_gate = IngestGate(max_concurrency=10, rate_per_second=5)
    batch = [{"type": "track", "userId": "u", "event": "A"} for _ in range(5)]
    assert (await send(client, workspace, batch)).status_code == 200
    resp = await send(client, workspace, batch)
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["content-type"] == PROBLEM


async def test_overload_gives_429(app, client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    from app.ingest.throttle import IngestGate

    gate = IngestGate(max_concurrency=1, rate_per_second=0)
    gate.in_flight = 1  # another request holds the only slot
    app.state.ingest_gate = gate
    resp = await send(client, workspace, [{"type": "track", "userId": "u", "event": "A"}])
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "1"


async def test_admitted_requests_wait_for_a_database_slot() -> None:
    import asyncio
    import uuid

    from app.ingest.throttle import IngestGate

    gate = IngestGate(max_concurrency=10, rate_per_second=0, db_concurrency=1)
    order: list[str] = []

    async def work(name: str) -> None:
        async with gate.admit(uuid.uuid4(), 1):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    await asyncio.gather(work("a"), work("b"))
    assert order == ["a in", "a out", "b in", "b out"], "one transaction at a time; the other waited, no 429"


async def test_workspace_rate_limit_is_configurable(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.patch("/v1/workspace", json={"ingest_rate_limit_per_second": 3}, headers=workspace.admin_headers)
    assert resp.status_code == 200 and resp.json()["ingest_rate_limit_per_second"] == 3
    batch = [{"type": "track", "userId": "u", "event": "A"} for _ in range(3)]
    assert (await send(client, workspace, batch)).status_code == 200
    limited = await send(client, workspace, batch)
    assert limited.status_code == 429 and "3 messages per second" in limited.json()["detail"]
    await client.patch("/v1/workspace", json={"ingest_rate_limit_per_second": None}, headers=workspace.admin_headers)
    assert (await send(client, workspace, batch)).status_code == 200
    bad = await client.patch("/v1/workspace", json={"ingest_rate_limit_per_second": -1}, headers=workspace.admin_headers)
    assert bad.status_code == 422


async def test_pool_exhaustion_is_503_not_500(committed_app) -> None:
    from tests.conftest import create_workspace_via_api, make_client

    db = committed_app.state.db
    db._write_acquire_timeout = 0.2
    pool = await db._pool()
    held = [await pool.acquire() for _ in range(pool.get_max_size())]  # every ingest connection busy
    try:
        async with make_client(committed_app) as client:
            ws = await create_workspace_via_api(client, "pool")
            resp = await send(client, ws, [{"type": "track", "userId": "u", "event": "A"}])
    finally:
        for conn in held:
            await pool.release(conn)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    assert resp.json()["code"] == "overloaded"
