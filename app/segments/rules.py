"""The segment rule language and its one compiler: a JSON condition tree -> one SQL boolean.

A rule is a tree of nodes; each node is a JSON object whose *kind* is the one key it has from
`CONDITIONS` (`and`, `or`, `not`, `trait`, `computed`, `identifier`, `event`, `segment`,
`bucket`, and whatever another domain registers, such as `consent`). Each kind is compiled by a
small function `(node, ctx) -> Compiled`, where `Compiled.clause` is a boolean SQLAlchemy Core
expression over the `profile` table and `Compiled.seen` are the values `explain` shows.

Every user value (trait names, property names, event names, values, salts) reaches SQL as a
bound parameter; the SQL text comes from constants only. Problems are collected with the JSON
pointer of the node (and field) at fault and raised together as one 422.

Conversions (SQL functions of migration 0013):
- `clientele_numeric(jsonb)`: a JSON number, or a string holding a plain decimal number
  ("42", " 3.5 ", "1e3"); anything else is NULL, so the comparison is false.
- `clientele_timestamptz(jsonb)`: an ISO 8601 date or date-time string ("2024-05-01",
  "2024-05-01T10:00:00Z", "2024-05-01 10:00:00+02:00"; without an offset it is UTC), or a JSON
  number of Unix seconds (milliseconds when above 1e11); anything else, including impossible
  dates such as "2023-02-29", is NULL, so the comparison is false.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.sql import visitors

from app.core.errors import FieldError, ValidationFailed
from app.identity.models import Identity
from app.ingest.models import Event
from app.profiles.models import Profile
from app.traits.models import ComputedTraitValue

MAX_DEPTH = 12  # nesting of and/or/not (and segment references)
MAX_NODES = 500  # nodes in one rule, counting the rules of referenced segments
MAX_LIST = 1000  # values of in/nin
MAX_STRING = 1000  # characters of any name or value
MAX_DAYS = 36_600  # windows and day counts (about a century)

profile = Profile.__table__
event = Event.__table__
identity = Identity.__table__
computed_value = ComputedTraitValue.__table__

VALUE_OPS = (
    "eq", "ne", "in", "nin", "contains", "starts_with", "exists", "missing", "gt", "gte", "lt", "lte", "between",
    "within_last_days", "more_than_days_ago", "anniversary_within_days",
)
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_ORDERING = ("gt", "gte", "lt", "lte", "between")
_DAY_OPS = ("within_last_days", "more_than_days_ago", "anniversary_within_days")
COUNT_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
AGGREGATE_FNS = ("count", "sum", "avg", "min", "max")
IDENTIFIER_OPS = ("exists", "missing", "eq", "ne", "in", "nin", "contains", "starts_with")
_ISO_DATE = re.compile(
    r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?)?$"
)
_NUMERIC_TEXT = re.compile(r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$")


class RuleError(Exception):
    """One problem found while compiling (collected, then raised together as a 422)."""


@dataclass(slots=True)
class Compiled:
    """A node's SQL boolean, what `explain` shows for it, and its children (for explain)."""

    clause: sa.ColumnElement[bool]
    kind: str
    pointer: str
    seen: dict[str, sa.ColumnElement[Any]] = field(default_factory=dict)
    needed: str = ""
    children: list[Compiled] = field(default_factory=list)
    nullable: bool = False  # the clause can be NULL (a value that is absent or does not convert)
    tally: Tally | None = None  # set on an event count condition (and its negation): see _and


@dataclass(frozen=True, slots=True)
class Tally:
    """An event count condition as parts: the event, its filters (written against the alias
    `e`), the comparison of the count, and whether a `not` wraps it. An `and` of several on one
    event compiles them into one grouped pass over that event's rows (see `_merge_tallies`)."""

    event: str
    e: Any
    filters: tuple[sa.ColumnElement[bool], ...]
    op: str
    value: Any
    negated: bool = False

    def count_clause(self, alias: Any) -> sa.ColumnElement[bool]:
        def onto_alias(element: Any) -> Any:
            return alias.c[element.key] if getattr(element, "table", None) is self.e else None

        filters = [visitors.replacement_traverse(f, {}, onto_alias) for f in self.filters]
        count = sa.func.count().filter(sa.and_(*filters)) if filters else sa.func.count()
        clause = _count_clause(self.op, self.value, count)
        return sa.not_(clause) if self.negated else clause

    def holds_without_events(self) -> bool:
        return _holds(self.op, self.value, 0) != self.negated


@dataclass(slots=True)
class Context:
    """What a condition function may use: the workspace, the clock, other segments' rules."""

    workspace_id: uuid.UUID
    now: datetime
    resolve_segment: Callable[[uuid.UUID], Mapping[str, Any] | None]
    errors: list[FieldError] = field(default_factory=list)
    location: str = "body"
    base_pointer: str = "/rule"
    code: str = "invalid_rule"
    nodes: int = 0
    depth: int = 0
    segment_stack: list[uuid.UUID] = field(default_factory=list)
    time_dependent: bool = False  # the answer changes as time passes (windows, relative dates)
    kinds: set[str] = field(default_factory=set)

    def fail(self, pointer: str, detail: str, code: str | None = None) -> Compiled:
        self.errors.append(FieldError(pointer=self.base_pointer + pointer, location=self.location, detail=detail,
                                      code=code or "invalid_rule"))
        return Compiled(sa.false(), "invalid", pointer)

    def compile(self, node: Any, pointer: str) -> Compiled:
        """Compile a child node (condition functions call this for nested nodes)."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self.fail(pointer, f"The rule has more than {MAX_NODES} nodes (counting referenced segments).",
                          "rule_too_large")
            return Compiled(sa.false(), "invalid", pointer)
        if self.depth >= MAX_DEPTH:
            return self.fail(pointer, f"The rule nests deeper than {MAX_DEPTH} levels.", "rule_too_deep")
        if not isinstance(node, dict):
            return self.fail(pointer, f"A condition must be a JSON object, not {_json_type(node)}.")
        kinds = [k for k in node if k in CONDITIONS]
        if len(kinds) != 1:
            known = ", ".join(sorted(CONDITIONS))
            detail = (f"A condition needs exactly one of the keys {known}; found "
                      f"{', '.join(kinds) if kinds else 'none'}.")
            return self.fail(pointer, detail, "unknown_condition")
        kind = kinds[0]
        self.kinds.add(kind)
        self.depth += 1
        try:
            compiled = CONDITIONS[kind](node, self, pointer)
        except RuleError as exc:
            compiled = self.fail(pointer, str(exc))
        finally:
            self.depth -= 1
        compiled.kind = compiled.kind if compiled.kind != "invalid" else kind
        return compiled


Condition = Callable[[dict[str, Any], Context, str], Compiled]
CONDITIONS: dict[str, Condition] = {}


def register_condition(key: str) -> Callable[[Condition], Condition]:
    """Add a condition kind: `@register_condition("consent") def consent(node, ctx, pointer)`.
    The function returns `Compiled(clause, key, pointer, seen=...)` and reports bad input with
    `ctx.fail(pointer + "/field", detail)`."""

    def add(fn: Condition) -> Condition:
        CONDITIONS[key] = fn
        return fn

    return add


# --------------------------------------------------------------------------- helpers


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _escape(pointer_part: str) -> str:
    return pointer_part.replace("~", "~0").replace("/", "~1")


def _bind(value: Any, type_: Any = None) -> sa.BindParameter[Any]:
    return sa.bindparam(None, value, type_=type_)


def _string(ctx: Context, node: dict[str, Any], key: str, pointer: str, *, required: bool = True) -> str | None:
    value = node.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        ctx.fail(f"{pointer}/{key}", f"`{key}` must be a non-empty string, not {_json_type(value)}.", "wrong_type")
        return None
    if len(value) > MAX_STRING:
        ctx.fail(f"{pointer}/{key}", f"`{key}` is longer than {MAX_STRING} characters.", "too_long")
        return None
    return value


def _days(ctx: Context, value: Any, pointer: str, what: str) -> int | None:
    if not (_is_number(value) and float(value).is_integer() and 0 <= value <= MAX_DAYS):
        ctx.fail(pointer, f"{what} must be a whole number of days from 0 to {MAX_DAYS}, not {value!r}.", "wrong_type")
        return None
    return int(value)


def parse_instant(text: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when no offset), as the SQL conversion reads it."""
    if not _ISO_DATE.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_text(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A jsonb value as text: strings without quotes, other values as JSON."""
    return expr.op("#>>", return_type=sa.Text)(sa.literal_column("'{}'::text[]"))


def numeric(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.clientele_numeric(expr, type_=sa.Numeric)


def instant(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.clientele_timestamptz(expr, type_=sa.DateTime(timezone=True))


def _like_pattern(text: str, *, prefix: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if prefix else f"%{escaped}%"


def _value_kind(ctx: Context, op: str, value: Any, pointer: str) -> str | None:
    """How a value compares: number, date, text or boolean (None after reporting a problem)."""
    if _is_number(value):
        return "number"
    if isinstance(value, bool):
        if op in _ORDERING:
            ctx.fail(pointer, f"`{op}` needs a number or a date, not a boolean.", "wrong_type")
            return None
        return "boolean"
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            ctx.fail(pointer, f"The value is longer than {MAX_STRING} characters.", "too_long")
            return None
        if parse_instant(value) is not None:
            return "date"
        if _NUMERIC_TEXT.match(value):
            return "number" if op in _ORDERING else "text"
        if op in _ORDERING:
            ctx.fail(pointer, f"`{op}` needs a number or an ISO 8601 date, not {value!r}.", "wrong_type")
            return None
        return "text"
    ctx.fail(pointer, f"The value must be a string, number or boolean, not {_json_type(value)}.", "wrong_type")
    return None


def _typed(
    expr: sa.ColumnElement[Any], kind: str, value: Any, as_text: sa.ColumnElement[str] | None = None
) -> tuple[sa.ColumnElement[Any], Any]:
    if kind == "number":
        return numeric(expr), _bind(float(value) if isinstance(value, str) else value, sa.Numeric)
    if kind == "date":
        return instant(expr), _bind(parse_instant(value), sa.DateTime(timezone=True))
    if kind == "boolean":
        return expr, sa.cast(_bind(orjson.dumps(value).decode()), pg.JSONB)
    return (as_text if as_text is not None else _as_text(expr)), _bind(value, sa.Text)


def value_condition(
    ctx: Context, expr: sa.ColumnElement[Any], node: dict[str, Any], pointer: str,
    text: sa.ColumnElement[str] | None = None,
) -> tuple[sa.ColumnElement[bool], str]:
    """`op`/`value` of a node applied to a jsonb expression; returns (clause, what was needed).
    `text`: the same value as text, when cheaper than `expr #>> '{}'` (`traits ->> key`)."""
    as_text = text if text is not None else _as_text(expr)
    op = node.get("op")
    value = node.get("value")
    if op not in VALUE_OPS:
        ctx.fail(f"{pointer}/op", f"Unknown op {op!r}; one of {', '.join(VALUE_OPS)}.", "unknown_op")
        return sa.false(), ""
    present = sa.and_(expr.is_not(None), sa.func.jsonb_typeof(expr) != "null")
    if op in ("exists", "missing"):
        if "value" in node:
            ctx.fail(f"{pointer}/value", f"`{op}` takes no value.", "unexpected_value")
        return (present if op == "exists" else sa.not_(present)), op
    if "value" not in node:
        ctx.fail(f"{pointer}/value", f"`{op}` needs a value.", "missing_value")
        return sa.false(), ""
    vptr = f"{pointer}/value"
    if op in _DAY_OPS:
        days = _days(ctx, value, vptr, f"The value of `{op}`")
        if days is None:
            return sa.false(), ""
        ctx.time_dependent = True
        at = instant(expr)
        if op == "within_last_days":
            return sa.and_(at >= _bind(ctx.now - timedelta(days=days)), at <= _bind(ctx.now)), f"within the last {days} days"
        if op == "more_than_days_ago":
            return at < _bind(ctx.now - timedelta(days=days)), f"more than {days} days ago"
        today = ctx.now.astimezone(UTC).date()
        return (
            sa.func.clientele_days_to_anniversary(at, _bind(today, sa.Date)) <= _bind(days, sa.Integer),
            f"anniversary within {days} days of {today.isoformat()}",
        )
    if op in ("contains", "starts_with"):
        if not isinstance(value, str) or not value or len(value) > MAX_STRING:
            ctx.fail(vptr, f"`{op}` needs a non-empty string of at most {MAX_STRING} characters.", "wrong_type")
            return sa.false(), ""
        match = as_text.ilike(_bind(_like_pattern(value, prefix=op == "starts_with")), escape="\\")
        if op == "contains":
            # An array trait contains an element equal to the value; any other value contains the text.
            element = sa.cast(_bind(orjson.dumps([value]).decode()), pg.JSONB)
            match = sa.case((sa.func.jsonb_typeof(expr) == "array", expr.op("@>")(element)), else_=match)
        return match, f"{op.replace('_', ' ')} {value!r}"
    if op in ("in", "nin"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            ctx.fail(vptr, f"`{op}` needs a non-empty array of at most {MAX_LIST} values.", "wrong_type")
            return sa.false(), ""
        kinds = {_value_kind(ctx, "eq", v, f"{vptr}/{i}") for i, v in enumerate(value)}
        if None in kinds:
            return sa.false(), ""
        kinds = {"text" if k == "date" else k for k in kinds}
        if len(kinds) > 1:
            ctx.fail(vptr, f"The values of `{op}` must all be numbers, all strings or all booleans.", "wrong_type")
            return sa.false(), ""
        kind = kinds.pop()
        if kind == "number":
            left, arr = numeric(expr), _bind([float(v) for v in value], pg.ARRAY(sa.Numeric))
        elif kind == "boolean":
            left, arr = as_text, _bind(["true" if v else "false" for v in value], pg.ARRAY(sa.Text))
        else:
            left, arr = as_text, _bind([str(v) for v in value], pg.ARRAY(sa.Text))
        clause = left == sa.any_(arr)
        return (clause if op == "in" else sa.and_(present, sa.not_(clause))), f"{op} {value!r}"
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            ctx.fail(vptr, "`between` needs an array of two values [low, high] (both included).", "wrong_type")
            return sa.false(), ""
        low_kind = _value_kind(ctx, "between", value[0], f"{vptr}/0")
        high_kind = _value_kind(ctx, "between", value[1], f"{vptr}/1")
        if low_kind is None or high_kind is None:
            return sa.false(), ""
        if low_kind != high_kind:
            ctx.fail(vptr, "Both ends of `between` must be numbers, or both dates.", "wrong_type")
            return sa.false(), ""
        left, low = _typed(expr, low_kind, value[0], as_text)
        _, high = _typed(expr, high_kind, value[1])
        return left.between(low, high), f"between {value[0]!r} and {value[1]!r}"
    kind = _value_kind(ctx, op, value, vptr)
    if kind is None:
        return sa.false(), ""
    left, right = _typed(expr, kind, value, as_text)
    clause = left.op(_COMPARE[op], is_comparison=True)(right)
    return clause, f"{_COMPARE[op]} {value!r}"


# ------------------------------------------------------------------------ conditions


@register_condition("and")
def _and(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    return _boolean(node, ctx, pointer, "and")


@register_condition("or")
def _or(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    return _boolean(node, ctx, pointer, "or")


def _boolean(node: dict[str, Any], ctx: Context, pointer: str, key: str) -> Compiled:
    items = node[key]
    _no_extra(ctx, node, pointer, {key})
    if not isinstance(items, list) or not items:
        return ctx.fail(f"{pointer}/{key}", f"`{key}` needs a non-empty array of conditions.", "wrong_type")
    children = [ctx.compile(item, f"{pointer}/{key}/{i}") for i, item in enumerate(items)]
    join = sa.and_ if key == "and" else sa.or_
    clauses = _merge_tallies(ctx, children) if key == "and" else [c.clause for c in children]
    clause = join(*clauses).self_group()
    return Compiled(clause, key, pointer, children=children, nullable=any(c.nullable for c in children))


def _merge_tallies(ctx: Context, children: list[Compiled]) -> list[sa.ColumnElement[bool]]:
    """The clauses of an `and`, where two or more count conditions on one event become one:
    "ordered, but not in the last 365 days" is then one grouped pass over the orders
    (`HAVING count(*) >= 1 AND count(*) FILTER (WHERE timestamp >= ...) = 0`) instead of a
    probe per condition. The children keep their own clauses for explain."""
    by_event: dict[str, list[Compiled]] = {}
    for c in children:
        if c.tally is not None:
            by_event.setdefault(c.tally.event, []).append(c)
    merged = {id(c) for group in by_event.values() if len(group) > 1 for c in group}
    clauses = [c.clause for c in children if id(c) not in merged]
    for name, group in by_event.items():
        if len(group) < 2:
            continue
        g = event.alias()
        having = sa.and_(*[c.tally.count_clause(g) for c in group if c.tally is not None])
        # Without events every count is 0: if the conditions all hold at 0, people without
        # events belong and the clause is an anti-join on the people whose counts fail.
        at_zero = all(c.tally.holds_without_events() for c in group if c.tally is not None)
        clauses.append(_grouped(ctx, g, [g.c.event == _bind(name, sa.Text)], having, negate=at_zero))
    return clauses


@register_condition("not")
def _not(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    _no_extra(ctx, node, pointer, {"not"})
    child = ctx.compile(node["not"], f"{pointer}/not")
    # An unknown (a missing or unconvertible value) is false, so its negation is true. Clauses
    # that are never NULL (EXISTS...) stay bare, so the planner can still make them anti-joins.
    inner = sa.func.coalesce(child.clause, sa.false()) if child.nullable else child.clause
    tally = replace(child.tally, negated=not child.tally.negated) if child.tally is not None else None
    return Compiled(sa.not_(inner), "not", pointer, children=[child], tally=tally)


def _no_extra(ctx: Context, node: dict[str, Any], pointer: str, allowed: set[str]) -> None:
    for key in node:
        if key not in allowed:
            ctx.fail(f"{pointer}/{_escape(key)}", f"Unknown field {key!r} in this condition.", "unknown_field")


@register_condition("trait")
def _trait(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    _no_extra(ctx, node, pointer, {"trait", "op", "value"})
    name = _string(ctx, node, "trait", pointer)
    if name is None:
        return Compiled(sa.false(), "trait", pointer)
    key = _bind(name, sa.Text)
    expr = profile.c.traits[key]
    clause, needed = value_condition(ctx, expr, node, pointer, text=profile.c.traits.op("->>", return_type=sa.Text)(key))
    return Compiled(clause, "trait", pointer, seen={name: expr}, needed=needed, nullable=True)


def computed_expr(workspace: sa.ColumnElement[Any], profile_id: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[Any]:
    return (
        sa.select(computed_value.c.value)
        .where(computed_value.c.workspace_id == workspace, computed_value.c.profile_id == profile_id,
               computed_value.c.name == _bind(name, sa.Text))
        .scalar_subquery()
    )


@register_condition("computed")
def _computed(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    """A computed trait's value. EXISTS over the value row, so that over many profiles the
    planner joins (a semi-join on the workspace's values of that name) and for one profile
    it probes the primary key; `missing` is NOT EXISTS of a present value."""
    _no_extra(ctx, node, pointer, {"computed", "op", "value"})
    name = _string(ctx, node, "computed", pointer)
    if name is None:
        return Compiled(sa.false(), "computed", pointer)
    v = computed_value.alias()
    of_profile = [v.c.workspace_id == profile.c.workspace_id, v.c.profile_id == profile.c.id,
                  v.c.name == _bind(name, sa.Text)]
    seen = {name: computed_expr(profile.c.workspace_id, profile.c.id, name)}
    if node.get("op") == "missing":
        present, needed = value_condition(ctx, v.c.value, {**node, "op": "exists"}, pointer)
        clause: sa.ColumnElement[bool] = ~sa.exists().where(*of_profile, present)
        needed = "missing"
    else:
        condition, needed = value_condition(ctx, v.c.value, node, pointer)
        clause = sa.exists().where(*of_profile, condition)
    return Compiled(clause, "computed", pointer, seen=seen, needed=needed)


@register_condition("identifier")
def _identifier(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    _no_extra(ctx, node, pointer, {"identifier", "op", "value"})
    type_ = _string(ctx, node, "identifier", pointer)
    op = node.get("op")
    if op not in IDENTIFIER_OPS:
        ctx.fail(f"{pointer}/op", f"Unknown identifier op {op!r}; one of {', '.join(IDENTIFIER_OPS)}.", "unknown_op")
        return Compiled(sa.false(), "identifier", pointer)
    if type_ is None:
        return Compiled(sa.false(), "identifier", pointer)
    i = identity.alias()
    of_profile = [i.c.profile_id == profile.c.id, i.c.workspace_id == profile.c.workspace_id,
                  i.c.type == _bind(type_, sa.Text)]
    seen = {type_: sa.select(sa.func.array_agg(sa.func.distinct(i.c.value))).where(*of_profile).scalar_subquery()}
    if op in ("exists", "missing"):
        if "value" in node:
            ctx.fail(f"{pointer}/value", f"`{op}` takes no value.", "unexpected_value")
        has = sa.exists().where(*of_profile)
        return Compiled(has if op == "exists" else ~has, "identifier", pointer, seen=seen, needed=op)
    value = node.get("value")
    values = value if op in ("in", "nin") else [value]
    if op in ("in", "nin") and (not isinstance(value, list) or not value or len(value) > MAX_LIST):
        ctx.fail(f"{pointer}/value", f"`{op}` needs a non-empty array of at most {MAX_LIST} strings.", "wrong_type")
        return Compiled(sa.false(), "identifier", pointer)
    for n, v in enumerate(values):
        if not isinstance(v, str) or not v or len(v) > MAX_STRING:
            where = f"{pointer}/value" + (f"/{n}" if op in ("in", "nin") else "")
            ctx.fail(where, f"Identifier values are non-empty strings of at most {MAX_STRING} characters.", "wrong_type")
            return Compiled(sa.false(), "identifier", pointer)
    # Identifiers are stored normalised (emails lower-cased...): compare case-insensitively.
    if op in ("contains", "starts_with"):
        match = i.c.value.ilike(_bind(_like_pattern(value, prefix=op == "starts_with")), escape="\\")
    else:
        match = sa.func.lower(i.c.value) == sa.any_(_bind([v.strip().lower() for v in values], pg.ARRAY(sa.Text)))
    has = sa.exists().where(*of_profile, match)
    clause = ~has if op in ("ne", "nin") else has
    return Compiled(clause, "identifier", pointer, seen=seen, needed=f"{op} {value!r}")


def _count_clause(op: str, value: Any, count: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    if op == "between":
        return count.between(_bind(value[0]), _bind(value[1]))
    return count.op(_COMPARE[op], is_comparison=True)(_bind(value))


def _holds(op: str, value: Any, x: float) -> bool:
    """Whether the comparison holds for a plain number (the count of a profile without events)."""
    if op == "between":
        return value[0] <= x <= value[1]
    return {"eq": x == value, "ne": x != value, "gt": x > value, "gte": x >= value,
            "lt": x < value, "lte": x <= value}[op]


def _comparison(ctx: Context, spec: Any, pointer: str, *, whole: bool) -> tuple[str, Any] | None:
    if not isinstance(spec, dict):
        ctx.fail(pointer, f"Expected an object {{\"op\", \"value\"}}, not {_json_type(spec)}.", "wrong_type")
        return None
    op, value = spec.get("op"), spec.get("value")
    if op not in COUNT_OPS:
        ctx.fail(f"{pointer}/op", f"Unknown op {op!r}; one of {', '.join(COUNT_OPS)}.", "unknown_op")
        return None
    values = value if op == "between" else [value]
    if op == "between" and (not isinstance(value, list) or len(value) != 2):
        ctx.fail(f"{pointer}/value", "`between` needs [low, high].", "wrong_type")
        return None
    for v in values:
        if not _is_number(v) or (whole and (not float(v).is_integer() or v < 0)):
            what = "a whole number of at least 0" if whole else "a number"
            ctx.fail(f"{pointer}/value", f"The value must be {what}, not {v!r}.", "wrong_type")
            return None
    return op, value


@register_condition("event")
def _event(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    """Did the profile perform an event (with property conditions, in a window) N times, or
    does an aggregate of a property over those events compare to a value."""
    _no_extra(ctx, node, pointer, {"event", "where", "count", "aggregate", "within_days", "between"})
    name = _string(ctx, node, "event", pointer)
    e = event.alias()
    filters: list[sa.ColumnElement[bool]] = [e.c.event == _bind(name, sa.Text)]
    needed: list[str] = []
    if "within_days" in node and "between" in node:
        ctx.fail(pointer, "Give `within_days` or `between`, not both.", "conflicting_fields")
    if "within_days" in node:
        days = _days(ctx, node["within_days"], f"{pointer}/within_days", "`within_days`")
        if days is not None:
            ctx.time_dependent = True
            filters.append(e.c.timestamp >= _bind(ctx.now - timedelta(days=days)))
            needed.append(f"in the last {days} days")
    if "between" in node:
        span = node["between"]
        ends = [parse_instant(v) if isinstance(v, str) else None for v in span] if isinstance(span, list) else []
        if len(ends) != 2 or None in ends:
            ctx.fail(f"{pointer}/between", "`between` needs two ISO 8601 dates or date-times [from, to].", "wrong_type")
        else:
            if isinstance(span[1], str) and len(span[1]) == 10:  # a date: the whole day
                ends[1] = ends[1] + timedelta(days=1) - timedelta(microseconds=1)
            filters.append(e.c.timestamp.between(_bind(ends[0]), _bind(ends[1])))
            needed.append(f"between {span[0]} and {span[1]}")
    where = node.get("where", [])
    if not isinstance(where, list) or len(where) > 50:
        ctx.fail(f"{pointer}/where", "`where` must be an array of at most 50 property conditions.", "wrong_type")
        where = []
    for n, cond in enumerate(where):
        cptr = f"{pointer}/where/{n}"
        if not isinstance(cond, dict):
            ctx.fail(cptr, "A property condition is an object {\"property\", \"op\", \"value\"}.", "wrong_type")
            continue
        _no_extra(ctx, cond, cptr, {"property", "op", "value"})
        prop = _string(ctx, cond, "property", cptr)
        if prop is None:
            continue
        clause, why = value_condition(ctx, e.c.properties[_bind(prop, sa.Text)], cond, cptr)
        filters.append(clause)
        needed.append(f"{prop} {why}")
    if "count" in node and "aggregate" in node:
        ctx.fail(pointer, "Give `count` or `aggregate`, not both.", "conflicting_fields")
    if name is None:
        return Compiled(sa.false(), "event", pointer)
    correlated = [e.c.workspace_id == profile.c.workspace_id, e.c.profile_id == profile.c.id, *filters]
    label = f"{name} events" + (f" ({', '.join(needed)})" if needed else "")
    if "aggregate" in node:
        return _aggregate(node["aggregate"], ctx, pointer, e, filters, correlated, label)
    spec = node.get("count", {"op": "gte", "value": 1})
    parsed = _comparison(ctx, spec, f"{pointer}/count", whole=True)
    count_seen = {label: sa.select(sa.func.count()).select_from(e).where(*correlated).scalar_subquery()}
    if parsed is None:
        return Compiled(sa.false(), "event", pointer)
    op, value = parsed
    needed_text = f"count {op} {value}"
    tally = Tally(name, e, tuple(filters[1:]), op, value)
    # Existence questions are EXISTS (a semi-join over many profiles, an index probe for one);
    # counts are one grouped pass over the events, joined by profile id.
    if (op, value) in (("gte", 1), ("gt", 0), ("ne", 0)):
        return Compiled(sa.exists().where(*correlated), "event", pointer, seen=count_seen, needed=needed_text,
                        tally=tally)
    if (op, value) in (("eq", 0), ("lt", 1), ("lte", 0)):
        return Compiled(~sa.exists().where(*correlated), "event", pointer, seen=count_seen, needed=needed_text,
                        tally=tally)
    grouped = _grouped(ctx, e, filters, _count_clause(op, value, sa.func.count()), negate=_holds(op, value, 0))
    return Compiled(grouped, "event", pointer, seen=count_seen, needed=needed_text, tally=tally)


def _grouped(
    ctx: Context, e: Any, filters: list[sa.ColumnElement[bool]], having: sa.ColumnElement[bool], *, negate: bool
) -> sa.ColumnElement[bool]:
    """Profiles whose events satisfy `having` (grouped per profile). With `negate`, the
    comparison also holds for profiles without events: they are those NOT among the profiles
    whose events fail it."""
    # EXISTS over the grouped events: over many profiles a hash (anti-)join with one grouped
    # pass (never NOT IN, whose hashed form must fit in work_mem); for one profile the join
    # key is pushed into the grouping, an index probe of that profile's events.
    grouped = (
        sa.select(e.c.profile_id)
        .where(e.c.workspace_id == _bind(ctx.workspace_id), e.c.profile_id.is_not(None), *filters)
        .group_by(e.c.profile_id)
        .having(sa.not_(having) if negate else having)
        .subquery()
    )
    found = sa.exists().where(grouped.c.profile_id == profile.c.id)
    return ~found if negate else found


def _aggregate(
    spec: Any, ctx: Context, pointer: str, e: Any, filters: list[sa.ColumnElement[bool]],
    correlated: list[sa.ColumnElement[bool]], label: str,
) -> Compiled:
    aptr = f"{pointer}/aggregate"
    if not isinstance(spec, dict):
        return ctx.fail(aptr, "`aggregate` is an object {\"fn\", \"property\", \"op\", \"value\"}.", "wrong_type")
    _no_extra(ctx, spec, aptr, {"fn", "property", "op", "value"})
    fn = spec.get("fn")
    if fn not in AGGREGATE_FNS:
        return ctx.fail(f"{aptr}/fn", f"Unknown aggregate {fn!r}; one of {', '.join(AGGREGATE_FNS)}.", "unknown_op")
    prop = None if fn == "count" else _string(ctx, spec, "property", aptr)
    parsed = _comparison(ctx, spec, aptr, whole=fn == "count")
    if parsed is None or (fn != "count" and prop is None):
        return Compiled(sa.false(), "event", pointer)
    op, value = parsed
    if fn == "count":
        agg: sa.ColumnElement[Any] = sa.func.count()
    else:
        num = numeric(e.c.properties[_bind(prop, sa.Text)])
        agg = getattr(sa.func, fn)(num)
        filters = [*filters, num.is_not(None)]
        correlated = [*correlated, num.is_not(None)]
    seen_label = f"{fn}({prop}) of {label}" if prop else f"count of {label}"
    seen = {seen_label: sa.select(agg).select_from(e).where(*correlated).scalar_subquery()}
    # An aggregate over no events has no value (sum, avg, min, max are NULL): only `count`
    # can hold for a profile without events.
    negate = fn == "count" and _holds(op, value, 0)
    clause = _grouped(ctx, e, filters, _count_clause(op, value, agg), negate=negate)
    return Compiled(clause, "event", pointer, seen=seen, needed=f"{fn} {op} {value}")


@register_condition("segment")
def _segment(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    """Membership of another segment, by its current rule (compiled inline, so it is never
    staler than the rule that refers to it)."""
    _no_extra(ctx, node, pointer, {"segment"})
    raw = node["segment"]
    try:
        segment_id = uuid.UUID(str(raw)) if isinstance(raw, str) else None
    except ValueError:
        segment_id = None
    if segment_id is None:
        return ctx.fail(f"{pointer}/segment", f"`segment` must be a segment id (a UUID), not {raw!r}.", "wrong_type")
    if segment_id in ctx.segment_stack:
        path = " -> ".join(str(s) for s in [*ctx.segment_stack, segment_id])
        return ctx.fail(f"{pointer}/segment", f"Segments may not refer to themselves, directly or not: {path}.",
                        "segment_cycle")
    target = ctx.resolve_segment(segment_id)
    if target is None:
        return ctx.fail(f"{pointer}/segment", f"No segment with id {segment_id} in this workspace.", "unknown_segment")
    if target.get("rule") is None:
        # A segment of fixed members (a saved cluster): its materialised membership.
        from app.segments.models import SegmentMember

        m = SegmentMember.__table__
        clause = sa.exists().where(m.c.workspace_id == profile.c.workspace_id, m.c.segment_id == _bind(segment_id),
                                   m.c.profile_id == profile.c.id)
        return Compiled(clause, "segment", pointer, needed=f"member of fixed segment {target.get('name')!r}")
    ctx.segment_stack.append(segment_id)
    saved = ctx.base_pointer, ctx.location
    errors_before = len(ctx.errors)
    try:
        child = ctx.compile(target["rule"], f"{pointer}/segment")
    finally:
        ctx.segment_stack.pop()
        ctx.base_pointer, ctx.location = saved
    # Problems inside the referenced rule (a cycle through it, a segment it names that is
    # gone) are reported at the reference, naming the segment.
    for n in range(errors_before, len(ctx.errors)):
        inner = ctx.errors[n]
        ctx.errors[n] = inner.model_copy(update={
            "pointer": f"{ctx.base_pointer}{pointer}/segment",
            "detail": f"In segment {segment_id}: {inner.detail}",
        })
    return Compiled(child.clause, "segment", pointer, needed=f"member of {target.get('name')!r}", children=[child],
                    nullable=child.nullable)


def bucket_expr(salt: str) -> sa.ColumnElement[int]:
    """A stable 0-99 bucket per profile and salt (hashtextextended, stable across PostgreSQL
    releases: partitioning relies on it)."""
    h = sa.func.hashtextextended(sa.cast(profile.c.id, sa.Text) + ":" + _bind(salt, sa.Text), 0)
    return ((h % 100) + 100) % 100


@register_condition("bucket")
def _bucket(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    _no_extra(ctx, node, pointer, {"bucket"})
    spec = node["bucket"]
    bptr = f"{pointer}/bucket"
    if not isinstance(spec, dict):
        return ctx.fail(bptr, "`bucket` is an object {\"salt\", \"lt\"} (and optionally \"gte\").", "wrong_type")
    _no_extra(ctx, spec, bptr, {"salt", "lt", "gte"})
    salt = _string(ctx, spec, "salt", bptr)
    lt, gte = spec.get("lt", 100), spec.get("gte", 0)
    ok = True
    for key, v, low, high in (("lt", lt, 1, 100), ("gte", gte, 0, 99)):
        if not (_is_number(v) and float(v).is_integer() and low <= v <= high):
            ctx.fail(f"{bptr}/{key}", f"`{key}` must be a whole number from {low} to {high}, not {v!r}.", "wrong_type")
            ok = False
    if ok and gte >= lt:
        ctx.fail(bptr, "`gte` must be below `lt`.", "wrong_type")
        ok = False
    if salt is None or not ok:
        return Compiled(sa.false(), "bucket", pointer)
    b = bucket_expr(salt)
    clause = sa.and_(b >= _bind(int(gte)), b < _bind(int(lt)))
    return Compiled(clause, "bucket", pointer, seen={"bucket": b}, needed=f"bucket in [{int(gte)}, {int(lt)})")


@register_condition("consent")
def _consent(node: dict[str, Any], ctx: Context, pointer: str) -> Compiled:
    """`{"consent": {"purpose", "channel"}}`: the consent ledger's answer (app/consent), the same
    function decisions and filtered exports use; fails closed (no record and an opt-in purpose,
    an expired or stale grant, an unknown purpose: false)."""
    from app.consent import service as consent_service
    from app.consent.models import CHANNELS

    _no_extra(ctx, node, pointer, {"consent"})
    spec = node["consent"]
    cptr = f"{pointer}/consent"
    if not isinstance(spec, dict):
        return ctx.fail(cptr, '`consent` is an object {"purpose", "channel"}.', "wrong_type")
    _no_extra(ctx, spec, cptr, {"purpose", "channel"})
    purpose = _string(ctx, spec, "purpose", cptr)
    channel = _string(ctx, spec, "channel", cptr, required=False)
    if channel is not None and channel not in CHANNELS:
        return ctx.fail(f"{cptr}/channel", f"Unknown channel {channel!r}; channels are {', '.join(CHANNELS)}.",
                        "unknown_channel")
    if purpose is None:
        return Compiled(sa.false(), "consent", pointer)
    if channel is None:  # the purpose's own channel (email_marketing -> email ...)
        channel = next((c for c, p in consent_service.CHANNEL_PURPOSE.items() if p == purpose), None)
        if channel is None:
            return ctx.fail(f"{cptr}/channel", f"Purpose {purpose!r} has no default channel; name one.",
                            "missing_channel")
    ctx.time_dependent = True  # grants expire
    clause = consent_service.consent_clause(workspace_id=ctx.workspace_id, purpose=purpose, channel=channel,
                                            at=ctx.now)
    return Compiled(clause, "consent", pointer, seen={"consented": clause},
                    needed=f"consent for {purpose} on {channel}")


# ------------------------------------------------------------------------------ entry


def compile_tree(
    rule: Any,
    *,
    workspace_id: uuid.UUID,
    now: datetime | None = None,
    resolve_segment: Callable[[uuid.UUID], Mapping[str, Any] | None] | None = None,
    self_id: uuid.UUID | None = None,
    location: str = "body",
    base_pointer: str = "/rule",
    code: str = "invalid_rule",
) -> tuple[Compiled, Context]:
    """Compile a rule (raising one 422 with every problem found). `self_id`: the segment the
    rule belongs to, so a reference back to it is a cycle."""
    ctx = Context(
        workspace_id=workspace_id, now=(now or datetime.now(UTC)), resolve_segment=resolve_segment or (lambda _: None),
        location=location, base_pointer=base_pointer, code=code,
    )
    if self_id is not None:
        ctx.segment_stack.append(self_id)
    compiled = ctx.compile(rule, "")
    if ctx.errors:
        first = ctx.errors[0]
        more = f" (and {len(ctx.errors) - 1} more)" if len(ctx.errors) > 1 else ""
        raise ValidationFailed(
            f"The rule is invalid at {first.pointer}: {first.detail}{more}", code=code, errors=ctx.errors,
        )
    return compiled, ctx


def referenced_segments(rule: Any) -> set[uuid.UUID]:
    """The segment ids a rule names directly (well-formed ones only)."""
    found: set[uuid.UUID] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "segment" and isinstance(value, str):
                    try:
                        found.add(uuid.UUID(value))
                    except ValueError:
                        pass
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(rule)
    return found


def today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()
