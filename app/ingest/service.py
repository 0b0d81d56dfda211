"""Ingest: validated messages in, events + identities + profile traits out, in one transaction.

Per batch, whatever its size: BEGIN with the workspace lock, one event insert that also marks
the profiles whose new events can change a computed trait for the incremental refresh, and
COMMIT. Only when needed: one
identifier look-up (messages the identity cache cannot place), one duplicate check
(identify/group), one insert of new profiles and identifiers, one trait update and one account
upsert (all multi-row). See docs/INGEST.md."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from app.consent import service as consent_service
from app.core.db import WriteTransaction
from app.core.errors import ServiceUnavailable
from app.decisions import service as decision_service
from app.identity import cache as identity_cache
from app.identity import service as identity_service
from app.identity.normalize import IdentitySettings
from app.ingest import repository
from app.ingest.parser import ParsedMessage, Rejection
from app.privacy import suppression
from app.profiles import service as profile_service
from app.traits import service as trait_service

log = logging.getLogger("clientele.ingest")
MAX_ATTEMPTS = 6


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0  # dropped: they carried an identifier suppressed by an erasure
    rejected: list[Rejection] = field(default_factory=list)
    profiles_created: int = 0
    merges: int = 0
    conflicts: int = 0
    # The identifiers the batch created, for the identity cache once committed (see
    # identity_cache.learn), and the identity log position they were read at.
    created: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict, repr=False)
    position: int = 0


async def ingest(
    transaction: WriteTransaction,
    *,
    workspace_id: uuid.UUID,
    messages: list[ParsedMessage],
    identity: IdentitySettings,
    received_at: datetime,
    trait_strategies: dict[str, str] | None = None,
    gpc: bool = False,
    suppressions: bool = False,
) -> IngestResult:
    """Store the messages idempotently, in one transaction opened by `transaction` (with the
    workspace's lock as its first statement). Reruns the whole batch in a fresh transaction
    when it loses an identity race or needs the workspace's exclusive lock to merge.

    `suppressions`: whether the workspace's settings say it has suppressed identifiers; the
    batch is then checked against them (and also once this process has seen an erasure of
    the workspace in the identity change log, however old its settings are)."""
    result = IngestResult()
    if not messages:
        return result
    delay = trait_service.incremental_delay()
    exclusive = False
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with transaction(identity_service.workspace_lock_sql(workspace_id, exclusive=exclusive)) as conn:
                window = await _ingest_once(
                    conn, workspace_id, messages, identity, received_at, result, exclusive, trait_strategies or {},
                    delay, gpc, suppressions,
                )
                if window is not None and window.marked:
                    await trait_service.ensure_incremental_job(
                        conn, workspace_id=workspace_id, bucket=window.bucket, wait=window.wait, delay=delay
                    )
            # Committed: the next batches from these people are placed from the cache.
            identity_cache.learn(workspace_id, result.created, result.position)
            return result
        except identity_service.RetryBatch as exc:
            exclusive = exclusive or exc.exclusive
            log.info("ingest batch retried", extra={"reason": str(exc), "attempt": attempt})
        except asyncpg.exceptions.DeadlockDetectedError:
            exclusive = True
            log.warning("ingest batch deadlocked; retrying with the exclusive lock", extra={"attempt": attempt})
        # The transaction was rolled back as the exception left it.
        result.accepted = result.duplicates = result.suppressed = 0
        result.profiles_created = result.merges = result.conflicts = 0
        result.created = {}
        await asyncio.sleep(0.002 * attempt)
    raise ServiceUnavailable(
        "The batch kept colliding with concurrent writes to the same people; retry it.", headers={"Retry-After": "1"}
    )


async def _ingest_once(
    conn: Any,
    workspace_id: uuid.UUID,
    messages: list[ParsedMessage],
    identity: IdentitySettings,
    received_at: datetime,
    result: IngestResult,
    exclusive: bool,
    trait_strategies: dict[str, str],
    delay_seconds: float,
    gpc: bool = False,
    suppressions: bool = False,
) -> repository.Inserted | None:
    """One attempt; returns the event insert's outcome (None when every message was a replay)."""
    # Replays: messages already stored are duplicates and have no side effects (an old identify
    # replayed must not overwrite newer traits). Repeats inside the batch count the same way.
    # Only identify and group messages change state beyond their own row, so only they need
    # the look-up; the event insert's ON CONFLICT catches replays of everything else.
    side_effects = [m.message_id for m in messages if m.type in ("identify", "group")]
    known = await repository.existing_message_ids(conn, workspace_id, side_effects) if side_effects else set()
    fresh: list[ParsedMessage] = []
    seen: set[str] = set()
    for m in messages:
        if m.message_id in known or m.message_id in seen:
            result.duplicates += 1
            continue
        seen.add(m.message_id)
        fresh.append(m)
    if not fresh:
        return None
    # Erased people stay erased: drop messages carrying a suppressed identifier (one probe,
    # only in workspaces with suppressions; see app/privacy/suppression.py).
    checked = suppressions or identity_cache.erasure_seen(workspace_id)
    memo = identity_cache.suppression_memo(workspace_id) if checked else None
    if memo is not None:
        fresh, result.suppressed = await suppression.drop_suppressed(conn, workspace_id, fresh, identity, memo)
        if not fresh:
            return None

    # Returning people, the bulk of steady traffic: every identifier cached, each message's
    # pointing at one profile. In a batch without identify/group messages (which run their own
    # statements first), those messages are placed from the cache alone and the event insert
    # checks the cache's mappings against the change log (see identity/cache.py); only the
    # others go through resolve (a look-up, union-find, new profiles and identifiers).
    unsynced = identity_cache.settle(workspace_id, fresh) if not side_effects else None
    rest = unsynced.rest if unsynced is not None else fresh
    profile_of = dict(unsynced.profile_of) if unsynced is not None else {}
    if rest:
        requests = [
            identity_service.LinkRequest(
                index=m.index, message_id=m.message_id, rule=m.type, keys=list(m.keys),
                alias_previous=m.previous_id if m.type == "alias" else None,
            )
            for m in rest
        ]
        resolution = await identity_service.resolve(
            conn, workspace_id=workspace_id, requests=requests, settings=identity, exclusive=exclusive,
            trait_strategies=trait_strategies,
        )
        # If a message of `rest` merged away a profile a settled message uses, the merge's own
        # identity updates are in the change log the event insert reads: the batch reruns.
        profile_of.update(resolution.profile_of)
        result.profiles_created = len(resolution.new_profiles)
        result.merges = resolution.merges
        result.conflicts = resolution.conflicts
        result.created, result.position = resolution.created, resolution.position
        if (memo is None and identity_cache.erasure_seen(workspace_id)) or (
            memo is not None and not identity_cache.memo_still_valid(workspace_id, memo)
        ):
            # The look-up read an erasure the suppression check did not know: check again.
            raise identity_service.RetryBatch("an erasure committed in the workspace; checking suppressions")

    if side_effects:  # identify and group messages update profiles and accounts
        trait_updates: dict[uuid.UUID, dict[str, Any]] = {}
        accounts: dict[str, dict[str, Any]] = defaultdict(dict)
        members: set[tuple[str, uuid.UUID]] = set()
        for m in fresh:
            pid = profile_of[m.index]
            if m.type == "identify" and (m.traits or m.traits_set_once or m.traits_unset):
                upd = trait_updates.setdefault(pid, {"set": {}, "once": {}, "unset": set()})
                for key in m.traits_unset:
                    upd["set"].pop(key, None)
                    upd["once"].pop(key, None)
                    upd["unset"].add(key)
                upd["set"].update(m.traits)
                upd["unset"].difference_update(m.traits)
                for key, value in m.traits_set_once.items():
                    if key not in upd["set"] and key not in upd["once"]:
                        upd["once"][key] = value
            elif m.type == "group" and m.group_id:
                accounts[m.group_id].update(m.traits)
                members.add((m.group_id, pid))
        await profile_service.apply_trait_updates(conn, workspace_id=workspace_id, updates=trait_updates)
        await repository.upsert_accounts(conn, workspace_id, dict(accounts), members)
    inserted = await repository.insert_events(
        conn, workspace_id, received_at, fresh, profile_of, delay_seconds=delay_seconds,
        changes_since=unsynced.since if unsynced is not None else identity_cache.NO_CHANGES,
    )
    if unsynced is not None and not identity_cache.apply_changes(unsynced, inserted.head, inserted.changed):
        raise identity_service.RetryBatch("a profile of the batch was merged, split or deleted meanwhile")
    await decision_service.feedback_from_events(conn, workspace_id=workspace_id, messages=fresh)
    result.accepted = inserted.count
    result.duplicates += len(fresh) - inserted.count
    # Consent signals (context.consent, context.gpc, a consent import's rows, the Sec-GPC
    # header): rare, so a batch without them pays one pass over its messages and nothing else.
    if gpc or any(m.consent is not None for m in fresh):
        await consent_service.record_signals(
            conn, workspace_id=workspace_id, gpc_all=gpc,
            items=[(profile_of[m.index], m.consent, m.timestamp, m.message_id) for m in fresh
                   if gpc or m.consent is not None],
        )
    return inserted
