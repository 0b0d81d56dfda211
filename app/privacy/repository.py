"""SQL of the privacy domain. Table and column names in the dynamic statements come from
pg_catalog (app/privacy/catalog.py) and are quoted; every value is a bound parameter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.ids import uuid7
from app.privacy.catalog import PROFILE_TABLE, PersonalTable, quote
from app.privacy.models import PrivacyExport, PrivacyRequest, Suppression


@dataclass(slots=True)
class Person:
    profile_id: uuid.UUID  # the surviving profile
    profile_ids: list[uuid.UUID]  # it and every profile merged into it
    identifiers: list[tuple[str, str, str]]  # (type, value, raw) of all of them
    merge_ids: list[uuid.UUID]


async def find_person(conn: Any, workspace_id: uuid.UUID, type_: str, value: str) -> Person | None:
    """The person an identifier belongs to, across merged profiles (None: unknown)."""
    start = await conn.fetchval(
        "SELECT profile_id FROM identity WHERE workspace_id = $1 AND type = $2 AND value = $3", workspace_id, type_, value
    )
    if start is None:
        return None
    # The survivor: merges keep merged_into pointing at the current survivor (flattened).
    root = await conn.fetchval(
        "SELECT coalesce(merged_into, id) FROM profile WHERE workspace_id = $1 AND id = $2", workspace_id, start
    ) or start
    ids: set[uuid.UUID] = {root}
    merge_ids: set[uuid.UUID] = set()
    # Profiles merged into it (also through older survivors), and the merge ledger's side of it.
    while True:
        rows = await conn.fetch(
            """SELECT id AS pid, NULL::uuid AS merge_id FROM profile
               WHERE workspace_id = $1 AND merged_into = ANY($2::uuid[])
               UNION ALL
               SELECT unnest(ARRAY[survivor_id, absorbed_id]), id FROM profile_merge
               WHERE workspace_id = $1 AND (survivor_id = ANY($2::uuid[]) OR absorbed_id = ANY($2::uuid[]))
                 AND undone_at IS NULL""",
            workspace_id, list(ids),
        )
        found = {r["pid"] for r in rows}
        merge_ids.update(r["merge_id"] for r in rows if r["merge_id"] is not None)
        if found <= ids:
            break
        ids |= found
    identifiers = await conn.fetch(
        "SELECT type, value, raw FROM identity WHERE workspace_id = $1 AND profile_id = ANY($2::uuid[]) "
        "ORDER BY type, value",
        workspace_id, list(ids),
    )
    # Merges undone by a split still name the person: their ledger rows go too.
    merge_ids.update(
        r["id"] for r in await conn.fetch(
            "SELECT id FROM profile_merge WHERE workspace_id = $1 AND (survivor_id = ANY($2::uuid[]) "
            "OR absorbed_id = ANY($2::uuid[]))", workspace_id, list(ids),
        )
    )
    return Person(root, sorted(ids), [(r["type"], r["value"], r["raw"]) for r in identifiers], sorted(merge_ids))


def _where(table: PersonalTable, workspace_id: uuid.UUID, person: Person, values: Sequence[str]) -> tuple[str, list[Any]]:
    """The rows of `table` that belong to the person, as a condition and its parameters.
    Identifier columns are used only in tables without a profile column (where the profile
    column is, it is what ties a row to its person)."""
    args: list[Any] = [workspace_id]

    def param(value: Any, cast: str) -> str:
        if value not in args[1:]:
            args.append(value)
        return f"${args.index(value, 1) + 1}::{cast}"

    parts = [f"{quote(c)} = ANY({param(person.profile_ids, 'uuid[]')})" for c in table.profile_columns]
    parts += [f"{quote(c)} && {param(person.profile_ids, 'uuid[]')}" for c in table.profile_arrays]
    parts += [f"{quote(c)} = ANY({param(person.merge_ids, 'uuid[]')})" for c in table.merge_columns]
    if not (table.profile_columns or table.profile_arrays):
        parts += [f"{quote(c)} = ANY({param(list(values), 'text[]')})" for c in table.identifier_columns]
    if not parts:
        return "false", []
    return f"workspace_id = $1 AND ({' OR '.join(parts)})", args


async def delete_rows(conn: Any, table: PersonalTable, workspace_id: uuid.UUID, person: Person,
                      values: Sequence[str]) -> int:
    """Delete the person's rows of one table; arrays of profile ids lose the person's elements
    (the row, shared with other people, stays). Returns the rows deleted or changed."""
    changed = 0
    for column in table.profile_arrays:
        status = await conn.execute(
            f"UPDATE {quote(table.name)} SET {quote(column)} = "
            f"ARRAY(SELECT x FROM unnest({quote(column)}) AS x WHERE x <> ALL($2::uuid[])) "
            f"WHERE workspace_id = $1 AND {quote(column)} && $2::uuid[]",
            workspace_id, person.profile_ids,
        )
        changed += int(status.rsplit(" ", 1)[-1])
    deletable = PersonalTable(table.name, table.profile_columns, [], table.identifier_columns, table.merge_columns)
    if deletable.personal:
        condition, args = _where(deletable, workspace_id, person, values)
        if args:
            status = await conn.execute(f"DELETE FROM {quote(table.name)} WHERE {condition}", *args)
            changed += int(status.rsplit(" ", 1)[-1])
    return changed


async def select_rows(conn: Any, table: PersonalTable, workspace_id: uuid.UUID, person: Person,
                      values: Sequence[str]) -> list[Any]:
    """The person's rows of one table, each as a JSON object (column -> value)."""
    condition, args = _where(table, workspace_id, person, values)
    if not args:
        return []
    order = "ORDER BY t.timestamp, t.message_id" if table.name == "event" else "ORDER BY 1"
    rows = await conn.fetch(
        f"SELECT to_jsonb(t)::text AS row FROM {quote(table.name)} AS t WHERE {condition} {order}", *args
    )
    return [orjson.loads(r["row"]) for r in rows]


async def foreign_keys(conn: Any) -> list[tuple[str, str]]:
    """(child, parent) table pairs of the public schema's foreign keys."""
    rows = await conn.fetch(
        """SELECT c.relname AS child, p.relname AS parent FROM pg_catalog.pg_constraint AS k
           JOIN pg_catalog.pg_class AS c ON c.oid = k.conrelid
           JOIN pg_catalog.pg_class AS p ON p.oid = k.confrelid
           JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
           WHERE k.contype = 'f' AND n.nspname = 'public' AND c.oid <> p.oid"""
    )
    return [(r["child"], r["parent"]) for r in rows]


def children_first(tables: list[PersonalTable], edges: list[tuple[str, str]]) -> list[PersonalTable]:
    """Tables ordered so that a table referencing another is emptied before it (the profile
    table last), whatever its foreign keys' ON DELETE says."""
    names = {t.name for t in tables}
    parents_of: dict[str, set[str]] = {n: set() for n in names}
    for child, parent in edges:
        if child in names and parent in names:
            parents_of[child].add(parent)
    # Depth from the leaves: a table comes after everything that references it.
    referenced_by: dict[str, set[str]] = {n: set() for n in names}
    for child, parents in parents_of.items():
        for p in parents:
            referenced_by[p].add(child)
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> None:
        if name in done or name in path:
            return
        for child in sorted(referenced_by[name]):
            visit(child, path | {name})
        done.add(name)
        order.append(name)

    for name in sorted(names - {PROFILE_TABLE}):
        visit(name, frozenset())
    if PROFILE_TABLE in names:
        visit(PROFILE_TABLE, frozenset())
    by_name = {t.name: t for t in tables}
    return [by_name[n] for n in order]


# --- requests, exports, suppressions (ORM) ---------------------------------------------------

async def insert_request(session: AsyncSession, row: PrivacyRequest) -> PrivacyRequest:
    session.add(row)
    await session.flush()
    return row


async def get_request(
    session: AsyncSession, workspace_id: uuid.UUID, request_id: uuid.UUID, *, for_update: bool = False
) -> PrivacyRequest | None:
    stmt = sa.select(PrivacyRequest).where(PrivacyRequest.workspace_id == workspace_id, PrivacyRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_requests(
    session: AsyncSession, workspace_id: uuid.UUID, *, limit: int, before: uuid.UUID | None
) -> list[PrivacyRequest]:
    stmt = sa.select(PrivacyRequest).where(PrivacyRequest.workspace_id == workspace_id)
    if before is not None:
        stmt = stmt.where(PrivacyRequest.id < before)
    stmt = stmt.order_by(PrivacyRequest.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def forget_request_identifiers(conn: Any, workspace_id: uuid.UUID, hashes: Sequence[bytes]) -> int:
    """Other requests about the same person keep only their hash from now on."""
    status = await conn.execute(
        "UPDATE privacy_request SET identifier_value = NULL WHERE workspace_id = $1 "
        "AND identifier_hash = ANY($2::bytea[]) AND identifier_value IS NOT NULL",
        workspace_id, list(hashes),
    )
    return int(status.rsplit(" ", 1)[-1])


async def insert_export(session: AsyncSession, row: PrivacyExport) -> None:
    session.add(row)
    await session.flush()


async def get_export(session: AsyncSession, workspace_id: uuid.UUID, request_id: uuid.UUID) -> PrivacyExport | None:
    return await session.get(PrivacyExport, (workspace_id, request_id))


async def insert_suppressions(
    conn: Any, workspace_id: uuid.UUID, request_id: uuid.UUID | None, entries: Sequence[tuple[str, bytes]]
) -> int:
    """One entry per hash (an existing one is kept); returns how many are new."""
    unique = dict((h, t) for t, h in entries)
    if not unique:
        return 0
    hashes = list(unique)
    status = await conn.execute(
        """INSERT INTO suppression (workspace_id, id, identifier_type, identifier_hash, request_id)
           SELECT $1, i, t, h, $5 FROM unnest($2::uuid[], $3::text[], $4::bytea[]) AS v(i, t, h)
           ON CONFLICT (workspace_id, identifier_hash) DO NOTHING""",
        workspace_id, [uuid7() for _ in hashes], [unique[h] for h in hashes], hashes, request_id,
    )
    return int(status.rsplit(" ", 1)[-1])


async def list_suppressions(
    session: AsyncSession, workspace_id: uuid.UUID, *, identifier_hash: bytes | None, limit: int,
    before: uuid.UUID | None,
) -> list[Suppression]:
    stmt = sa.select(Suppression).where(Suppression.workspace_id == workspace_id)
    if identifier_hash is not None:
        stmt = stmt.where(Suppression.identifier_hash == identifier_hash)
    if before is not None:
        stmt = stmt.where(Suppression.id < before)
    stmt = stmt.order_by(Suppression.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def delete_suppression(session: AsyncSession, workspace_id: uuid.UUID, suppression_id: uuid.UUID) -> Suppression | None:
    row = await session.get(Suppression, (workspace_id, suppression_id))
    if row is None:
        return None
    await session.delete(row)
    await session.flush()
    return row


async def any_suppression(session: AsyncSession, workspace_id: uuid.UUID) -> bool:
    return bool(await session.scalar(
        sa.select(sa.exists().where(Suppression.workspace_id == workspace_id))
    ))


# --- retention -------------------------------------------------------------------------------

# One small batch of a workspace's oldest expired events; rows a concurrent transaction holds
# are skipped (taken by a later batch), so retention never waits on ingest or a merge.
DELETE_EXPIRED = """
WITH doomed AS (
    SELECT message_id FROM event
    WHERE workspace_id = $1 AND timestamp < $2
    ORDER BY timestamp
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
DELETE FROM event AS e USING doomed AS d WHERE e.workspace_id = $1 AND e.message_id = d.message_id
"""


async def delete_expired_events(conn: Any, workspace_id: uuid.UUID, cutoff: datetime, limit: int) -> int:
    status = await conn.execute(DELETE_EXPIRED, workspace_id, cutoff, limit)
    return int(status.rsplit(" ", 1)[-1])
