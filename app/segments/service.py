"""Segments: the rule compiler's entry points, definitions and versions, previews, members,
explanations, refreshes with their change stream, exports.

Other domains use `compile_rule` (a boolean over the `profile` table), `validate_rule` and
`register_condition` (add a condition kind, e.g. `consent`). The `where=` filter of
`GET /v1/profiles` is shorthand for rule nodes (`where_rule`) and compiles here too.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, Conflict, FieldError, NotFound, ValidationFailed
from app.core.pagination import decode_cursor, encode_cursor
from app.identity.models import Identity
from app.jobs import service as job_service
from app.jobs.models import Job
from app.profiles.models import Profile
from app.segments import repository
from app.segments.models import Segment, SegmentVersion
from app.segments.rules import (
    CONDITIONS,
    MAX_DEPTH,
    MAX_NODES,
    Compiled,
    Context,
    compile_tree,
    computed_expr,
    referenced_segments,
    register_condition,
)
from app.segments.schemas import (
    ChangeItem,
    ExplainNode,
    Explanation,
    HistoryItem,
    MemberItem,
    MembershipAt,
    PreviewResult,
    ProfileSample,
    ProfileSegment,
    RefreshResult,
    SegmentCreate,
    SegmentUpdate,
)

__all__ = [
    "CONDITIONS", "Compiled", "Context", "register_condition", "compile_rule", "compile_rule_sync",
    "validate_rule", "where_rule",
]

TASK_REFRESH = "segments.refresh"
TASK_REFRESH_WORKSPACE = "segments.refresh_workspace"
# An incremental refresh looks at profiles changed since its previous refresh started, minus
# this much: a write that began before that refresh but committed after it is still seen.
INCREMENTAL_OVERLAP = timedelta(minutes=5)
# Past this many changed profiles the refresh makes one full pass. Kept low on purpose: with
# 20,000 changed profiles (of 20,000) the incremental statement ran for minutes in a 2026-12-04
# benchmark, where a full pass takes under a second (docs/BENCHMARKS.md); raise it once the
# incremental statement's plan is understood at that size.
INCREMENTAL_LIMIT = 1_000
MAX_FIELDS = 50
EXPORT_CHUNK = 5000

profile = Profile.__table__


# ------------------------------------------------------------------------- compiling


async def _resolver(
    session: AsyncSession, workspace_id: uuid.UUID, rule: Any
) -> Callable[[uuid.UUID], Mapping[str, Any] | None]:
    """Load every segment the rule reaches (transitively), in a few queries, for the compiler."""
    known: dict[uuid.UUID, Mapping[str, Any]] = {}
    wanted = referenced_segments(rule)
    rounds = 0
    while wanted and rounds <= MAX_DEPTH:
        rounds += 1
        found = await repository.segments_by_id(session, workspace_id, list(wanted))
        wanted = set()
        for s in found:
            known[s.id] = {"name": s.name, "rule": s.rule, "kind": s.kind}
            wanted |= referenced_segments(s.rule) - set(known)
    return known.get


async def compile_rule_tree(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    rule: Any,
    now: datetime | None = None,
    self_id: uuid.UUID | None = None,
    base_pointer: str = "/rule",
) -> tuple[Compiled, Context]:
    resolve = await _resolver(session, workspace_id, rule)
    return compile_tree(rule, workspace_id=workspace_id, now=now, resolve_segment=resolve, self_id=self_id,
                        base_pointer=base_pointer)


async def compile_rule(
    session: AsyncSession, *, workspace_id: uuid.UUID, rule: Any, now: datetime | None = None
) -> sa.ColumnElement[bool]:
    """A boolean SQL expression over the `profile` table, true for the profiles matching
    `rule`. Put it in a WHERE (with `profile.workspace_id = :ws`), or select several as columns
    for one profile to evaluate many rules in one round trip. 422 (with JSON pointers under
    /rule) when the rule is invalid."""
    compiled, _ = await compile_rule_tree(session, workspace_id=workspace_id, rule=rule, now=now)
    return compiled.clause


def compile_rule_sync(
    rule: Any,
    *,
    workspace_id: uuid.UUID,
    now: datetime | None = None,
    resolve_segment: Callable[[uuid.UUID], Mapping[str, Any] | None] | None = None,
) -> sa.ColumnElement[bool]:
    """`compile_rule` without a session: `segment` nodes need `resolve_segment(id) -> {"rule",
    "name"} | None`."""
    compiled, _ = compile_tree(rule, workspace_id=workspace_id, now=now, resolve_segment=resolve_segment)
    return compiled.clause


async def validate_rule(session: AsyncSession, *, workspace_id: uuid.UUID, rule: Any, self_id: uuid.UUID | None = None) -> None:
    """Raise a 422 naming the JSON pointer of every bad node (unknown op, wrong value type,
    unknown segment, cycle, depth or size limit)."""
    await compile_rule_tree(session, workspace_id=workspace_id, rule=rule, self_id=self_id)


# ---------------------------------------------------------------- where= shorthand


def _json_literal(text: str) -> Any:
    """Filter values are JSON when they parse (numbers, true, "quoted"), else plain strings."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def where_rule(where: Sequence[str]) -> dict[str, Any]:
    """`field:op:value` filters (AND) as rule nodes: traits.<name> is a `trait` node,
    computed.<name> a `computed` node; `exists` and `missing` take no value."""
    nodes: list[dict[str, Any]] = []
    for item in where:
        parts = item.split(":", 2)
        if len(parts) == 2 and parts[1] in ("exists", "missing"):
            field, op, raw = parts[0], parts[1], None
        elif len(parts) == 3:
            field, op, raw = parts
        else:
            raise ValidationFailed(
                f"Filter {item!r} must look like traits.plan:eq:pro (field:op:value).", code="bad_filter",
            )
        kind, _, name = field.partition(".")
        if kind not in ("traits", "computed") or not name:
            raise ValidationFailed(f"{field!r} is not a field: use traits.<name> or computed.<name>.", code="bad_filter")
        node: dict[str, Any] = {"trait" if kind == "traits" else "computed": name, "op": op}
        if raw is not None:
            if op in ("in", "nin", "between"):
                value = _json_literal(raw)
                node["value"] = value if isinstance(value, list) else [_json_literal(v) for v in raw.split(",")]
            elif op in ("contains", "starts_with"):
                node["value"] = raw
            else:
                node["value"] = _json_literal(raw)
        nodes.append(node)
    return {"and": nodes}


def compile_where(where: Sequence[str], *, workspace_id: uuid.UUID) -> list[sa.ColumnElement[bool]]:
    """The `where=` filters as conditions over `profile` (422 `bad_filter` naming the filter)."""
    if not where:
        return []
    rule = where_rule(where)
    try:
        compiled, _ = compile_tree(rule, workspace_id=workspace_id, location="query", base_pointer="", code="bad_filter")
    except ValidationFailed as exc:
        errors = exc.errors or []
        for e in errors:  # /and/N/... -> /where/N/...
            e.pointer = e.pointer.replace("/and/", "/where/", 1)
        detail = "; ".join(f"{where[int(e.pointer.split('/')[2])]!r}: {e.detail}" for e in errors[:5]
                           if e.pointer.startswith("/where/"))
        raise ValidationFailed(f"Invalid filter: {detail or exc.detail}", code="bad_filter", errors=errors) from None
    return [c.clause for c in compiled.children]


# ------------------------------------------------------------------------ definitions


async def get_segment(session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> Segment:
    segment = await repository.get_segment(session, workspace_id, segment_id)
    if segment is None:
        raise NotFound(f"No segment with id {segment_id} in this workspace.")
    return segment


async def list_segments(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[Segment]:
    return await repository.list_segments(session, workspace_id)


def _duplicate(name: str) -> Conflict:
    return Conflict(f"A segment named `{name}` already exists in this workspace.", code="duplicate_name")


async def create_segment(session: AsyncSession, *, workspace_id: uuid.UUID, data: SegmentCreate) -> Segment:
    """A rule segment at version 1; members appear with its first refresh."""
    await validate_rule(session, workspace_id=workspace_id, rule=data.rule)
    if await repository.name_taken(session, workspace_id, data.name):
        raise _duplicate(data.name)
    segment = Segment(workspace_id=workspace_id, name=data.name, description=data.description, kind="rule",
                      rule=data.rule, version=1)
    try:
        await repository.add(session, segment)
        await repository.add(session, SegmentVersion(workspace_id=workspace_id, segment_id=segment.id, version=1,
                                                     rule=data.rule))
    except IntegrityError:
        raise _duplicate(data.name) from None
    return await get_segment(session, workspace_id=workspace_id, segment_id=segment.id)


async def create_fixed_segment(
    session: AsyncSession, *, workspace_id: uuid.UUID, name: str, description: str | None,
    profile_ids: Sequence[uuid.UUID], source: dict[str, Any],
) -> Segment:
    """A segment of fixed members (a discovered cluster), entered into the change stream now."""
    if await repository.name_taken(session, workspace_id, name):
        raise _duplicate(name)
    segment = Segment(workspace_id=workspace_id, name=name, description=description, kind="fixed", rule=None,
                      version=1, source=source)
    await repository.add(session, segment)
    await repository.add(session, SegmentVersion(workspace_id=workspace_id, segment_id=segment.id, version=1, rule=None))
    at = await repository.lock_segment(session, workspace_id, segment.id)
    entered = await repository.insert_fixed_members(session, workspace_id=workspace_id, segment_id=segment.id,
                                                    profile_ids=profile_ids, at=at)
    segment.member_count, segment.refreshed_at, segment.refreshed_version = entered, at, 1
    await repository.add(session, segment, repository.SegmentRefresh(
        workspace_id=workspace_id, segment_id=segment.id, version=1, mode="full", profiles_checked=len(profile_ids),
        entered=entered, exited=0, member_count=entered, refreshed_at=at))
    return segment


async def update_segment(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, changes: SegmentUpdate
) -> Segment:
    segment = await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    fields = changes.model_dump(exclude_unset=True)
    if "name" in fields and fields["name"] is None:
        raise ValidationFailed("`name` cannot be null.", code="validation_error")
    if "rule" in fields:
        if segment.kind == "fixed":
            raise Conflict("A fixed segment has no rule to change; create a rule segment instead.", code="fixed_segment")
        if fields["rule"] is None:
            raise ValidationFailed("`rule` cannot be null.", code="invalid_rule")
        await validate_rule(session, workspace_id=workspace_id, rule=fields["rule"], self_id=segment.id)
    if "name" in fields and fields["name"] != segment.name:
        if await repository.name_taken(session, workspace_id, fields["name"], other_than=segment.id):
            raise _duplicate(fields["name"])
        segment.name = fields["name"]
    if "description" in fields:
        segment.description = fields["description"]
    if "rule" in fields and fields["rule"] != segment.rule:
        segment.rule = fields["rule"]
        segment.version += 1
        await repository.add(session, SegmentVersion(workspace_id=workspace_id, segment_id=segment.id,
                                                     version=segment.version, rule=segment.rule))
    segment.updated_at = datetime.now(UTC)
    try:
        await repository.add(session, segment)
    except IntegrityError:
        raise _duplicate(segment.name) from None
    return segment


async def delete_segment(session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> None:
    """Deletes the segment, its versions, members and change stream. 409 while another
    segment's rule refers to it."""
    segment = await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    users = [s for s in await repository.segments_mentioning(session, workspace_id, segment_id)
             if segment_id in referenced_segments(s.rule)]
    if users:
        names = ", ".join(f"{s.name!r} ({s.id})" for s in users[:5])
        raise Conflict(f"Segments {names} refer to this segment; change their rules first.", code="segment_in_use")
    await repository.lock_segment(session, workspace_id, segment_id)
    await repository.delete_segment(session, segment)


async def list_versions(session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID) -> list[SegmentVersion]:
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    return await repository.list_versions(session, workspace_id, segment_id)


async def get_version(session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, version: int) -> SegmentVersion:
    found = await repository.get_version(session, workspace_id, segment_id, version)
    if found is None:
        await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
        raise NotFound(f"Segment {segment_id} has no version {version}.")
    return found


# ---------------------------------------------------------------------------- preview


def live_profiles(workspace_id: uuid.UUID) -> list[sa.ColumnElement[bool]]:
    return [profile.c.workspace_id == workspace_id, profile.c.merged_into.is_(None)]


async def preview(session: AsyncSession, *, workspace_id: uuid.UUID, rule: Any, sample: int) -> PreviewResult:
    """How many profiles match now, and a few of them, in one statement; nothing is saved."""
    clause = await compile_rule(session, workspace_id=workspace_id, rule=rule)
    await repository.use_rule_work_mem(session)
    total = sa.func.count().over().label("total")
    matching = sa.select(profile.c.id, profile.c.traits, total).where(*live_profiles(workspace_id), clause)
    if sample == 0:
        count = (await session.execute(sa.select(sa.func.count()).where(*live_profiles(workspace_id), clause)
                                       .select_from(profile))).scalar_one()
        return PreviewResult(count=count, sample=[])
    rows = (await session.execute(matching.order_by(profile.c.id).limit(sample))).all()
    return PreviewResult(count=rows[0].total if rows else 0,
                         sample=[ProfileSample(id=r.id, traits=r.traits) for r in rows])


# ----------------------------------------------------------------------------- fields


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    expr: sa.ColumnElement[Any]


def parse_fields(fields: str | None, *, workspace_id: uuid.UUID) -> list[FieldSpec]:
    """`traits` (all), traits.<name>, computed.<name>, identifier.<type> (its values, joined
    by spaces), created_at, updated_at; comma-separated."""
    names = [f.strip() for f in (fields or "traits").split(",") if f.strip()]
    if len(names) > MAX_FIELDS:
        raise ValidationFailed(f"At most {MAX_FIELDS} fields.", code="bad_fields")
    out: list[FieldSpec] = []
    for name in dict.fromkeys(names):
        kind, _, key = name.partition(".")
        if name in ("traits", "created_at", "updated_at"):
            expr: sa.ColumnElement[Any] = profile.c[name]
        elif kind == "traits" and key:
            expr = profile.c.traits[sa.bindparam(None, key, type_=sa.Text)]
        elif kind == "computed" and key:
            expr = computed_expr(profile.c.workspace_id, profile.c.id, key)
        elif kind == "identifier" and key:
            i = Identity.__table__.alias()
            expr = (
                sa.select(sa.func.string_agg(i.c.value, aggregate_order_by(sa.literal(" "), i.c.value)))
                .where(i.c.profile_id == profile.c.id, i.c.workspace_id == profile.c.workspace_id,
                       i.c.type == sa.bindparam(None, key, type_=sa.Text))
                .scalar_subquery()
            )
        else:
            raise ValidationFailed(
                f"Unknown field {name!r}: use traits, traits.<name>, computed.<name>, identifier.<type>, "
                "created_at or updated_at.", code="bad_fields",
            )
        if len(name) > 300:
            raise ValidationFailed("A field name is longer than 300 characters.", code="bad_fields")
        out.append(FieldSpec(name, expr))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------- consent filter


@dataclass(slots=True)
class ConsentFilter:
    """Members restricted to those the consent ledger allows for a purpose on a channel."""

    purpose: str
    channel: str
    conditions: list[sa.ColumnElement[bool]]
    excluded: int  # members of the segment left out for want of consent


async def consent_filter(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, purpose: str | None, channel: str | None
) -> ConsentFilter | None:
    """`?purpose=&channel=` of member listings and exports: the consent ledger's own clause
    (app/consent, the function decisions use too), failing closed, with the number of members
    it leaves out. A channel alone means its default purpose (email -> email_marketing...)."""
    from app.consent import service as consent_service
    from app.consent.models import CHANNELS

    if purpose is None and channel is None:
        return None
    if channel is None:
        raise ValidationFailed("Give `channel` with `purpose`: consent is recorded per purpose and channel.",
                               code="missing_channel", errors=[FieldError(pointer="/channel", location="query",
                                                                          detail="required with purpose", code="missing")])
    if channel not in CHANNELS:
        raise ValidationFailed(f"Unknown channel {channel!r}; channels are {', '.join(CHANNELS)}.", code="unknown_channel",
                               errors=[FieldError(pointer="/channel", location="query", detail="unknown channel",
                                                  code="unknown_channel")])
    purpose = purpose or consent_service.purpose_for_channel(channel)
    if purpose not in await consent_service.purpose_keys(session, workspace_id=workspace_id):
        raise ValidationFailed(f"This workspace has no consent purpose {purpose!r}.", code="unknown_purpose",
                               errors=[FieldError(pointer="/purpose", location="query", detail="unknown purpose",
                                                  code="unknown_purpose")])
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    clause = consent_service.consent_clause(workspace_id=workspace_id, purpose=purpose, channel=channel)
    excluded = await session.scalar(repository.count_members_where(workspace_id, segment_id, conditions=[sa.not_(clause)]))
    return ConsentFilter(purpose=purpose, channel=channel, conditions=[clause], excluded=int(excluded or 0))


# ---------------------------------------------------------------------------- members


async def list_members(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    fields: str | None,
    cursor: str | None,
    limit: int,
    conditions: Sequence[sa.ColumnElement[bool]] = (),
) -> tuple[list[MemberItem], str | None]:
    """Members as of the last refresh, in profile id order (keyset pages). `conditions`: extra
    filters over `profile` (such as a consent clause)."""
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    specs = parse_fields(fields, workspace_id=workspace_id)
    after = None
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        try:
            after = uuid.UUID(value)
        except ValueError:
            raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor") from None
    stmt = repository.members_page(workspace_id, segment_id, [s.expr.label(f"f{n}") for n, s in enumerate(specs)],
                                   after=after, limit=limit + 1, conditions=conditions)
    rows = (await session.execute(stmt)).all()
    next_cursor = encode_cursor(rows[limit - 1].profile_id) if len(rows) > limit else None
    items = [
        MemberItem(profile_id=r.profile_id, entered_at=r.entered_at,
                   values={s.name: _plain(r[2 + n]) for n, s in enumerate(specs)})
        for r in rows[:limit]
    ]
    return items, next_cursor


async def export_rows(
    db: Any,
    *,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    fields: str | None,
    conditions: Sequence[sa.ColumnElement[bool]] = (),
    chunk: int | None = None,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Every member in keyset chunks, from one REPEATABLE READ snapshot, so memory stays flat
    however large the audience: (profile_id, entered_at, *fields) per row."""
    specs = parse_fields(fields, workspace_id=workspace_id)
    columns = [s.expr.label(f"f{n}") for n, s in enumerate(specs)]
    chunk = chunk or EXPORT_CHUNK
    async with db.session() as session:
        async with session.begin():
            if not (await session.connection()).in_nested_transaction():
                await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            after = None
            while True:
                stmt = repository.members_page(workspace_id, segment_id, columns, after=after, limit=chunk,
                                               conditions=conditions)
                rows = (await session.execute(stmt)).all()
                if not rows:
                    return
                yield [tuple(_plain(v) for v in r) for r in rows]
                if len(rows) < chunk:
                    return
                after = rows[-1].profile_id


def export_header(fields: str | None, *, workspace_id: uuid.UUID) -> list[str]:
    return ["profile_id", "entered_at", *[s.name for s in parse_fields(fields, workspace_id=workspace_id)]]


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _csv(rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue().encode()


async def export_chunks(
    db: Any,
    *,
    workspace_id: uuid.UUID,
    segment_id: uuid.UUID,
    fmt: str,
    fields: str | None,
    conditions: Sequence[sa.ColumnElement[bool]] = (),
) -> AsyncIterator[tuple[bytes, int]]:
    """The export file, chunk by chunk: (bytes, members in them). CSV starts with a header
    row; NDJSON has one object per member. `conditions` filter members as in `list_members`."""
    header = export_header(fields, workspace_id=workspace_id)
    if fmt == "csv":
        yield _csv([header]), 0
    async for rows in export_rows(db, workspace_id=workspace_id, segment_id=segment_id, fields=fields,
                                  conditions=conditions):
        if fmt == "csv":
            yield _csv(rows), len(rows)
        else:
            yield b"".join(orjson.dumps(dict(zip(header, row, strict=True)), default=str) + b"\n" for row in rows), len(rows)


# ---------------------------------------------------------------------------- explain


async def explain(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, profile_id: uuid.UUID
) -> Explanation:
    """Every node's truth value for one person and the values it looked at, in one statement."""
    from app.profiles import service as profile_service

    segment = await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    person = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    stored = await repository.is_member(session, workspace_id, segment_id, person.id)
    if segment.rule is None:
        tree = ExplainNode(pointer="", kind="fixed", result=stored is not None, needed="one of the saved members", seen={})
        return Explanation(segment_id=segment.id, version=segment.version, profile_id=person.id,
                           matches_now=stored is not None, member=stored is not None, tree=tree)
    compiled, _ = await compile_rule_tree(session, workspace_id=workspace_id, rule=segment.rule, self_id=segment.id)
    nodes: list[Compiled] = []

    def collect(node: Compiled) -> None:
        nodes.append(node)
        for child in node.children:
            collect(child)

    collect(compiled)
    columns: list[sa.ColumnElement[Any]] = []
    for n, node in enumerate(nodes):
        columns.append(sa.func.coalesce(node.clause, sa.false()).label(f"n{n}"))
        columns.extend(expr.label(f"n{n}_{k}") for k, expr in enumerate(node.seen.values()))
    row = (await session.execute(
        sa.select(*columns).where(profile.c.workspace_id == workspace_id, profile.c.id == person.id)
    )).one()._mapping

    def build(n: int, node: Compiled) -> ExplainNode:
        return ExplainNode(
            pointer=node.pointer, kind=node.kind, result=bool(row[f"n{n}"]), needed=node.needed,
            seen={label: _plain(row[f"n{n}_{k}"]) for k, label in enumerate(node.seen)},
            children=[build(nodes.index(c), c) for c in node.children],
        )

    tree = build(0, compiled)
    return Explanation(segment_id=segment.id, version=segment.version, profile_id=person.id,
                       matches_now=tree.result, member=stored is not None, tree=tree)


# ---------------------------------------------------------------------------- refresh


async def refresh_segment(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, mode: str = "auto"
) -> dict[str, Any]:
    """Recompute one segment's members in SQL and record who entered and who exited.

    `auto` is incremental (only profiles changed since the last refresh) when the rule and
    its version are unchanged and its answer does not depend on the clock (no windows, no
    relative dates); otherwise, and with `full`, every profile is evaluated again."""
    refreshed_at = await repository.lock_segment(session, workspace_id, segment_id)
    segment = await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    matches = None
    time_dependent = False
    if segment.rule is not None:
        compiled, ctx = await compile_rule_tree(session, workspace_id=workspace_id, rule=segment.rule,
                                                now=refreshed_at, self_id=segment.id)
        matches, time_dependent = compiled.clause, ctx.time_dependent
    incremental = (
        mode != "full" and segment.refreshed_at is not None and segment.refreshed_version == segment.version
        and not time_dependent
    )
    scope = None
    if incremental:
        scope = await repository.touched_profiles(session, workspace_id, segment.refreshed_at - INCREMENTAL_OVERLAP,
                                                  limit=INCREMENTAL_LIMIT)
        incremental = scope is not None
    if matches is not None:
        await repository.use_rule_work_mem(session)
    entered, exited = await repository.apply_membership(
        session, workspace_id=workspace_id, segment_id=segment.id, version=segment.version, at=refreshed_at,
        matches=matches, scope=scope,
    )
    count = await repository.count_members(session, workspace_id, segment.id)
    segment.member_count, segment.refreshed_at, segment.refreshed_version = count, refreshed_at, segment.version
    run_mode = "incremental" if incremental else "full"
    await repository.add(session, segment, repository.SegmentRefresh(
        workspace_id=workspace_id, segment_id=segment.id, version=segment.version, mode=run_mode,
        entered=entered, exited=exited, member_count=count, refreshed_at=refreshed_at,
        profiles_checked=len(scope) if scope is not None else None,
    ))
    return RefreshResult(segment_id=segment.id, version=segment.version, mode=run_mode, entered=entered,
                         exited=exited, member_count=count, refreshed_at=refreshed_at,
                         profiles_checked=len(scope) if scope is not None else None).model_dump(mode="json")


async def request_refresh(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, wait: bool, full: bool
) -> Job:
    """Queue a refresh of one segment for the worker, or with `wait` run it now."""
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    params = {"segment_id": str(segment_id), "mode": "full" if full else "auto"}
    if wait:
        return await job_service.run_inline(
            session, workspace_id=workspace_id, task=TASK_REFRESH, params=params,
            work=lambda s: refresh_segment(s, workspace_id=workspace_id, segment_id=segment_id, mode=params["mode"]),
        )
    return await job_service.submit(session, workspace_id=workspace_id, task=TASK_REFRESH, params=params, coalesce=False)


async def get_refresh_job(session: AsyncSession, *, workspace_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    return await job_service.get_job(session, workspace_id=workspace_id, job_id=job_id, task_prefix="segments.")


# ------------------------------------------------------------------ stream and history


async def list_changes(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[ChangeItem], str, bool]:
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    after = 0
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit():
            raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor")
        after = int(value)
    rows = await repository.list_changes(session, workspace_id, segment_id, after=after, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].seq if rows else after
    items = [ChangeItem(profile_id=r.profile_id, change=r.change, at=r.at, version=r.version) for r in rows]
    return items, encode_cursor(last), has_more


async def membership_at(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, profile_id: uuid.UUID, at: datetime | None
) -> MembershipAt:
    """Was the person a member at `at` (default now), as the refreshes recorded it."""
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    if at is None:
        at = datetime.now(UTC)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    last = await repository.last_change_before(session, workspace_id, segment_id, profile_id, at)
    return MembershipAt(segment_id=segment_id, profile_id=profile_id, at=at,
                        member=bool(last and last.change == "entered"),
                        since=last.at if last else None, version=last.version if last else None)


async def history(
    session: AsyncSession, *, workspace_id: uuid.UUID, segment_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[HistoryItem], str | None]:
    await get_segment(session, workspace_id=workspace_id, segment_id=segment_id)
    after = 0
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit():
            raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor")
        after = int(value)
    rows = await repository.list_refreshes(session, workspace_id, segment_id, after=after, limit=limit + 1)
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return [HistoryItem.model_validate(r) for r in rows[:limit]], next_cursor


async def profile_segments(session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID) -> list[ProfileSegment]:
    """The segments a person is in now (as of each segment's last refresh)."""
    from app.profiles import service as profile_service

    person = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    rows = await repository.profile_memberships(session, workspace_id, person.id)
    return [ProfileSegment(segment_id=r.id, name=r.name, version=r.member_version, entered_at=r.entered_at) for r in rows]
