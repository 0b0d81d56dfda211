"""Every read and write of computed traits.

Definitions go through the ORM. Values are written set-based over raw asyncpg (see
db.raw_connection): one statement per family of values (each definition, the order built-ins,
RFM, CLV scores) that computes the family's values for the refresh's profiles, writes those
that changed and deletes those that no longer hold (`_write_family`). User input (event and
property names, windows, ids) is always a bound parameter; the SQL text is assembled from
constants only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.traits import rfm
from app.traits.models import ClvModel, ComputedTrait, ComputedTraitValue
from app.traits.schemas import CLV_TRAITS, ORDER_TRAITS, RFM_TRAITS

ORDER_EVENT = "Order Completed"

# A JSON string holding a plain decimal number. The exponent is capped so a hostile
# "1e999999" cannot overflow numeric and abort a whole refresh.
_NUMERIC_TEXT = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$"


def _numeric(expr: str) -> str:
    """SQL: the numeric value of a jsonb expression (a number, or a string holding one), else NULL."""
    return (
        f"(CASE jsonb_typeof({expr}) WHEN 'number' THEN ({expr})::numeric "
        f"WHEN 'string' THEN CASE WHEN ({expr} #>> '{{}}') ~ '{_NUMERIC_TEXT}' "
        f"THEN ({expr} #>> '{{}}')::numeric END END)"
    )


def _iso(expr: str) -> str:
    """SQL: a timestamptz as a JSON string in UTC, independent of the session's TimeZone."""
    return f"""to_jsonb(to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))"""


# An order's value: properties.revenue, else properties.total (Segment's e-commerce spec has both).
_ORDER_REVENUE = (
    "coalesce(" + _numeric("e.properties -> 'revenue'") + ", " + _numeric("e.properties -> 'total'") + ")"
)


def _count(status: str) -> int:
    """Rows affected, from an asyncpg status string such as 'DELETE 42'."""
    return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True, slots=True)
class ProfileSet:
    """The distinct profiles an incremental refresh covers, bound as one uuid[] parameter.

    Statements that bind one are prepared for that one execution (`_custom_plan`): the array is
    then a constant the planner sizes, and `profile_id = ANY(...)` probes a hash of it instead
    of scanning it for every event read."""

    ids: list[uuid.UUID]

    @classmethod
    def of(cls, profile_ids: Iterable[uuid.UUID]) -> ProfileSet:
        return cls(list(dict.fromkeys(profile_ids)))

    @property
    def count(self) -> int:
        return len(self.ids)

    def bind(self, p: _Params) -> str:
        return p(self.ids, "::uuid[]")


class _Params:
    """Numbers the bound parameters of a statement assembled from fragments."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


@dataclass(frozen=True, slots=True)
class Written:
    """What one family's statement did."""

    written: int  # values inserted or changed
    removed: int  # values that no longer hold


def _write_family(p: _Params, new: str, *, workspace: str, computed_at: str, names: str, scope: str | None) -> str:
    """One statement that brings a family of values up to date for the refresh's profiles.

    `new` selects the family's values (`profile_id, name, value`, one row per pair); `names`
    (a text[] expression) lists the family's trait names; `scope` (a uuid[] expression) the
    profiles this refresh covers, None for all of the workspace's. The stored values of the
    family and scope are read once (`cur`); only values that differ from them are written
    (unchanged values keep the stamp of the refresh that computed them: an `ON CONFLICT DO
    UPDATE` that finds a row equal still locks, that is writes, it); stored values that `new`
    no longer has (events left the window, a profile merged away, no CLV model) are deleted.
    One snapshot: the delete never sees what the insert writes.

    No step is a join: the comparisons are set operations (`EXCEPT`, and a `GROUP BY` that
    finds the stored pairs `new` lacks, hashed or sorted) and the delete fetches its rows by
    their tuple ids (a row another transaction changed meanwhile is left alone). So the cost
    follows the sizes involved whatever the planner estimates: a workspace its statistics do
    not know yet is estimated at one row, and joins planned on that estimate (a nested loop
    over `new` per stored value, or probes through the `(workspace_id, name)` index) ran past
    the statement timeout.
    """
    in_scope = f"AND v.profile_id = ANY({scope})" if scope is not None else ""
    return f"""
        WITH new AS MATERIALIZED ({new}),
        cur AS MATERIALIZED (
            SELECT v.ctid AS tid, v.profile_id, v.name, v.value FROM computed_trait_value AS v
            WHERE v.workspace_id = {workspace} AND v.name = ANY({names}) {in_scope}
        ), changed AS (
            SELECT profile_id, name, value FROM new EXCEPT SELECT profile_id, name, value FROM cur
        ), gone AS (  -- stored pairs `new` lacks: the only row of their group, and a stored one
            SELECT (array_agg(x.tid))[1] AS tid
            FROM (SELECT c.profile_id, c.name, c.tid FROM cur AS c
                  UNION ALL SELECT n.profile_id, n.name, NULL::tid FROM new AS n) AS x
            GROUP BY x.profile_id, x.name
            HAVING count(*) = 1 AND count(x.tid) = 1
        ), written AS (
            INSERT INTO computed_trait_value (workspace_id, profile_id, name, value, computed_at)
            SELECT {workspace}, c.profile_id, c.name, c.value, {computed_at} FROM changed AS c
            ON CONFLICT (workspace_id, profile_id, name)
            DO UPDATE SET value = EXCLUDED.value, computed_at = EXCLUDED.computed_at
            RETURNING 1
        ), removed AS (
            DELETE FROM computed_trait_value AS v
            WHERE v.ctid = ANY(ARRAY(SELECT g.tid FROM gone AS g)) AND v.workspace_id = {workspace}
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM removed) AS removed
    """


async def _custom_plan(conn: Any, sql: str) -> Any:
    """`sql` prepared as a statement of its own, for one execution: PostgreSQL plans it for
    the values bound to it (a ProfileSet's size and contents, the workspace's id).

    A refresh's statements repeat on pooled connections, and asyncpg's statement cache would
    let PostgreSQL switch them to a generic plan, which sees neither (`= ANY($n)` then scans
    the whole array for every event read). Setting `plan_cache_mode = force_custom_plan` for
    the transaction instead also replans the query of every foreign-key check, once per value
    inserted: that made a workspace's first full refresh twice as slow (27 µs per value
    instead of 8)."""
    return await conn.prepare(sql)


async def _run_family(conn: Any, sql: str, p: _Params) -> Written:
    row = await (await _custom_plan(conn, sql)).fetchrow(*p.values)
    return Written(row["written"], row["removed"])


# ------------------------------------------------------------------------- definitions


async def list_definitions(session: AsyncSession, workspace_id: uuid.UUID) -> list[ComputedTrait]:
    stmt = sa.select(ComputedTrait).where(ComputedTrait.workspace_id == workspace_id).order_by(ComputedTrait.name)
    return list((await session.execute(stmt)).scalars())


async def get_definition(session: AsyncSession, workspace_id: uuid.UUID, trait_id: uuid.UUID) -> ComputedTrait | None:
    return await session.get(ComputedTrait, (workspace_id, trait_id))


async def name_taken(session: AsyncSession, workspace_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None = None) -> bool:
    stmt = sa.select(sa.exists().where(
        ComputedTrait.workspace_id == workspace_id, ComputedTrait.name == name,
        ComputedTrait.id != other_than if other_than is not None else sa.true(),
    ))
    return bool((await session.execute(stmt)).scalar())


async def insert_definition(session: AsyncSession, trait: ComputedTrait) -> ComputedTrait:
    session.add(trait)
    await session.flush()
    await session.refresh(trait)
    return trait


async def save_definition(session: AsyncSession, trait: ComputedTrait) -> ComputedTrait:
    trait.updated_at = sa.func.now()  # type: ignore[assignment]
    await session.flush()
    await session.refresh(trait)
    return trait


async def delete_definition(session: AsyncSession, trait: ComputedTrait) -> None:
    await session.delete(trait)
    await session.flush()


async def delete_values_named(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> None:
    await session.execute(
        sa.delete(ComputedTraitValue).where(
            ComputedTraitValue.workspace_id == workspace_id, ComputedTraitValue.name == name
        )
    )


# ------------------------------------------------------------------------------ values


async def profile_values(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> list[ComputedTraitValue]:
    stmt = (
        sa.select(ComputedTraitValue)
        .where(ComputedTraitValue.workspace_id == workspace_id, ComputedTraitValue.profile_id == profile_id)
        .order_by(ComputedTraitValue.name)
    )
    return list((await session.execute(stmt)).scalars())


async def lock_workspace(conn: Any, workspace_id: uuid.UUID) -> datetime:
    """Serialise refreshes of one workspace (until the transaction ends); return the time to
    stamp this refresh's values with, read after the lock so it is later than any earlier
    refresh's stamp."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('computed_traits:' || $1::uuid::text, 0))", workspace_id
    )
    return await conn.fetchval("SELECT clock_timestamp()")


# Aggregate over `v.val` (the property's jsonb value) and `v.num` (its numeric value).
_AGGREGATES = {
    "count": "to_jsonb(count(*))",
    "sum": "to_jsonb(sum(v.num))",
    "avg": "to_jsonb(avg(v.num))",
    "min": "to_jsonb(min(v.num))",
    "max": "to_jsonb(max(v.num))",
    "first": "(array_agg(v.val ORDER BY e.timestamp, e.message_id))[1]",
    "last": "(array_agg(v.val ORDER BY e.timestamp DESC, e.message_id DESC))[1]",
    "most_frequent": "mode() WITHIN GROUP (ORDER BY v.val)",
    "distinct": "to_jsonb(count(DISTINCT v.val))",
}
_NUMERIC_AGGREGATES = frozenset({"sum", "avg", "min", "max"})


async def upsert_definition_values(
    conn: Any,
    workspace_id: uuid.UUID,
    trait: ComputedTrait,
    *,
    computed_at: datetime,
    profiles: ProfileSet | None,
) -> Written:
    """Compute one definition for every profile with matching events (or for `profiles`)."""
    p = _Params()
    ws = p(workspace_id)
    name = p(trait.name)
    where = [f"e.workspace_id = {ws}", f"e.event = {p(trait.event)}", "e.profile_id IS NOT NULL"]
    if trait.window_days is not None:
        where.append(f"e.timestamp >= {p(computed_at)}::timestamptz - make_interval(days => {p(trait.window_days)})")
    scope = profiles.bind(p) if profiles is not None else None
    if scope is not None:
        where.append(f"e.profile_id = ANY({scope})")
    if trait.property is not None:
        where.append("jsonb_typeof(v.val) <> 'null'")  # absent keys give SQL NULL, which fails too
    if trait.aggregation in _NUMERIC_AGGREGATES:
        where.append("v.num IS NOT NULL")
    prop = p(trait.property) if trait.property is not None else "NULL::text"
    new = f"""
        SELECT e.profile_id, {name}::text AS name, {_AGGREGATES[trait.aggregation]} AS value
        FROM event AS e
        CROSS JOIN LATERAL (SELECT e.properties -> {prop} AS val) AS j
        CROSS JOIN LATERAL (SELECT j.val, {_numeric('j.val')} AS num) AS v
        WHERE {' AND '.join(where)}
        GROUP BY e.profile_id
    """
    sql = _write_family(p, new, workspace=ws, computed_at=p(computed_at), names=f"ARRAY[{name}::text]", scope=scope)
    return await _run_family(conn, sql, p)


async def upsert_order_values(
    conn: Any, workspace_id: uuid.UUID, *, computed_at: datetime, profiles: ProfileSet | None
) -> Written:
    """The order built-ins, from `Order Completed` events (revenue, else total), in one pass."""
    p = _Params()
    ws = p(workspace_id)
    where = [f"e.workspace_id = {ws}", f"e.event = {p(ORDER_EVENT)}", "e.profile_id IS NOT NULL"]
    scope = profiles.bind(p) if profiles is not None else None
    if scope is not None:
        where.append(f"e.profile_id = ANY({scope})")
    new = f"""
        SELECT o.profile_id, b.name, b.value
        FROM (
            SELECT e.profile_id, count(*) AS orders, coalesce(sum(r.revenue), 0) AS revenue,
                   avg(r.revenue) AS average, min(e.timestamp) AS first_at, max(e.timestamp) AS last_at
            FROM event AS e
            CROSS JOIN LATERAL (SELECT {_ORDER_REVENUE} AS revenue) AS r
            WHERE {' AND '.join(where)}
            GROUP BY e.profile_id
        ) AS o
        CROSS JOIN LATERAL (VALUES
            ('order_count', to_jsonb(o.orders)),
            ('total_revenue', to_jsonb(o.revenue)),
            ('average_order_value', to_jsonb(o.average)),
            ('first_order_at', {_iso('o.first_at')}),
            ('last_order_at', {_iso('o.last_at')})
        ) AS b(name, value)
        WHERE b.value IS NOT NULL
    """
    sql = _write_family(p, new, workspace=ws, computed_at=p(computed_at), names=p(list(ORDER_TRAITS), "::text[]"),
                        scope=scope)
    return await _run_family(conn, sql, p)


async def upsert_rfm(
    conn: Any, workspace_id: uuid.UUID, *, computed_at: datetime, profiles: ProfileSet | None
) -> Written:
    """Score R, F and M by quintile across all the workspace's customers with orders.

    Reads the order built-ins just written (so an incremental refresh ranks its profiles
    against everyone without re-reading every order) and writes the scores of `profiles`
    (or of everyone).
    """
    p = _Params()
    ws = p(workspace_id)
    scope = profiles.bind(p) if profiles is not None else None
    only = f"WHERE s.profile_id = ANY({scope})" if scope is not None else ""
    new = f"""
        WITH base AS (
            SELECT profile_id,
                   (max(value #>> '{{}}') FILTER (WHERE name = 'last_order_at'))::timestamptz AS recency,
                   (max(value #>> '{{}}') FILTER (WHERE name = 'order_count'))::numeric AS frequency,
                   (max(value #>> '{{}}') FILTER (WHERE name = 'total_revenue'))::numeric AS monetary
            FROM computed_trait_value
            WHERE workspace_id = {ws} AND name IN ('last_order_at', 'order_count', 'total_revenue')
            GROUP BY profile_id
        ), tiles AS (
            SELECT profile_id, recency, frequency, monetary,
                   ntile(5) OVER (ORDER BY recency) AS r_tile,
                   ntile(5) OVER (ORDER BY frequency) AS f_tile,
                   ntile(5) OVER (ORDER BY monetary) AS m_tile
            FROM base
            WHERE recency IS NOT NULL AND frequency IS NOT NULL AND monetary IS NOT NULL
        ), s AS (
            -- ntile cuts a run of equal values at arbitrary rows; equal values get one score,
            -- the lowest tile of their run (a run's position in the order is deterministic).
            SELECT profile_id,
                   min(r_tile) OVER (PARTITION BY recency) AS r,
                   min(f_tile) OVER (PARTITION BY frequency) AS f,
                   min(m_tile) OVER (PARTITION BY monetary) AS m
            FROM tiles
        )
        SELECT s.profile_id, x.name, x.value
        FROM s
        CROSS JOIN LATERAL (VALUES
            ('rfm_recency', to_jsonb(s.r)),
            ('rfm_frequency', to_jsonb(s.f)),
            ('rfm_monetary', to_jsonb(s.m)),
            ('rfm_code', to_jsonb(s.r::text || s.f::text || s.m::text)),
            ('rfm_tier', to_jsonb({rfm.tier_sql('s.r', 's.f')}))
        ) AS x(name, value)
        {only}
    """
    sql = _write_family(p, new, workspace=ws, computed_at=p(computed_at), names=p(list(RFM_TRAITS), "::text[]"),
                        scope=scope)
    return await _run_family(conn, sql, p)


async def delete_orphan_values(conn: Any, workspace_id: uuid.UUID, names: Sequence[str]) -> int:
    """After a full refresh: drop values of names no family owns (a definition deleted or
    renamed while a refresh ran; each family deletes its own stale values)."""
    return _count(await conn.execute(
        "DELETE FROM computed_trait_value WHERE workspace_id = $1 AND name <> ALL($2::text[])",
        workspace_id, list(names),
    ))


# ----------------------------------------------------------------- incremental backlog


def mark_dirty_ctes(workspace: str, profiles: str, delay: str) -> str:
    """`clock` and `marked` CTEs that append one dirty mark (the profiles `profiles`, a uuid[]
    expression, in the current window of `delay` seconds). A statement selects `clock.bucket`
    and `(clock.bucket + 1) * delay - clock.epoch` (seconds until the window closes) from them.
    Ingest puts them in its event insert, saving a round trip per batch.

    The window comes from the database clock at the transaction's start, the same `now()`
    pgqueuer adds a job's delay to, so a window's job cannot start before the window closes.
    One appended row per batch: no conflict handling, so no waiting on concurrent batches.
    """
    return f"""
clock AS (
    SELECT floor(extract(epoch FROM now())::float8 / {delay})::bigint AS bucket,
           extract(epoch FROM now())::float8 AS epoch
), marked AS (
    INSERT INTO computed_trait_dirty (workspace_id, bucket, profile_ids)
    SELECT {workspace}, clock.bucket, {profiles} FROM clock WHERE cardinality({profiles}) > 0
)"""


MARK_DIRTY = f"""
WITH {mark_dirty_ctes("$1", "$2::uuid[]", "$3")}
SELECT bucket, (bucket + 1) * $3 - epoch AS wait FROM clock
"""


async def mark_dirty(conn: Any, workspace_id: uuid.UUID, profile_ids: Sequence[uuid.UUID], delay_seconds: float) -> tuple[int, float]:
    """Add profiles to the current debounce window; returns (window, seconds until it closes)."""
    row = await conn.fetchrow(MARK_DIRTY, workspace_id, list(profile_ids), float(delay_seconds))
    return int(row["bucket"]), max(float(row["wait"]), 0.0)


async def claim_dirty(conn: Any, workspace_id: uuid.UUID, up_to_bucket: int) -> ProfileSet:
    """Take the profiles of every closed window up to `up_to_bucket` (rolled back with the job
    if it fails, so nothing is lost). They stay in the database's array form: the refresh binds
    them as they come."""
    row = await conn.fetchrow(
        """
        WITH claimed AS (
            DELETE FROM computed_trait_dirty WHERE workspace_id = $1 AND bucket <= $2 RETURNING profile_ids
        )
        SELECT array_agg(DISTINCT p.id) AS ids FROM claimed, unnest(claimed.profile_ids) AS p(id)
        """,
        workspace_id, up_to_bucket,
    )
    return ProfileSet(row["ids"] or [])


# ------------------------------------------------------------------------------- CLV


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """Per customer: repeat purchase days, first and last purchase day, mean repeat-day spend."""

    profile_ids: list[uuid.UUID]
    frequency: list[int]
    first_day: list[date]
    last_day: list[date]
    monetary: list[float]


async def order_summaries(
    conn: Any,
    workspace_id: uuid.UUID,
    *,
    until: datetime,
    since: datetime | None = None,
    profiles: ProfileSet | None = None,
) -> OrderSummary:
    """The RFM summary app.traits.clv.summarize computes, aggregated in the database.

    Orders are collapsed per UTC calendar day (amounts summed); `monetary` is the mean of the
    repeat days' totals (the first day excluded), 0 without repeat purchases.
    """
    p = _Params()
    where = [
        f"e.workspace_id = {p(workspace_id)}", f"e.event = {p(ORDER_EVENT)}", "e.profile_id IS NOT NULL",
        f"e.timestamp <= {p(until)}",
    ]
    if since is not None:
        where.append(f"e.timestamp >= {p(since)}")
    if profiles is not None:
        where.append(f"e.profile_id = ANY({profiles.bind(p)})")
    statement = await _custom_plan(conn, f"""
        WITH days AS (
            SELECT e.profile_id, (e.timestamp AT TIME ZONE 'UTC')::date AS day, sum(coalesce({_ORDER_REVENUE}, 0)) AS amount
            FROM event AS e
            WHERE {' AND '.join(where)}
            GROUP BY e.profile_id, (e.timestamp AT TIME ZONE 'UTC')::date
        ), ordered AS (
            SELECT profile_id, day, amount, min(day) OVER (PARTITION BY profile_id) AS first_day FROM days
        )
        SELECT profile_id, count(*) - 1 AS frequency, min(day) AS first_day, max(day) AS last_day,
               coalesce(sum(amount) FILTER (WHERE day > first_day) / nullif(count(*) - 1, 0), 0)::float8 AS monetary
        FROM ordered
        GROUP BY profile_id
        ORDER BY profile_id
        """)
    rows = await statement.fetch(*p.values)
    return OrderSummary(
        profile_ids=[r["profile_id"] for r in rows],
        frequency=[r["frequency"] for r in rows],
        first_day=[r["first_day"] for r in rows],
        last_day=[r["last_day"] for r in rows],
        monetary=[r["monetary"] for r in rows],
    )


async def order_span(conn: Any, workspace_id: uuid.UUID, *, since: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """The first (from `since`) and the latest order's timestamps; (None, None) without orders.
    Two ends of the (workspace_id, event, timestamp) index."""
    p = _Params()
    where = f"workspace_id = {p(workspace_id)} AND event = {p(ORDER_EVENT)} AND profile_id IS NOT NULL"
    first_where = where + (f" AND timestamp >= {p(since)}" if since is not None else "")
    row = await conn.fetchrow(
        f"SELECT (SELECT min(timestamp) FROM event WHERE {first_where}) AS first,"
        f" (SELECT max(timestamp) FROM event WHERE {where}) AS latest",
        *p.values,
    )
    return row["first"], row["latest"]


async def holdout_purchases(
    conn: Any, workspace_id: uuid.UUID, *, after: datetime, until: datetime
) -> dict[uuid.UUID, int]:
    """Per profile, the distinct UTC days with orders in (after, until]: repeat purchases in a
    holdout period (the caller keeps the profiles of its calibration period)."""
    rows = await conn.fetch(
        """
        SELECT profile_id, count(DISTINCT (timestamp AT TIME ZONE 'UTC')::date) AS days
        FROM event
        WHERE workspace_id = $1 AND event = $2 AND profile_id IS NOT NULL AND timestamp > $3 AND timestamp <= $4
        GROUP BY profile_id
        """,
        workspace_id, ORDER_EVENT, after, until,
    )
    return {r["profile_id"]: r["days"] for r in rows}


async def upsert_clv_values(
    conn: Any,
    workspace_id: uuid.UUID,
    *,
    computed_at: datetime,
    profiles: ProfileSet | None,
    profile_ids: Sequence[uuid.UUID],
    columns: dict[str, Sequence[float | None]],
    family: Sequence[str] = CLV_TRAITS,
) -> Written:
    """Write per-profile CLV scores (one array per trait name, for `profile_ids`; nulls are
    skipped) and drop the CLV scores (the names in `family`) of `profiles` (None: the
    workspace) that have none now. With no columns: drop them all (no model)."""
    p = _Params()
    ws = p(workspace_id)
    family = list(dict.fromkeys([*family, *columns]))
    names = [n for n in family if n in columns]
    if names:
        ids = p(list(profile_ids), "::uuid[]")
        arrays = ", ".join(p(list(columns[n]), "::float8[]") for n in names)
        aliases = ", ".join(f"c{i}" for i in range(len(names)))
        values = ", ".join(f"('{name}', to_jsonb(s.c{i}))" for i, name in enumerate(names))  # names are constants
        new = f"""
            SELECT s.profile_id, x.name, x.value
            FROM unnest({ids}, {arrays}) AS s(profile_id, {aliases})
            CROSS JOIN LATERAL (VALUES {values}) AS x(name, value)
            WHERE x.value IS NOT NULL
        """
    else:
        new = "SELECT NULL::uuid AS profile_id, NULL::text AS name, NULL::jsonb AS value WHERE false"
    scope = profiles.bind(p) if profiles is not None else None
    sql = _write_family(p, new, workspace=ws, computed_at=p(computed_at), names=p(family, "::text[]"),
                        scope=scope)
    return await _run_family(conn, sql, p)


async def get_clv_model(session: AsyncSession, workspace_id: uuid.UUID) -> ClvModel | None:
    return await session.get(ClvModel, workspace_id)


async def save_clv_model(session: AsyncSession, model: ClvModel) -> ClvModel:
    merged = await session.merge(model)
    await session.flush()
    return merged
