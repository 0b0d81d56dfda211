"""Ingest's identity cache never attaches an event to a profile an identifier has left."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.identity import cache as identity_cache
from app.identity.service import lock_workspace
from app.ingest import repository as ingest_repository
from tests.conftest import WorkspaceKeys

counter = iter(range(1_000_000))


async def track(client: httpx.AsyncClient, ws: WorkspaceKeys, **ids: str) -> str:
    """Send one track message; returns the profile its event was stored on."""
    mid = f"cache-{next(counter)}"
    resp = await client.post(
        "/v1/batch", json={"batch": [{"type": "track", "event": "Seen", "messageId": mid, **ids}]}, auth=ws.write_auth
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.text
    events = (await client.get("/v1/events", params={"limit": 1}, headers=ws.admin_headers)).json()["data"]
    assert events[0]["message_id"] == mid
    return events[0]["profile_id"]


async def profile_of(client: httpx.AsyncClient, ws: WorkspaceKeys, type_: str, value: str) -> str:
    resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": value}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


def cached(ws: WorkspaceKeys) -> dict:
    entry = identity_cache._workspaces.get(uuid.UUID(ws.workspace_id))
    return {} if entry is None else {k: str(v) for k, v in entry.profile_of.items()}


async def test_returning_identifiers_are_served_from_the_cache(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    first = await track(client, workspace, userId="u1", anonymousId="a1")
    assert cached(workspace) == {("user_id", "u1"): first, ("anonymous_id", "a1"): first}, (
        "identifiers a batch created are cached once it has committed"
    )
    assert await track(client, workspace, userId="u1", anonymousId="a1") == first
    assert await track(client, workspace, userId="u1") == first


async def test_a_batch_that_rolls_back_teaches_the_cache_nothing(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, monkeypatch
) -> None:
    await track(client, workspace, userId="known")  # the workspace's cache has a position

    async def fail(*args, **kwargs):
        raise RuntimeError("the event insert failed")

    monkeypatch.setattr(ingest_repository, "insert_events", fail)
    resp = await client.post(
        "/v1/batch", json={"batch": [{"type": "track", "event": "Seen", "messageId": "rb-1", "userId": "ghost"}]},
        auth=workspace.write_auth,
    )
    assert resp.status_code == 500
    assert ("user_id", "ghost") not in cached(workspace)


async def test_identifiers_learned_after_a_change_the_cache_already_read_are_checked_again(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session: AsyncSession
) -> None:
    """A batch creates a person; before it adds them to the cache, a concurrent call in this
    process reads a change that moved them. Learning sets the position back, so the change is
    read again and the stale mapping dropped."""
    created = await track(client, workspace, userId="fresh")
    ws_id = uuid.UUID(workspace.workspace_id)
    entry = identity_cache._workspaces[ws_id]
    position = entry.seq  # what that batch read under the lock
    other = await track(client, workspace, userId="other")
    await session.execute(
        sa.text("UPDATE identity SET profile_id = :p WHERE workspace_id = :w AND value = 'fresh'"),
        {"p": uuid.UUID(other), "w": ws_id},
    )
    await session.commit()
    # The race: the change has been read (position past it, "fresh" forgotten) ...
    entry.forget(uuid.UUID(created))
    entry.seq = (await session.execute(
        sa.text("SELECT max(seq) FROM identity_change WHERE workspace_id = :w"), {"w": ws_id}
    )).scalar_one()
    # ... and only then does the batch that created "fresh" add what it created.
    identity_cache.learn(ws_id, {("user_id", "fresh"): uuid.UUID(created)}, position)
    assert entry.seq == position
    assert await track(client, workspace, userId="fresh") == other
    assert cached(workspace)[("user_id", "fresh")] == other


async def test_manual_merge_and_split_reach_the_cache(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    web = await track(client, workspace, anonymousId="web-1")
    crm = await track(client, workspace, userId="crm-9")
    # Warm the cache for both people.
    assert await track(client, workspace, anonymousId="web-1") == web
    assert await track(client, workspace, userId="crm-9") == crm
    assert cached(workspace)[("user_id", "crm-9")] == crm

    merged = await client.post("/v1/profiles/merge", json={"profile_ids": [web, crm]}, headers=workspace.admin_headers)
    assert merged.status_code == 200, merged.text
    assert await track(client, workspace, userId="crm-9") == web, "the absorbed profile's identifier moved"
    assert await track(client, workspace, anonymousId="web-1") == web

    split = await client.post(f"/v1/profiles/{crm}/split", headers=workspace.admin_headers)
    assert split.status_code == 200, split.text
    assert await track(client, workspace, userId="crm-9") == crm, "the split moved it back"
    assert await track(client, workspace, anonymousId="web-1") == web


async def test_merge_by_ingest_reaches_the_cache(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    known = await track(client, workspace, userId="u7")
    anon = await track(client, workspace, anonymousId="phone-7")
    await track(client, workspace, userId="u7")
    await track(client, workspace, anonymousId="phone-7")  # both cached, on two profiles
    await track(client, workspace, userId="u7", anonymousId="phone-7")  # links them: one merge
    survivor = await profile_of(client, workspace, "user_id", "u7")
    assert survivor == await profile_of(client, workspace, "anonymous_id", "phone-7")
    assert survivor in (known, anon)
    assert await track(client, workspace, anonymousId="phone-7") == survivor
    assert await track(client, workspace, userId="u7") == survivor


async def test_a_change_made_elsewhere_is_seen_through_the_log(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session: AsyncSession
) -> None:
    """Another process (or a hand-written UPDATE) moves an identifier: the trigger logs it and
    the next batch in this process drops what it had cached."""
    first = await track(client, workspace, userId="moved")
    await track(client, workspace, userId="moved")
    assert cached(workspace)[("user_id", "moved")] == first
    other = await track(client, workspace, userId="someone-else")
    ws = uuid.UUID(workspace.workspace_id)
    await session.execute(
        sa.text("UPDATE identity SET profile_id = :p WHERE workspace_id = :w AND type = 'user_id' AND value = 'moved'"),
        {"p": uuid.UUID(other), "w": ws},
    )
    logged = (await session.execute(
        sa.text("SELECT profile_id FROM identity_change WHERE workspace_id = :w"), {"w": ws}
    )).scalars().all()
    assert logged == [uuid.UUID(first)]
    await session.commit()
    assert await track(client, workspace, userId="moved") == other
    assert cached(workspace)[("user_id", "moved")] == other

    await session.execute(sa.text("DELETE FROM identity WHERE workspace_id = :w AND value = 'moved'"), {"w": ws})
    await session.commit()
    fresh = await track(client, workspace, userId="moved")
    assert fresh not in (first, other), "a deleted identifier is a new person again"


async def test_a_concurrent_call_that_read_before_a_change_does_not_keep_it(
    session: AsyncSession, workspace: WorkspaceKeys, client: httpx.AsyncClient
) -> None:
    """The cache's bookkeeping when a lookup sees changes another call already applied."""
    first = await track(client, workspace, userId="c1")
    await track(client, workspace, userId="c1")
    ws_id = uuid.UUID(workspace.workspace_id)
    entry = identity_cache._workspaces[ws_id]
    before = entry.seq
    other = await track(client, workspace, userId="c2")
    await session.execute(
        sa.text("UPDATE identity SET profile_id = :p WHERE workspace_id = :w AND value = 'c1'"),
        {"p": uuid.UUID(other), "w": ws_id},
    )
    conn = await raw_connection(session)
    await lock_workspace(conn, ws_id, exclusive=False)
    # A concurrent call already applied the change and moved the position on...
    entry.forget(uuid.UUID(first))
    entry.add(("user_id", "c1"), uuid.UUID(first))  # ...and a slower one put the old mapping back
    entry.seq = before
    known, _ = await identity_cache.lookup(conn, ws_id, [("user_id", "c1")])
    assert known == {("user_id", "c1"): uuid.UUID(other)}
    assert entry.profile_of[("user_id", "c1")] == uuid.UUID(other)


async def test_a_batch_of_cached_people_checks_the_log_in_its_insert(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session: AsyncSession, monkeypatch
) -> None:
    """Returning people skip the look-up; the event insert reads the log instead. A change to
    someone else is applied there (no retry); a change to the batch's own person is not
    trusted (the batch reruns with a look-up, see the tests above)."""
    mine = await track(client, workspace, userId="me")
    await track(client, workspace, userId="me")
    await track(client, workspace, userId="bystander")
    await track(client, workspace, userId="bystander")
    ws_id = uuid.UUID(workspace.workspace_id)
    me = SimpleNamespace(index=0, type="track", pairs=(("user_id", "me"),))
    nobody = SimpleNamespace(index=1, type="track", pairs=(("user_id", "nobody"),))
    both = SimpleNamespace(index=2, type="track", pairs=(("user_id", "me"), ("user_id", "bystander")))
    alias = SimpleNamespace(index=3, type="alias", pairs=(("user_id", "me"),))
    unsynced = identity_cache.settle(ws_id, [me, nobody, both, alias])
    assert unsynced is not None and unsynced.profile_of == {0: uuid.UUID(mine)}
    assert unsynced.rest == [nobody, both, alias], "unknown, two people, alias: resolve decides"
    assert identity_cache.settle(ws_id, [nobody]) is None

    target = await track(client, workspace, userId="target")
    await session.execute(
        sa.text("UPDATE identity SET profile_id = :p WHERE workspace_id = :w AND value = 'bystander'"),
        {"p": uuid.UUID(target), "w": ws_id},
    )
    await session.commit()
    head = (await session.execute(
        sa.text("SELECT max(seq) FROM identity_change WHERE workspace_id = :w"), {"w": ws_id}
    )).scalar_one()
    position = identity_cache._workspaces[ws_id].seq
    assert position < head

    async def no_lookup(*args, **kwargs):
        raise AssertionError("a batch of cached people ran the look-up")

    with monkeypatch.context() as patched:
        patched.setattr(identity_cache, "lookup", no_lookup)
        assert await track(client, workspace, userId="me") == mine
    entry = identity_cache._workspaces[ws_id]
    assert entry.seq == head, "the insert read the change and moved the position on"
    assert ("user_id", "bystander") not in entry.profile_of, "the changed profile was forgotten"
    assert ("user_id", "me") in entry.profile_of
    assert await track(client, workspace, userId="bystander") == target


async def test_a_merge_in_a_batch_takes_that_batchs_other_events_along(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    """Messages whose identifiers are known and settled before union-find still follow a merge
    that a later message of the same batch makes: every event ends on the survivor."""
    for message in ({"userId": "mix-u"}, {"anonymousId": "mix-a"}, {"userId": "mix-u"}, {"anonymousId": "mix-a"}):
        await track(client, workspace, **message)  # two people, both cached
    batch = [
        {"type": "track", "event": "B", "userId": "mix-u", "messageId": "mix-1"},
        {"type": "track", "event": "B", "anonymousId": "mix-a", "messageId": "mix-2"},
        {"type": "identify", "userId": "mix-u", "anonymousId": "mix-a", "messageId": "mix-3"},  # one person
    ]
    resp = await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)
    assert resp.status_code == 200 and resp.json()["accepted"] == 3, resp.text
    events = (await client.get("/v1/events", params={"limit": 100}, headers=workspace.admin_headers)).json()["data"]
    assert len(events) == 7
    assert {e["profile_id"] for e in events} == {await profile_of(client, workspace, "anonymous_id", "mix-a")}


async def test_a_batch_mixing_cached_and_new_people(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Returning people are placed from the cache, the rest resolved: a newcomer gets a profile,
    and a message linking two cached people merges them, taking the batch's other events of
    the absorbed one along."""
    for message in ({"userId": "mm-u"}, {"anonymousId": "mm-a"}, {"userId": "mm-u"}, {"anonymousId": "mm-a"}):
        await track(client, workspace, **message)
    batch = [
        {"type": "track", "event": "B", "userId": "mm-u", "messageId": "mm-1"},
        {"type": "track", "event": "B", "anonymousId": "mm-a", "messageId": "mm-2"},
        {"type": "track", "event": "B", "userId": "mm-new", "messageId": "mm-3"},
        {"type": "track", "event": "B", "userId": "mm-u", "anonymousId": "mm-a", "messageId": "mm-4"},
    ]
    resp = await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)
    assert resp.status_code == 200 and resp.json()["accepted"] == 4, resp.text
    events = (await client.get("/v1/events", params={"limit": 100}, headers=workspace.admin_headers)).json()["data"]
    owner = {e["message_id"]: e["profile_id"] for e in events}
    person = await profile_of(client, workspace, "user_id", "mm-u")
    assert person == await profile_of(client, workspace, "anonymous_id", "mm-a")
    assert {owner[m] for m in ("mm-1", "mm-2", "mm-4")} == {person}
    assert owner["mm-3"] == await profile_of(client, workspace, "user_id", "mm-new") != person
    assert {p for m, p in owner.items() if m.startswith("cache-")} == {person}
