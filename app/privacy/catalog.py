"""Where a person's data lives, read from the database's own catalogue.

Erasure and the access export never work from a hand-written list of tables: they ask
PostgreSQL (pg_catalog) which tables of the public schema carry a workspace and a column that
points at a profile or holds an identifier, so a table another domain adds later (consent
records, segment memberships, decisions) is covered the day it lands, as long as it follows
the convention: `workspace_id` plus `profile_id` (or `<something>_profile_id`).

Column conventions recognised:
- profile columns (uuid): `profile_id`, `*_profile_id`, `profile_*_id` (e.g. a pair's
  `profile_a_id`), and the merge ledger's `survivor_id` / `absorbed_id`;
- profile arrays (uuid[]): `profile_ids`, `*_profile_ids` (their elements are removed);
- identifier columns (text): `user_id`, `anonymous_id`, `previous_id`, `email`, `phone`,
  `identifier_value` (rows holding one of the person's identifiers, even unlinked);
- merge references (uuid): `merge_id`, rows tied to one of the person's merges.

The privacy domain's own audit tables (`privacy_request`, `suppression`) are left out: they
are what erasure keeps, and hold no identifier in clear once a request is processed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection

PROFILE_TABLE = "profile"
KEPT_TABLES = frozenset({"privacy_request", "suppression"})
IDENTIFIER_COLUMNS = frozenset({"user_id", "anonymous_id", "previous_id", "email", "phone", "identifier_value"})
MERGE_LEDGER_COLUMNS = frozenset({"survivor_id", "absorbed_id"})
_PROFILE_COLUMN = re.compile(r"^(profile_id|.+_profile_id|profile_[a-z0-9]+_id)$")
_PROFILE_ARRAY = re.compile(r"^(profile_ids|.+_profile_ids)$")

# Every ordinary or partitioned table of the public schema with a workspace_id column, and
# its columns with their types (pg_catalog, so views and other schemas are left out).
COLUMNS_SQL = """
SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS column_type
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS w
              WHERE w.attrelid = c.oid AND w.attname = 'workspace_id' AND NOT w.attisdropped)
ORDER BY c.relname, a.attnum
"""


@dataclass(slots=True)
class PersonalTable:
    name: str
    profile_columns: list[str] = field(default_factory=list)
    profile_arrays: list[str] = field(default_factory=list)
    identifier_columns: list[str] = field(default_factory=list)
    merge_columns: list[str] = field(default_factory=list)

    @property
    def personal(self) -> bool:
        return bool(self.profile_columns or self.profile_arrays or self.identifier_columns or self.merge_columns)


def classify(rows: list[tuple[str, str, str]]) -> list[PersonalTable]:
    """Tables (name order) that hold something of a person, from (table, column, type) rows."""
    tables: dict[str, PersonalTable] = {}
    for table, column, type_ in rows:
        if table in KEPT_TABLES:
            continue
        t = tables.setdefault(table, PersonalTable(table))
        if table == PROFILE_TABLE and column in ("id", "merged_into"):
            t.profile_columns.append(column)
        elif type_ == "uuid" and (_PROFILE_COLUMN.match(column) or column in MERGE_LEDGER_COLUMNS):
            t.profile_columns.append(column)
        elif type_ == "uuid[]" and _PROFILE_ARRAY.match(column):
            t.profile_arrays.append(column)
        elif type_ == "text" and column in IDENTIFIER_COLUMNS:
            t.identifier_columns.append(column)
        elif type_ == "uuid" and column == "merge_id":
            t.merge_columns.append(column)
    return [t for t in tables.values() if t.personal]


async def personal_tables(session: AsyncSession) -> list[PersonalTable]:
    conn = await raw_connection(session)
    rows = await conn.fetch(COLUMNS_SQL)
    return classify([(r["table_name"], r["column_name"], r["column_type"]) for r in rows])


def quote(name: str) -> str:
    """A catalogue name as a quoted SQL identifier (names come from pg_catalog, never a caller)."""
    return '"' + name.replace('"', '""') + '"'
