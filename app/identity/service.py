"""Identity resolution: which profile does each message belong to?

Rules (simplest correct linking; see docs/IDENTITY.md):
- an identifier (type, normalised value) maps to exactly one profile of its workspace;
- the identifiers of one message belong to one person: a message with a known identifier
  attaches to its profile, new identifiers join it, and identifiers of two profiles merge them;
- unless that would give a profile more values of a type than the workspace allows (one
  user_id by default): then nothing merges, the message stays with its highest-priority
  identifier's profile, and the conflict is recorded.

Concurrency: every ingest transaction holds a shared advisory lock on its workspace; merges
need the exclusive one, so a batch that discovers it must merge is retried with it. Two
batches creating the same identifier race on the identity primary key: the loser sees fewer
rows come back from `INSERT ... ON CONFLICT DO NOTHING RETURNING` and retries, now seeing the
winner's row. Either way every person ends with one profile.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.core.ids import uuid7
from app.identity import cache as identity_cache
from app.identity.models import BY_PROFILE, IDENTIFIERS_OF_PROFILES
from app.identity.normalize import IdentitySettings
from app.traits import service as trait_service

LOCK_NAMESPACE = 7_310_001  # arbitrary; distinguishes our advisory locks from others'


class RetryBatch(Exception):
    """The batch lost a race (or needs the exclusive lock); roll back and run it again."""

    def __init__(self, reason: str, *, exclusive: bool = False) -> None:
        super().__init__(reason)
        self.exclusive = exclusive


_DEFAULT_SETTINGS = IdentitySettings()
_settings_cache: dict[bytes, IdentitySettings] = {}


def identity_settings_from(workspace_settings: Mapping[str, Any] | None) -> IdentitySettings:
    """The workspace's identity rules. One shared (immutable) object per configuration, so
    per-settings caches (identifier normalisation) survive from request to request."""
    raw = dict((workspace_settings or {}).get("identity") or {})
    if not raw:
        return _DEFAULT_SETTINGS
    key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    cached = _settings_cache.get(key)
    if cached is None:
        if len(_settings_cache) > 1024:
            _settings_cache.clear()
        cached = _settings_cache[key] = _build_settings(raw)
    return cached


def _build_settings(raw: dict[str, Any]) -> IdentitySettings:
    base = _DEFAULT_SETTINGS
    kwargs: dict[str, Any] = {}
    if "default_region" in raw:
        kwargs["default_region"] = str(raw["default_region"]).upper()
    if "blocked_values" in raw:
        kwargs["blocked_values"] = frozenset(str(v).strip().casefold() for v in raw["blocked_values"]) | base.blocked_values
    if "limits" in raw:
        kwargs["limits"] = {**dict(base.limits), **{str(k): int(v) for k, v in raw["limits"].items()}}
    if "priority" in raw:
        kwargs["priority"] = tuple(str(t) for t in raw["priority"])
    return dataclasses.replace(base, **kwargs) if kwargs else base


def trait_strategies_from(workspace_settings: Mapping[str, Any] | None) -> dict[str, str]:
    raw = ((workspace_settings or {}).get("identity") or {}).get("trait_strategies") or {}
    return {str(k): str(v) for k, v in raw.items() if v in MERGE_STRATEGIES}


def dedup_joins_from(workspace_settings: Mapping[str, Any] | None) -> frozenset[str]:
    """Identifier types a confirmed de-duplication merge may join beyond their limit.

    The workspace's explicit rule for CRM-style duplicates (one person entered under two
    customer numbers). Only the dedup domain passes it to :func:`manual_merge`; ingest never
    reads it, so its links keep the limits.
    """
    raw = ((workspace_settings or {}).get("identity") or {}).get("dedup_joins") or []
    return frozenset(str(t) for t in raw)


def limit_for(settings: IdentitySettings, type_: str) -> int:
    return int(settings.limits.get(type_, settings.default_limit))


def priority_rank(settings: IdentitySettings, type_: str) -> int:
    try:
        return settings.priority.index(type_)
    except ValueError:
        return len(settings.priority)


async def lock_workspace(conn: Any, workspace_id: uuid.UUID, *, exclusive: bool) -> None:
    await conn.execute(workspace_lock_sql(workspace_id, exclusive=exclusive))


def workspace_lock_sql(workspace_id: uuid.UUID, *, exclusive: bool) -> str:
    """The workspace's identity lock as constant SQL, so that it can travel with BEGIN in one
    round trip (Database.write_transaction; that protocol takes no parameters). The one value
    in it is the workspace's id rendered from a UUID object, never text a caller sent."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return f"SELECT {fn}({LOCK_NAMESPACE}, hashtext('{uuid.UUID(str(workspace_id))}'))"


@dataclass(slots=True)
class LinkRequest:
    """What one message asserts: these identifiers are one person."""

    index: int
    message_id: str
    rule: str  # identify, alias, track... (the message type), recorded on merges
    keys: list[tuple[str, str, str]]  # (type, value, raw), already normalised
    alias_previous: str | None = None  # alias previousId: a user_id or an anonymous_id


@dataclass(slots=True)
class _Component:
    profiles: set[uuid.UUID] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    has_message: bool = False


@dataclass(slots=True)
class Resolution:
    profile_of: dict[int, uuid.UUID]
    new_profiles: list[uuid.UUID]
    merges: int
    conflicts: int
    # Identifiers this transaction created, and the identity log's head it read under the
    # workspace lock: for identity_cache.learn once the transaction has committed.
    created: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    position: int = 0


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}
        self.state: dict[Any, _Component] = {}

    def add(self, node: Any) -> None:
        if node not in self.parent:
            self.parent[node] = node
            self.state[node] = _Component()

    def find(self, node: Any) -> Any:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: Any, b: Any) -> Any:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        sa, sb = self.state[ra], self.state[rb]
        self.parent[rb] = ra
        sa.profiles |= sb.profiles
        for t, vals in sb.values.items():
            sa.values[t] |= vals
        sa.has_message |= sb.has_message
        del self.state[rb]
        return ra


async def resolve(
    conn: Any,
    *,
    workspace_id: uuid.UUID,
    requests: Sequence[LinkRequest],
    settings: IdentitySettings,
    exclusive: bool,
    trait_strategies: Mapping[str, str] | None = None,
) -> Resolution:
    """Map every request to a profile, creating profiles and identities and merging as needed."""
    # 1. Which of the identifiers do we already know? (alias previousId may be either type)
    lookup: set[tuple[str, str]] = set()
    for req in requests:
        lookup.update((t, v) for t, v, _ in req.keys)
        if req.alias_previous is not None:
            lookup.add(("user_id", req.alias_previous))
            lookup.add(("anonymous_id", req.alias_previous))
    # Through the process's identity cache: only identifiers it has not seen cost a probe.
    known, position = await identity_cache.lookup(conn, workspace_id, list(lookup))

    for req in requests:
        if req.alias_previous is not None:
            prev = req.alias_previous
            ptype = "user_id" if ("user_id", prev) in known else "anonymous_id"
            if (ptype, prev) not in {(t, v) for t, v, _ in req.keys}:
                req.keys.append((ptype, prev, prev))

    # Fast path, the bulk of steady traffic: every identifier of the message is known and
    # points at one profile. Nothing to create, link or check.
    settled: dict[int, uuid.UUID] = {}
    pending: list[LinkRequest] = []
    for req in requests:
        first = known.get((req.keys[0][0], req.keys[0][1]))
        if first is not None and all(known.get((t, v)) == first for t, v, _ in req.keys[1:]):
            settled[req.index] = first
        else:
            pending.append(req)
    if not pending:
        return Resolution(profile_of=settled, new_profiles=[], merges=0, conflicts=0, position=position)

    # Second fast path: people seen for the first time. Messages with the same identifiers,
    # none of them known, none shared with any other message of the batch, and within the
    # limits, are one new profile: nothing to link, merge or check.
    newcomers, requests = _newcomers(pending, known, settings)
    new_profiles: list[uuid.UUID] = []
    inserts: dict[tuple[str, str], tuple[str, uuid.UUID, str]] = {}
    newcomer_profile: dict[int, uuid.UUID] = {}
    for group in newcomers:
        pid = uuid7()
        new_profiles.append(pid)
        for req in group:
            newcomer_profile[req.index] = pid
            for t, v, raw in req.keys:
                if (t, v) not in inserts:
                    inserts[(t, v)] = (raw, pid, req.message_id)

    pending_keys = {(t, v) for req in requests for t, v, _ in req.keys}
    known = {k: p for k, p in known.items() if k in pending_keys}

    # 2. Do any messages link identifiers across profiles, or add identifiers to a known
    # profile? Only then do we need the existing identifiers of those profiles (for limits).
    touched_profiles: set[uuid.UUID] = set()
    for req in requests:
        profiles = {known[(t, v)] for t, v, _ in req.keys if (t, v) in known}
        has_new = any((t, v) not in known for t, v, _ in req.keys)
        if len(profiles) > 1 or (profiles and has_new):
            touched_profiles |= profiles
    existing: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)
    if touched_profiles:
        for r in await conn.fetch(
            IDENTIFIERS_OF_PROFILES, workspace_id, list(touched_profiles),
        ):
            existing[r["profile_id"]].append((r["type"], r["value"]))

    # 3. Union-find over identifiers and profiles, message by message, honouring limits.
    uf = _UnionFind()
    for (t, v), pid in known.items():
        node = ("p", pid)
        if node not in uf.parent:
            uf.add(node)
            uf.state[node].profiles.add(pid)
            for et, ev in existing.get(pid, ()):
                uf.state[node].values[et].add(ev)
        uf.add(("k", t, v))
        uf.state[("k", t, v)].values[t].add(v)
        uf.union(node, ("k", t, v))

    def compatible(ra: Any, rb: Any) -> bool:
        a, b = uf.state[ra], uf.state[rb]
        for t in set(a.values) & set(b.values):
            if len(a.values[t] | b.values[t]) > limit_for(settings, t):
                return False
        return True

    merge_causes: dict[frozenset[uuid.UUID], tuple[LinkRequest, tuple[str, str]]] = {}
    conflicts: list[dict[str, Any]] = []
    primary_of: dict[int, Any] = {}
    for req in requests:
        keys = sorted(req.keys, key=lambda k: priority_rank(settings, k[0]))
        for t, v, _ in keys:
            node = ("k", t, v)
            if node not in uf.parent:
                uf.add(node)
                uf.state[node].values[t].add(v)
        primary = ("k", keys[0][0], keys[0][1])
        uf.state[uf.find(primary)].has_message = True
        primary_of[req.index] = primary
        for t, v, _ in keys[1:]:
            ra, rb = uf.find(primary), uf.find(("k", t, v))
            if ra == rb:
                continue
            if compatible(ra, rb):
                pa, pb = set(uf.state[ra].profiles), set(uf.state[rb].profiles)
                uf.union(ra, rb)
                if pa and pb:
                    merge_causes.setdefault(frozenset(pa | pb), (req, (t, v)))
            else:
                conflicts.append({
                    "index": req.index, "profiles": (set(uf.state[ra].profiles), set(uf.state[rb].profiles)),
                    "type": t, "value": v, "message_id": req.message_id,
                    "reason": _conflict_reason(uf.state[ra], uf.state[rb], settings),
                })

    # 4. One profile per component: new, existing, or a merge of several.
    component_profile: dict[Any, uuid.UUID] = {}
    merges: list[tuple[uuid.UUID, list[uuid.UUID], Any]] = []
    for root, comp in uf.state.items():
        if not comp.has_message:
            continue
        if not comp.profiles:
            pid = uuid7()
            new_profiles.append(pid)
            component_profile[root] = pid
        else:
            survivor = min(comp.profiles)  # uuid7: the oldest profile survives
            component_profile[root] = survivor
            if len(comp.profiles) > 1:
                merges.append((survivor, sorted(comp.profiles - {survivor}), root))

    if merges and not exclusive:
        raise RetryBatch("merge needed", exclusive=True)

    for survivor, absorbed, root in merges:
        cause_req, cause_key = _find_cause(merge_causes, uf.state[root].profiles)
        for victim in absorbed:
            await merge_profiles(
                conn, workspace_id=workspace_id, survivor_id=survivor, absorbed_id=victim,
                rule=_merge_rule(cause_req), identifier=cause_key,
                message_id=cause_req.message_id if cause_req else None, trait_strategies=trait_strategies,
            )

    # 5. New profiles and new identifiers, in one statement; identifiers in key order so
    # concurrent batches cannot deadlock on them. (Nothing before needs the new profile rows:
    # merges only involve existing profiles.)
    for req in requests:
        for t, v, raw in req.keys:
            if (t, v) in known or (t, v) in inserts:
                continue
            root = uf.find(("k", t, v))
            if root in component_profile:
                inserts[(t, v)] = (raw, component_profile[root], req.message_id)
    created: dict[tuple[str, str], uuid.UUID] = {}
    if inserts or new_profiles:
        keys_sorted = sorted(inserts)
        returned = await conn.fetch(
            """
            WITH profiles AS (INSERT INTO profile (workspace_id, id) SELECT $1, unnest($3::uuid[]))
            INSERT INTO identity (workspace_id, type, value, raw, profile_id, source_message_id)
            SELECT $1, k.type, k.value, k.raw, k.profile_id, k.message_id
            FROM jsonb_to_recordset($2::text::jsonb)
                 AS k(type text, value text, raw text, profile_id uuid, message_id text)
            ORDER BY k.type, k.value
            ON CONFLICT DO NOTHING
            RETURNING type, value
            """,
            workspace_id,
            orjson.dumps([
                {"type": k[0], "value": k[1], "raw": inserts[k][0], "profile_id": str(inserts[k][1]),
                 "message_id": inserts[k][2]}
                for k in keys_sorted
            ]).decode(),
            new_profiles,
        )
        if len(returned) != len(keys_sorted):
            replaced = await _adopt_concurrent_profiles(
                conn, workspace_id, inserts, {(r["type"], r["value"]) for r in returned}, set(new_profiles)
            )
            for root, pid in component_profile.items():
                if pid in replaced:
                    component_profile[root] = replaced[pid]
            for index, pid in newcomer_profile.items():
                if pid in replaced:
                    newcomer_profile[index] = replaced[pid]
            new_profiles = [p for p in new_profiles if p not in replaced]
        # Only what no merge moved: a merge's own changes are in the log after `position`.
        if not merges:
            created = {(r["type"], r["value"]): inserts[(r["type"], r["value"])][1] for r in returned}

    if conflicts:
        await _record_conflicts(conn, workspace_id, conflicts, uf, component_profile, primary_of)

    profile_of = {req.index: component_profile[uf.find(primary_of[req.index])] for req in requests}
    profile_of.update(newcomer_profile)
    # A message settled before union-find may belong to a profile another message of the batch
    # just merged away: its event goes to the survivor, like the absorbed profile's others.
    survivor_of = {victim: survivor for survivor, absorbed, _ in merges for victim in absorbed}
    profile_of.update({index: survivor_of.get(pid, pid) for index, pid in settled.items()})
    return Resolution(profile_of=profile_of, new_profiles=new_profiles, merges=sum(len(a) for _, a, _ in merges),
                      conflicts=len(conflicts), created=created, position=position)


def _newcomers(
    pending: Sequence[LinkRequest], known: Mapping[tuple[str, str], uuid.UUID], settings: IdentitySettings
) -> tuple[list[list[LinkRequest]], list[LinkRequest]]:
    """Split pending requests into groups that are each simply a new person, and the rest
    (which go through union-find)."""
    groups: dict[frozenset[tuple[str, str]], list[LinkRequest]] = {}
    rest: list[LinkRequest] = []
    for req in pending:
        keys = frozenset((t, v) for t, v, _ in req.keys)
        if req.alias_previous is None and not any(k in known for k in keys) and _within_limits(req, settings):
            groups.setdefault(keys, []).append(req)
        else:
            rest.append(req)
    # A group whose identifiers appear in another group or another message is linked to it:
    # both go the long way.
    owner: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
    linked: set[frozenset[tuple[str, str]]] = set()
    for keys in groups:
        for k in keys:
            other = owner.setdefault(k, keys)
            if other is not keys:
                linked.update((other, keys))
    for req in rest:
        for t, v, _ in req.keys:
            if (t, v) in owner:
                linked.add(owner[(t, v)])
    for keys in linked:
        rest.extend(groups.pop(keys))
    rest.sort(key=lambda r: r.index)  # union-find goes message by message, in batch order
    return list(groups.values()), rest


def _within_limits(req: LinkRequest, settings: IdentitySettings) -> bool:
    counts: dict[str, int] = defaultdict(int)
    for t, _, _ in req.keys:
        counts[t] += 1
    return all(n <= limit_for(settings, t) for t, n in counts.items())


async def _adopt_concurrent_profiles(
    conn: Any,
    workspace_id: uuid.UUID,
    inserts: Mapping[tuple[str, str], tuple[str, uuid.UUID, str]],
    inserted: set[tuple[str, str]],
    new_profiles: set[uuid.UUID],
) -> dict[uuid.UUID, uuid.UUID]:
    """Another transaction created some of our new identifiers first (we waited for its commit).

    The common case, a person first seen by two concurrent batches, is settled here: when
    every new identifier of one of our brand-new profiles now belongs to one existing profile,
    use that profile and drop ours. Anything else might need a merge or a limit check, so the
    batch is retried under the workspace's exclusive lock, where no race is possible.
    """
    lost = sorted(k for k in inserts if k not in inserted)
    rows = await conn.fetch(identity_cache.LOOKUP, workspace_id, identity_cache.keys_json(lost))
    owner = {(r["type"], r["value"]): r["profile_id"] for r in rows if r["profile_id"] is not None}
    keys_of: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)
    for key, (_, pid, _) in inserts.items():
        keys_of[pid].append(key)
    replaced: dict[uuid.UUID, uuid.UUID] = {}
    for pid, keys in keys_of.items():
        lost_keys = [k for k in keys if k not in inserted]
        if not lost_keys:
            continue
        winners = {owner.get(k) for k in lost_keys}
        if pid not in new_profiles or len(lost_keys) != len(keys) or len(winners) != 1 or None in winners:
            raise RetryBatch("an identifier was created concurrently", exclusive=True)
        replaced[pid] = winners.pop()
    if replaced:
        await conn.execute(
            "DELETE FROM profile WHERE workspace_id = $1 AND id = ANY($2::uuid[])", workspace_id, list(replaced)
        )
    return replaced


def _merge_rule(req: LinkRequest | None) -> str:
    if req is None:
        return "shared_identifier"
    return {"identify": "identify", "alias": "alias"}.get(req.rule, "shared_identifier")


def _find_cause(causes: Mapping[frozenset[uuid.UUID], tuple[LinkRequest, tuple[str, str]]], profiles: set[uuid.UUID]):
    for group, cause in causes.items():
        if group <= profiles:
            return cause
    return None, None


def _conflict_reason(a: _Component, b: _Component, settings: IdentitySettings) -> str:
    for t in sorted(set(a.values) & set(b.values)):
        union = a.values[t] | b.values[t]
        if len(union) > limit_for(settings, t):
            return f"joining would give one profile {len(union)} values of {t} (limit {limit_for(settings, t)})"
    return "identity limit"


async def _record_conflicts(conn, workspace_id, conflicts, uf, component_profile, primary_of) -> None:
    rows = []
    for c in conflicts:
        _, theirs = c["profiles"]
        profile = component_profile[uf.find(primary_of[c["index"]])]  # where the message ended up
        other = next(iter(theirs), None)
        rows.append((uuid7(), profile, other, c["type"], c["value"], c["reason"], c["message_id"]))
    if rows:
        await conn.executemany(
            """INSERT INTO identity_conflict
               (workspace_id, id, profile_id, other_profile_id, identifier_type, identifier_value, reason, message_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            [(workspace_id, *r) for r in rows],
        )


async def merge_profiles(
    conn: Any,
    *,
    workspace_id: uuid.UUID,
    survivor_id: uuid.UUID,
    absorbed_id: uuid.UUID,
    rule: str,
    identifier: tuple[str, str] | None = None,
    message_id: str | None = None,
    trait_strategies: Mapping[str, str] | None = None,
) -> uuid.UUID:
    """Fold `absorbed_id` into `survivor_id` and write the ledger entry. Caller holds the
    workspace's exclusive identity lock."""
    merge_id = uuid7()
    profiles = await conn.fetch(
        "SELECT id, traits, updated_at FROM profile WHERE workspace_id = $1 AND id = ANY($2::uuid[]) FOR UPDATE",
        workspace_id, [survivor_id, absorbed_id],
    )
    by_id = {r["id"]: r for r in profiles}
    survivor, absorbed = by_id[survivor_id], by_id[absorbed_id]
    merged_traits = merge_traits(
        [(survivor["updated_at"], _json(survivor["traits"])), (absorbed["updated_at"], _json(absorbed["traits"]))],
        trait_strategies or {},
    )
    moved = await conn.fetch(
        f"UPDATE identity SET profile_id = $3 WHERE {BY_PROFILE} RETURNING type, value, raw",
        workspace_id, [absorbed_id], survivor_id,
    )
    await conn.execute(
        """INSERT INTO profile_merge_event (workspace_id, merge_id, message_id)
           SELECT $1, $2, message_id FROM event WHERE profile_id = $3 AND workspace_id IS NOT DISTINCT FROM $1""",
        workspace_id, merge_id, absorbed_id,
    )
    await conn.execute(
        # (IS NOT DISTINCT FROM: the profile index, see app.ingest.models.of_profile)
        "UPDATE event SET profile_id = $2 WHERE profile_id = $3 AND workspace_id IS NOT DISTINCT FROM $1",
        workspace_id, survivor_id, absorbed_id,
    )
    # The survivor's computed traits now count the absorbed profile's events, whose own no
    # longer hold: both join the incremental refresh.
    await trait_service.enqueue_incremental_refresh(conn, workspace_id=workspace_id, profile_ids=[survivor_id, absorbed_id])
    await conn.execute(
        """INSERT INTO account_member (workspace_id, group_id, profile_id)
           SELECT workspace_id, group_id, $2 FROM account_member WHERE workspace_id = $1 AND profile_id = $3
           ON CONFLICT DO NOTHING""",
        workspace_id, survivor_id, absorbed_id,
    )
    await conn.execute(
        "DELETE FROM account_member WHERE workspace_id = $1 AND profile_id = $2", workspace_id, absorbed_id
    )
    await conn.execute(
        "UPDATE profile SET traits = $3::text::jsonb, updated_at = now() WHERE workspace_id = $1 AND id = $2",
        workspace_id, survivor_id, orjson.dumps(merged_traits).decode(),
    )
    await conn.execute(
        "UPDATE profile SET merged_into = $3, updated_at = now() WHERE workspace_id = $1 AND (id = $2 OR merged_into = $2)",
        workspace_id, absorbed_id, survivor_id,
    )
    await conn.execute(
        """INSERT INTO profile_merge (workspace_id, id, survivor_id, absorbed_id, rule, identifier_type,
               identifier_value, message_id, absorbed_identities, absorbed_traits, survivor_traits)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, $11::text::jsonb)""",
        workspace_id, merge_id, survivor_id, absorbed_id, rule,
        identifier[0] if identifier else None, identifier[1] if identifier else None, message_id,
        orjson.dumps([dict(r) for r in moved]).decode(), orjson.dumps(_json(absorbed["traits"])).decode(),
        orjson.dumps(_json(survivor["traits"])).decode(),
    )
    return merge_id


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return dict(value or {})


MERGE_STRATEGIES = ("most_recent", "oldest", "non_empty", "sum", "union")


def merge_traits(versions: Iterable[tuple[Any, dict[str, Any]]], strategies: Mapping[str, str]) -> dict[str, Any]:
    """Combine trait dicts of profiles being merged. `versions` are (updated_at, traits).

    Default: the most recently updated profile wins. Per trait: oldest, non_empty (most recent
    non-empty value), sum (numbers), union (lists, order kept, no repeats).
    """
    ordered = sorted(versions, key=lambda v: v[0])  # oldest first
    out: dict[str, Any] = {}
    for _, traits in ordered:
        for key, value in traits.items():
            strategy = strategies.get(key, "most_recent")
            if key not in out:
                out[key] = list(value) if strategy == "union" and isinstance(value, list) else value
            elif strategy == "most_recent":
                out[key] = value
            elif strategy == "oldest":
                pass
            elif strategy == "non_empty":
                if value not in (None, "", [], {}):
                    out[key] = value
            elif strategy == "sum":
                if isinstance(value, int | float) and isinstance(out[key], int | float):
                    out[key] = out[key] + value
                else:
                    out[key] = value
            elif strategy == "union":
                current = out[key] if isinstance(out[key], list) else [out[key]]
                for item in value if isinstance(value, list) else [value]:
                    if item not in current:
                        current.append(item)
                out[key] = current
    return out


# --- Operations behind the API: manual merge, split, ledger, settings, conflicts -------------


async def manual_merge(
    session: Any,
    *,
    workspace_id: uuid.UUID,
    profile_ids: Sequence[uuid.UUID],
    survivor_id: uuid.UUID | None,
    dry_run: bool,
    workspace_settings: Mapping[str, Any],
    rule: str = "manual",
    exempt_types: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Merge profiles into one, honouring identity limits. A dry run computes the same result
    and writes nothing.

    ``exempt_types`` are identifier types whose limit this merge may exceed (the workspace's
    ``dedup_joins`` rule, passed by the dedup domain only). A merge that uses it records the
    type and the values it joined in the ledger entry's identifier; ``split`` undoes it."""
    from app.core.db import raw_connection
    from app.core.errors import Conflict, NotFound, ValidationFailed

    ids = list(dict.fromkeys(profile_ids))
    if len(ids) < 2:
        raise ValidationFailed("A merge needs at least two different profiles.")
    if survivor_id is not None and survivor_id not in ids:
        raise ValidationFailed("survivor_id must be one of profile_ids.")
    conn = await raw_connection(session)
    if not dry_run:
        await lock_workspace(conn, workspace_id, exclusive=True)
    rows = await conn.fetch(
        "SELECT id, traits, created_at, updated_at, merged_into FROM profile WHERE workspace_id = $1 AND id = ANY($2::uuid[])",
        workspace_id, ids,
    )
    found = {r["id"]: r for r in rows}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(f"No profile with id {', '.join(missing)} in this workspace.")
    merged = [str(r["id"]) for r in rows if r["merged_into"] is not None]
    if merged:
        raise Conflict(f"Profile {', '.join(merged)} was already merged into another profile; merge that one instead.")
    survivor = survivor_id or min(ids, key=lambda i: (found[i]["created_at"], i))  # the oldest survives
    absorbed = [i for i in ids if i != survivor]
    identities = await conn.fetch(
        IDENTIFIERS_OF_PROFILES, workspace_id, ids,
    )
    settings = identity_settings_from(workspace_settings)
    by_type: dict[str, set[str]] = defaultdict(set)
    for r in identities:
        by_type[r["type"]].add(r["value"])
    joined: tuple[str, str] | None = None
    for t, values in sorted(by_type.items()):
        if len(values) > limit_for(settings, t) and t in exempt_types:
            joined = (t, ", ".join(sorted(values)))
            continue
        if len(values) > limit_for(settings, t):
            raise Conflict(
                f"Merging would give one profile {len(values)} values of {t} ({', '.join(sorted(values))}); "
                f"the workspace allows {limit_for(settings, t)}.",
                code="identity_conflict",
            )
    strategies = trait_strategies_from(workspace_settings)
    traits = merge_traits([(r["updated_at"], _json(r["traits"])) for r in rows], strategies)
    merge_ids: list[uuid.UUID] = []
    if not dry_run:
        for victim in absorbed:
            merge_ids.append(
                await merge_profiles(conn, workspace_id=workspace_id, survivor_id=survivor, absorbed_id=victim,
                                     rule=rule, identifier=joined, trait_strategies=strategies)
            )
        traits = _json(await conn.fetchval(
            "SELECT traits FROM profile WHERE workspace_id = $1 AND id = $2", workspace_id, survivor
        ))
    return {
        "dry_run": dry_run, "survivor_id": survivor, "absorbed_ids": absorbed, "merge_ids": merge_ids, "joined": joined,
        "identifiers": sorted(({"type": r["type"], "value": r["value"], "raw": r["raw"]} for r in identities),
                              key=lambda i: (i["type"], i["value"])),
        "traits": traits,
    }


async def split(
    session: Any,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID,
    merge_id: uuid.UUID | None = None,
    absorbed_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Undo a merge from the ledger: the absorbed profile comes back with the identifiers and
    events the merge moved, and both profiles get their traits from before the merge."""
    from app.core.db import raw_connection
    from app.core.errors import Conflict, NotFound, ValidationFailed

    conn = await raw_connection(session)
    await lock_workspace(conn, workspace_id, exclusive=True)
    query = """SELECT * FROM profile_merge WHERE workspace_id = $1 AND undone_at IS NULL
               AND (survivor_id = $2 OR absorbed_id = $2)"""
    entries = [dict(r) for r in await conn.fetch(query + " ORDER BY created_at DESC", workspace_id, profile_id)]
    if merge_id is not None:
        entries = [e for e in entries if e["id"] == merge_id]
    elif absorbed_id is not None:
        entries = [e for e in entries if e["absorbed_id"] == absorbed_id]
    else:
        as_absorbed = [e for e in entries if e["absorbed_id"] == profile_id]
        entries = as_absorbed or entries
        if len(entries) > 1:
            raise ValidationFailed(
                f"Profile {profile_id} has {len(entries)} merges; say which with merge_id or absorbed_id.",
                code="ambiguous_split",
            )
    if not entries:
        raise NotFound(f"No merge to undo for profile {profile_id} in this workspace.")
    entry = entries[0]
    survivor, restored = entry["survivor_id"], entry["absorbed_id"]
    later = await conn.fetchval(
        """SELECT count(*) FROM profile_merge WHERE workspace_id = $1 AND undone_at IS NULL
           AND (absorbed_id = $2) AND created_at > $3""",
        workspace_id, survivor, entry["created_at"],
    )
    if later:
        raise Conflict(f"Profile {survivor} was itself merged later; split that merge first.")
    identities = _json_list(entry["absorbed_identities"])
    moved_ids = await conn.execute(
        """UPDATE identity AS i SET profile_id = $3
           FROM jsonb_to_recordset($4::text::jsonb) AS k(type text, value text)
           WHERE i.workspace_id = $1 AND i.profile_id = $2 AND i.type = k.type AND i.value = k.value""",
        workspace_id, survivor, restored, orjson.dumps(identities).decode(),
    )
    moved_events = await conn.execute(
        """UPDATE event AS e SET profile_id = $3
           FROM profile_merge_event AS m
           WHERE m.workspace_id = $1 AND m.merge_id = $4 AND e.workspace_id = $1
             AND e.message_id = m.message_id AND e.profile_id = $2""",
        workspace_id, survivor, restored, entry["id"],
    )
    await trait_service.enqueue_incremental_refresh(conn, workspace_id=workspace_id, profile_ids=[survivor, restored])
    await conn.execute(
        "UPDATE profile SET merged_into = NULL, traits = $3::text::jsonb, updated_at = now() WHERE workspace_id = $1 AND id = $2",
        workspace_id, restored, orjson.dumps(_json(entry["absorbed_traits"])).decode(),
    )
    await conn.execute(
        "UPDATE profile SET traits = $3::text::jsonb, updated_at = now() WHERE workspace_id = $1 AND id = $2",
        workspace_id, survivor, orjson.dumps(_json(entry["survivor_traits"])).decode(),
    )
    await conn.execute(
        "UPDATE profile_merge SET undone_at = now() WHERE workspace_id = $1 AND id = $2", workspace_id, entry["id"]
    )
    return {
        "merge_id": entry["id"], "survivor_id": survivor, "restored_id": restored,
        "identifiers_moved": int(moved_ids.split()[-1]), "events_moved": int(moved_events.split()[-1]),
    }


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return list(value or [])


async def list_merges(session: Any, *, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> list[Any]:
    import sqlalchemy as sa

    from app.identity.models import ProfileMerge

    stmt = (
        sa.select(ProfileMerge)
        .where(ProfileMerge.workspace_id == workspace_id,
               sa.or_(ProfileMerge.survivor_id == profile_id, ProfileMerge.absorbed_id == profile_id))
        .order_by(ProfileMerge.created_at.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def list_conflicts(
    session: Any, *, workspace_id: uuid.UUID, profile_id: uuid.UUID | None, limit: int
) -> list[Any]:
    import sqlalchemy as sa

    from app.identity.models import IdentityConflict

    stmt = sa.select(IdentityConflict).where(IdentityConflict.workspace_id == workspace_id)
    if profile_id is not None:
        stmt = stmt.where(sa.or_(IdentityConflict.profile_id == profile_id, IdentityConflict.other_profile_id == profile_id))
    return list((await session.execute(stmt.order_by(IdentityConflict.created_at.desc()).limit(limit))).scalars())
