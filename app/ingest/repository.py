"""Set-based writes and keyset reads of events. Raw asyncpg on the write path (see db.raw_connection)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.ingest.parser import ParsedMessage
from app.traits import repository as trait_repository


def _dumps(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()


async def existing_message_ids(conn: Any, workspace_id: uuid.UUID, message_ids: Sequence[str]) -> set[str]:
    # Correlated EXISTS: one primary-key probe per id, whatever the statistics say (a plain
    # `message_id = ANY(...)` lets the planner scan the whole workspace when stats are stale).
    rows = await conn.fetch(
        """SELECT k.id AS message_id FROM unnest($2::text[]) AS k(id)
           WHERE EXISTS (SELECT 1 FROM event AS e WHERE e.workspace_id = $1 AND e.message_id = k.id)""",
        workspace_id, list(message_ids),
    )
    return {r["message_id"] for r in rows}


# One JSON document per batch, expanded by jsonb_to_recordset: the driver sends one string
# instead of encoding 17 arrays element by element (which cost more CPU than the rest of the
# request). Each row was serialised while its message was parsed, with properties, context...
# as the client's own bytes; the profile ids, known only after identity resolution, come as
# a parallel array ($4), zipped row by row with ROWS FROM.
_INSERT = """
INSERT INTO event (workspace_id, message_id, profile_id, type, event, name, user_id, anonymous_id,
                   group_id, previous_id, properties, traits, context, integrations, timestamp,
                   original_timestamp, sent_at, received_at, timestamp_clamped)
SELECT $1, m.message_id, m.profile_id, m.type, m.event, m.name, m.user_id, m.anonymous_id, m.group_id,
       m.previous_id, coalesce(m.properties, '{}'), coalesce(m.traits, '{}'), coalesce(m.context, '{}'),
       coalesce(m.integrations, '{}'), m.ts, m.original_ts, m.sent_at, $2, coalesce(m.clamped, false)
FROM ROWS FROM (
       jsonb_to_recordset($3::text::jsonb) AS (
           message_id text, type text, event text, name text, user_id text, anonymous_id text, group_id text,
           previous_id text, properties jsonb, traits jsonb, context jsonb, integrations jsonb,
           ts timestamptz, original_ts timestamptz, sent_at timestamptz, clamped boolean),
       unnest($4::uuid[])
     ) AS m(message_id, type, event, name, user_id, anonymous_id, group_id, previous_id, properties, traits,
            context, integrations, ts, original_ts, sent_at, clamped, profile_id)
ORDER BY m.message_id
ON CONFLICT DO NOTHING
"""

# The event insert alone (bench/ingest.py measures it as the raw limit).
INSERT_EVENTS = f"""
WITH inserted AS ({_INSERT} RETURNING 1)
SELECT count(*) FROM inserted
"""

# What ingest runs, in one round trip: the same insert; the batch's dirty mark for the
# incremental computed-trait refresh ($5: the window in seconds); and the identity changes
# after $6 (identity_cache.apply_changes: a batch that took its profiles from the cache without
# a look-up checks them here; identity_cache.NO_CHANGES when it did not).
#
# Only the profiles of new events that can change a computed value are marked: orders (the
# built-ins, RFM, CLV) and the events a definition of the workspace counts. A page view or a
# replayed message costs no refresh.
INSERT_EVENTS_AND_MARK_DIRTY = f"""
WITH inserted AS ({_INSERT} RETURNING profile_id, event),
touched AS (
    SELECT array_agg(DISTINCT i.profile_id) AS ids FROM inserted AS i
    WHERE i.event = '{trait_repository.ORDER_EVENT}'
       OR i.event IN (SELECT t.event FROM computed_trait AS t WHERE t.workspace_id = $1)
),
{trait_repository.mark_dirty_ctes("$1", "(SELECT ids FROM touched)", "$5")},
changes AS (SELECT c.seq, c.profile_id FROM identity_change AS c WHERE c.workspace_id = $1 AND c.seq > $6)
SELECT (SELECT count(*) FROM inserted) AS inserted, (SELECT ids IS NOT NULL FROM touched) AS marked,
       bucket, (bucket + 1) * $5 - epoch AS wait,
       (SELECT max(seq) FROM changes) AS head, (SELECT array_agg(DISTINCT profile_id) FROM changes) AS changed
FROM clock
"""


def event_rows(messages: Sequence[ParsedMessage]) -> str:
    """The batch as the JSON document INSERT_EVENTS expands (rows serialised while parsing)."""
    return (b"[" + b",".join([m.row for m in messages]) + b"]").decode()


@dataclass(frozen=True, slots=True)
class Inserted:
    count: int  # new events (the rest were duplicates)
    marked: bool  # whether profiles were marked for the incremental refresh
    bucket: int  # the dirty mark's window
    wait: float  # seconds until it closes
    head: int | None  # the last identity change after `changes_since` (None: none)
    changed: list[uuid.UUID]  # the profiles those changes touched


async def insert_events(
    conn: Any,
    workspace_id: uuid.UUID,
    received_at: datetime,
    messages: Sequence[ParsedMessage],
    profile_of: dict[int, uuid.UUID],
    *,
    delay_seconds: float,
    changes_since: int,
) -> Inserted:
    """Insert the messages, mark their profiles dirty, and read the identity changes after
    `changes_since`."""
    row = await conn.fetchrow(
        INSERT_EVENTS_AND_MARK_DIRTY, workspace_id, received_at, event_rows(messages),
        [profile_of[m.index] for m in messages], float(delay_seconds), changes_since,
    )
    return Inserted(row["inserted"], row["marked"], int(row["bucket"]), max(float(row["wait"]), 0.0), row["head"],
                    row["changed"] or [])


async def upsert_accounts(
    conn: Any, workspace_id: uuid.UUID, traits_by_group: dict[str, dict[str, Any]], members: set[tuple[str, uuid.UUID]]
) -> None:
    if traits_by_group:
        groups = sorted(traits_by_group)
        await conn.execute(
            """
            INSERT INTO account (workspace_id, group_id, traits)
            SELECT $1, g, t::jsonb FROM unnest($2::text[], $3::text[]) AS v(g, t)
            ON CONFLICT (workspace_id, group_id)
            DO UPDATE SET traits = account.traits || EXCLUDED.traits, updated_at = now()
            """,
            workspace_id, groups, [_dumps(traits_by_group[g]) for g in groups],
        )
    if members:
        ordered = sorted(members, key=lambda m: (m[0], str(m[1])))
        await conn.execute(
            """
            INSERT INTO account_member (workspace_id, group_id, profile_id)
            SELECT $1, g, p FROM unnest($2::text[], $3::uuid[]) AS v(g, p)
            ON CONFLICT DO NOTHING
            """,
            workspace_id, [g for g, _ in ordered], [p for _, p in ordered],
        )
