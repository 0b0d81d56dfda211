"""Suppression on the ingest path: drop messages that carry an erased person's identifier.

One statement per batch, and only for workspaces that have suppressions: every identifier of
the batch is hashed (HMAC under the workspace's key, about a microsecond each) and the hashes
are probed against the workspace's suppression list in one round trip (the unique index on
(workspace_id, identifier_hash) serves it). A message with any suppressed identifier is
dropped whole and counted. Runs under the workspace's shared identity lock, so an erasure
(which holds it exclusively) is either wholly before the check or wholly after the batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.identity import cache as identity_cache
from app.identity.normalize import IdentitySettings, InvalidIdentifier, normalize_identifier
from app.privacy.hashing import hasher

PROBE = """
SELECT h FROM unnest($2::bytea[]) AS h
WHERE EXISTS (SELECT 1 FROM suppression AS s WHERE s.workspace_id = $1 AND s.identifier_hash = h)
"""


def workspace_has_suppressions(workspace_settings: dict | None) -> bool:
    """The hint kept in the workspace's settings (cached with write keys for a few seconds);
    ingest also checks after it saw an erasure in the identity change log."""
    return bool(((workspace_settings or {}).get("privacy") or {}).get("suppressions"))


def _pairs(message: Any, identity: IdentitySettings) -> list[tuple[str, str]]:
    pairs = list(message.pairs)
    if message.type == "alias" and message.previous_id is not None:
        # An alias's previousId is a user id or an anonymous id: either spelling is suppressed.
        for type_ in ("user_id", "anonymous_id"):
            try:
                ident = normalize_identifier(type_, message.previous_id, identity)
            except InvalidIdentifier:
                continue
            if ident is not None:
                pairs.append((ident.type, ident.value))
    return pairs


async def drop_suppressed(
    conn: Any, workspace_id: uuid.UUID, messages: Sequence[Any], identity: IdentitySettings,
    memo: identity_cache.SuppressionMemo,
) -> tuple[list[Any], int]:
    """The messages without a suppressed identifier, and how many were dropped.

    `memo` holds identifiers found clear by earlier batches: they are neither hashed nor
    looked up again, so a batch of returning people costs no query at all. The caller must
    check `identity_cache.memo_still_valid` after its own read of the change log."""
    clear = memo.clear
    pairs_of = [_pairs(m, identity) for m in messages]
    unknown = {p for pairs in pairs_of for p in pairs if p not in clear}
    if not unknown:
        return list(messages), 0
    hash_of = hasher(workspace_id)
    hash_by_pair = {p: hash_of(*p) for p in unknown}
    suppressed = {r["h"] for r in await conn.fetch(PROBE, workspace_id, list(set(hash_by_pair.values())))}
    bad = {p for p, h in hash_by_pair.items() if h in suppressed}
    if memo.workspace is not None:
        if len(clear) > identity_cache.MAX_KEYS_PER_WORKSPACE:
            clear.clear()
        clear.update(unknown - bad)
    if not bad:
        return list(messages), 0
    kept = [m for m, pairs in zip(messages, pairs_of, strict=True) if bad.isdisjoint(pairs)]
    return kept, len(messages) - len(kept)
