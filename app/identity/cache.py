"""A per-process cache of identifier -> profile, kept exact by a change log in the database.

The identifier look-up was the largest database cost of ingest beyond storing the events: one
primary-key probe per identifier, two per message from returning people, on every batch. Most
of those identifiers map to the same profile as they did a second ago. This cache remembers
mappings it has read and only asks the database for the identifiers it has not seen.

Why it cannot go stale:

- A mapping changes only when identity rows are updated or deleted (merges, splits, deleted
  profiles). A trigger on `identity` (migration 0007) appends the old profile of every such
  row to `identity_change`, under the workspace's exclusive advisory lock.
- Ingest reads the cache while holding the workspace's *shared* lock, and in the same
  statement as its look-up of unseen identifiers reads the changes it has not seen yet
  (`seq` above the last one it saw). No writer can be between its UPDATE and its commit
  then, so the sequence has no invisible gaps. Every cached identifier of a changed profile
  is dropped (and looked up again if the batch needs it).
- A batch whose every identifier is cached may skip the look-up round trip: its event insert
  then reads the changes after the cache's position instead (`settle` / `apply_changes`), in
  a statement that also runs under the shared lock. If a change touches a profile the batch
  used, the batch is rolled back and retried with a fresh look-up.
- Mappings a transaction creates are cached only after it has committed (`learn`), at the
  log position it read under the lock. An unseen identifier is always asked for.
- Erasure (app/privacy) deletes a person's identifiers and then their entries in the log, so
  that no trace of their profile ids is left; it appends `ERASED` instead, which makes every
  cache of the workspace drop everything it holds (erasures are rare; the cache refills from
  the next look-ups) and tells ingest that the workspace's suppressions changed.
- The log is pruned daily of entries older than `LOG_RETENTION`; a workspace cache that has
  not synced for `MAX_IDLE_SECONDS` (well under that) is discarded rather than trusted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from time import monotonic
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

LOG_RETENTION = timedelta(hours=1)
MAX_IDLE_SECONDS = 20 * 60.0
MAX_KEYS_PER_WORKSPACE = 200_000
MAX_WORKSPACES = 1_000
NO_CHANGES = 2**62  # a position past every change: a read of the log after it returns nothing
ERASED = uuid.UUID(int=0)  # logged by an erasure: forget the workspace's whole cache

# One primary-key probe per identifier (a correlated subquery keeps the plan fixed whatever
# the table statistics say; a join lets a stale plan scan the whole workspace).
LOOKUP = """
SELECT * FROM (
    SELECT k.type, k.value,
           (SELECT i.profile_id FROM identity AS i
            WHERE i.workspace_id = $1 AND i.type = k.type AND i.value = k.value) AS profile_id
    FROM jsonb_to_recordset($2::text::jsonb) AS k(type text, value text)
) AS found
WHERE profile_id IS NOT NULL
"""

# One round trip: the log's head, the changes this cache has not seen ($3: the last one it
# saw), and the profiles of the identifiers it does not know (LOOKUP).
SYNC_AND_LOOKUP = f"""
SELECT NULL::text AS type, NULL::text AS value, NULL::uuid AS profile_id,
       (SELECT coalesce(max(c.seq), 0) FROM identity_change AS c WHERE c.workspace_id = $1) AS seq
UNION ALL
SELECT NULL, NULL, c.profile_id, c.seq FROM identity_change AS c WHERE c.workspace_id = $1 AND c.seq > $3
UNION ALL
SELECT l.type, l.value, l.profile_id, NULL FROM ({LOOKUP}) AS l
"""


def keys_json(keys: Sequence[tuple[str, str]]) -> str:
    # One JSON parameter instead of two arrays: far less driver work per element.
    return orjson.dumps([{"type": t, "value": v} for t, v in keys]).decode()


@dataclass(slots=True)
class _Workspace:
    seq: int | None = None  # the last change seen; None: not synced yet
    synced_at: float = 0.0
    profile_of: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    keys_of: dict[uuid.UUID, list[tuple[str, str]]] = field(default_factory=dict)
    # Identifiers checked against the workspace's suppressions and found clear (app/privacy/
    # suppression.py). Only an erasure adds suppressions, and it logs ERASED: cleared then.
    unsuppressed: set[tuple[str, str]] = field(default_factory=set)
    erasures: int = 0  # ERASED marks applied to this cache

    def add(self, key: tuple[str, str], pid: uuid.UUID) -> None:
        if key in self.profile_of:
            return
        if len(self.profile_of) >= MAX_KEYS_PER_WORKSPACE:
            self.profile_of.clear()
            self.keys_of.clear()
        self.profile_of[key] = pid
        self.keys_of.setdefault(pid, []).append(key)

    def forget(self, pid: uuid.UUID) -> list[tuple[str, str]]:
        if pid == ERASED:
            keys = list(self.profile_of)
            self.profile_of.clear()
            self.keys_of.clear()
            self.unsuppressed.clear()
            self.erasures += 1
            return keys
        keys = self.keys_of.pop(pid, [])
        for key in keys:
            self.profile_of.pop(key, None)
        return keys


_workspaces: dict[uuid.UUID, _Workspace] = {}
# Workspaces whose log showed an erasure to this process: ingest checks their suppressions
# even when its (briefly cached) workspace settings do not say they have any yet.
_erasures_seen: set[uuid.UUID] = set()


def erasure_seen(workspace_id: uuid.UUID) -> bool:
    return workspace_id in _erasures_seen


@dataclass(frozen=True, slots=True)
class SuppressionMemo:
    """The identifiers of a workspace known not to be suppressed, as of `erasures` erasures
    seen by its cache. Valid for a batch only if its own read of the change log (a later
    statement under the same lock) shows no new erasure: see `memo_still_valid`."""

    clear: set[tuple[str, str]]
    erasures: int
    workspace: _Workspace | None


def suppression_memo(workspace_id: uuid.UUID) -> SuppressionMemo:
    ws = _workspaces.get(workspace_id)
    if ws is None or ws.seq is None:  # no log position: nothing to trust (and nothing kept)
        return SuppressionMemo(set(), 0, None)
    return SuppressionMemo(ws.unsuppressed, ws.erasures, ws)


def memo_still_valid(workspace_id: uuid.UUID, memo: SuppressionMemo) -> bool:
    """Whether no erasure was seen since `memo` was taken (and the cache it lives in is the same)."""
    if memo.workspace is None:
        return True
    return _workspaces.get(workspace_id) is memo.workspace and memo.workspace.erasures == memo.erasures


def _saw_erasure(workspace_id: uuid.UUID) -> None:
    if len(_erasures_seen) >= MAX_WORKSPACES:
        _erasures_seen.clear()
    _erasures_seen.add(workspace_id)


def clear() -> None:
    """Forget everything (tests; or after restoring a database under a running process)."""
    _workspaces.clear()
    _erasures_seen.clear()


@dataclass(frozen=True, slots=True)
class Unsynced:
    """Profiles taken from the cache without a look-up: valid only if the statement that uses
    them, under the workspace's lock, finds no change after `since` touching them."""

    profile_of: dict[int, uuid.UUID]  # message index -> profile, for the messages settled
    rest: list[Any]  # the messages that were not
    since: int
    workspace: _Workspace
    workspace_id: uuid.UUID


def settle(workspace_id: uuid.UUID, messages: Sequence[Any]) -> Unsynced | None:
    """The profile of each message the cache alone can place (`messages`: with `index`, `type`
    and `pairs`, their (type, value) identifiers): every identifier cached, all pointing at one
    profile, so nothing to create, link or check. The others (and every alias) are `rest`.
    None when the cache has no position or places no message. The caller must check the log
    after `since` in a later statement under the same lock (`apply_changes`)."""
    ws = _workspaces.get(workspace_id)
    if ws is None or ws.seq is None or monotonic() - ws.synced_at > MAX_IDLE_SECONDS:
        return None
    cached_profile = ws.profile_of.get
    profile_of: dict[int, uuid.UUID] = {}
    rest: list[Any] = []
    for m in messages:
        pid = None
        if m.type != "alias":
            for key in m.pairs:
                found = cached_profile(key)
                if found is None or (pid is not None and found != pid):
                    pid = None
                    break
                pid = found
        if pid is None:
            rest.append(m)
        else:
            profile_of[m.index] = pid
    if not profile_of:
        return None
    return Unsynced(profile_of, rest, ws.seq, ws, workspace_id)


def apply_changes(unsynced: Unsynced, head: int | None, changed: Sequence[uuid.UUID]) -> bool:
    """Apply what the statement read of the log after `unsynced.since`: `head`, the last
    change (None: there was none), and the changed profiles. Returns whether the profiles it
    was given are still valid (no change touched them)."""
    ws = unsynced.workspace
    for pid in changed:
        ws.forget(pid)
    if ERASED in changed:
        _saw_erasure(unsynced.workspace_id)
        return False
    if head is not None:
        ws.seq = head  # as in lookup: possibly back, never past a change not applied
    ws.synced_at = monotonic()
    if not changed:
        return True
    used = set(unsynced.profile_of.values())
    return not any(pid in used for pid in changed)


async def lookup(
    conn: Any, workspace_id: uuid.UUID, keys: Sequence[tuple[str, str]]
) -> tuple[dict[tuple[str, str], uuid.UUID], int]:
    """The profile of each known identifier among `keys`, and the log's head (the last change
    the transaction can see). Call it inside the transaction that holds the workspace's
    identity lock (shared or exclusive)."""
    now = monotonic()
    ws = _workspaces.get(workspace_id)
    if ws is None or now - ws.synced_at > MAX_IDLE_SECONDS:
        if len(_workspaces) >= MAX_WORKSPACES:
            _workspaces.clear()
        ws = _workspaces[workspace_id] = _Workspace()
    cached = ws.profile_of
    known: dict[tuple[str, str], uuid.UUID] = {}
    unseen: list[tuple[str, str]] = []
    for key in keys:
        pid = cached.get(key)
        if pid is None:
            unseen.append(key)
        else:
            known[key] = pid
    rows = await conn.fetch(
        SYNC_AND_LOOKUP, workspace_id, keys_json(unseen), NO_CHANGES if ws.seq is None else ws.seq
    )
    head = 0
    changed: set[uuid.UUID] = set()
    found: list[Any] = []
    for r in rows:
        if r["type"] is not None:
            found.append(r)
        elif r["profile_id"] is None:
            head = r["seq"]
        else:  # a changed profile: identifiers cached for it may point elsewhere now
            changed.add(r["profile_id"])
    stale: list[tuple[str, str]] = []
    if changed:
        if ERASED in changed:
            _saw_erasure(workspace_id)
        for pid in changed:
            ws.forget(pid)
        # Also what this call took from the cache before it awaited (a concurrent call may
        # have forgotten those entries already).
        stale = [key for key, pid in known.items() if pid in changed or ERASED in changed]
        for key in stale:
            del known[key]
    if stale:
        found += await conn.fetch(LOOKUP, workspace_id, keys_json(stale))
    # Plain assignment, not max(): a slower concurrent call that read an older head sets it
    # back, and the changes after it are read (and applied) again. Never skipped.
    ws.seq = head
    ws.synced_at = now
    for r in found:
        key = (r["type"], r["value"])
        known[key] = r["profile_id"]
        ws.add(key, r["profile_id"])
    return known, head


def learn(workspace_id: uuid.UUID, created: dict[tuple[str, str], uuid.UUID], position: int) -> None:
    """Cache the identifiers a transaction created, once it has committed. `position`: the log's
    head that transaction read while it held the workspace's lock (no change can commit while
    the lock is held, so the mappings were exact at `position`). The cache's position goes back
    to it if it was further: the next read of the log then applies every change after it, also
    those that a concurrent call already applied before these mappings were added."""
    ws = _workspaces.get(workspace_id)
    if not created or ws is None or ws.seq is None:
        return
    for key, pid in created.items():
        ws.add(key, pid)
    ws.seq = min(ws.seq, position)


async def prune_log(session: AsyncSession) -> int:
    """Delete log entries older than LOG_RETENTION (no cache trusts itself that long)."""
    result = await session.execute(
        sa.text("DELETE FROM identity_change WHERE changed_at < now() - make_interval(secs => :secs)"),
        {"secs": LOG_RETENTION.total_seconds()},
    )
    return result.rowcount


async def erased(conn: Any, workspace_id: uuid.UUID, profile_ids: Sequence[uuid.UUID]) -> None:
    """After an erasure deleted these profiles' identifiers (whose trigger logged their ids),
    inside the same transaction and under the workspace's exclusive lock: replace their log
    entries with one `ERASED` entry, which every cache of the workspace applies by forgetting
    all it holds."""
    await conn.execute(
        "DELETE FROM identity_change WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[])",
        workspace_id, list(profile_ids),
    )
    await conn.execute("INSERT INTO identity_change (workspace_id, profile_id) VALUES ($1, $2)", workspace_id, ERASED)
