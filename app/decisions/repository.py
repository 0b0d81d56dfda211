"""Every read and write of the decision domain."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from app.consent import repository as consent_repository
from app.core.db import Precompiled, raw_connection
from app.decisions.models import (
    EVERYONE,
    Decision,
    DecisionFeedback,
    DecisionOffer,
    ItemAssociation,
    OfferCapCounter,
    OfferModel,
)
from app.ingest.models import Event
from app.offers import catalog as offer_catalog
from app.profiles.models import Profile

ORDER_EVENT = "Order Completed"
profile = Profile.__table__
ctv = sa.table("computed_trait_value", sa.column("workspace_id"), sa.column("profile_id"), sa.column("name"),
               sa.column("value", pg.JSONB))
event = Event.__table__
counter = OfferCapCounter.__table__


def _of_profile(workspace_id: Any, profile_id: Any) -> sa.ColumnElement[bool]:
    # The same spelling as app.ingest.models.of_profile (the profile index, whatever the stats say).
    return sa.and_(event.c.profile_id == profile_id, event.c.workspace_id.is_not_distinct_from(workspace_id))


def _count_since(days: int, limit: int = 1000) -> sa.ScalarSelect[Any]:
    recent = (
        sa.select(sa.literal(1)).where(
            _of_profile(profile.c.workspace_id, profile.c.id),
            event.c.timestamp > sa.func.now() - sa.text(f"interval '{int(days)} days'"),
        ).correlate(profile).limit(limit).subquery()
    )
    return sa.select(sa.func.count()).select_from(recent).scalar_subquery()


def _last_order_items() -> sa.ScalarSelect[Any]:
    """The product ids of the person's last order, as a jsonb array."""
    last = (
        sa.select(event.c.properties["products"].label("products"))
        .where(_of_profile(profile.c.workspace_id, profile.c.id), event.c.event == ORDER_EVENT)
        .order_by(event.c.timestamp.desc()).limit(1)
        .correlate(profile).scalar_subquery()
    )
    return last


_STATE_CACHE_SIZE = 1024
_state_statements: OrderedDict[tuple[Any, ...], tuple[Precompiled, tuple[Any, ...]]] = OrderedDict()
# Given at each execution (with a placeholder of their type, for compiling).
_STATE_RUNTIME = {"state_workspace_id": EVERYONE, "state_profile_id": EVERYONE, "check_purpose": "",
                  "check_channel": "", "capped_offers": [EVERYONE], "periods": [""]}


def _state_statement(
    rules: dict[str, sa.ColumnElement[bool]], capped: bool, last_order: bool, dialect: Any
) -> Precompiled:
    """The profile read of a decision, built and compiled once per set of compiled rules
    (eligibility caches those): building a SELECT of 50 rule columns costs more Python than
    the query costs PostgreSQL, and so does SQLAlchemy's per-execution handling of its
    hundreds of bound rule values (app.core.db.Precompiled). The person, the offers, the
    periods, the purpose and the channel are bound at execution."""
    key = (tuple(rules), tuple(id(v) for v in rules.values()), capped, last_order)
    hit = _state_statements.get(key)
    if hit is not None:
        _state_statements.move_to_end(key)
        return hit[0]
    computed = (
        sa.select(sa.func.jsonb_object_agg(ctv.c.name, ctv.c.value))
        .where(ctv.c.workspace_id == profile.c.workspace_id, ctv.c.profile_id == profile.c.id)
        .correlate(profile).scalar_subquery()
    )
    last_seen = (
        sa.select(event.c.timestamp).where(_of_profile(profile.c.workspace_id, profile.c.id))
        .order_by(event.c.timestamp.desc()).limit(1).correlate(profile).scalar_subquery()
    )
    counters = (
        sa.select(sa.func.jsonb_agg(sa.func.jsonb_build_array(
            counter.c.offer_id, counter.c.profile_id == EVERYONE, counter.c.period, counter.c.count)))
        .where(counter.c.workspace_id == profile.c.workspace_id,
               counter.c.profile_id.in_([profile.c.id, sa.literal(EVERYONE, pg.UUID(as_uuid=True))]),
               counter.c.offer_id == sa.func.any(sa.bindparam("capped_offers", type_=pg.ARRAY(pg.UUID(as_uuid=True)))),
               counter.c.period == sa.func.any(sa.bindparam("periods", type_=pg.ARRAY(sa.Text))))
        .correlate(profile).scalar_subquery()
    ) if capped else sa.null()
    version = (
        sa.select(sa.func.max(OfferModel.version)).where(OfferModel.workspace_id == profile.c.workspace_id)
        .correlate(profile).scalar_subquery()
    )
    columns = [
        profile.c.id, profile.c.merged_into, profile.c.traits, computed.label("computed"),
        _count_since(7).label("events_7d"), _count_since(30).label("events_30d"), last_seen.label("last_seen"),
        counters.label("counters"), version.label("model_version"),
        offer_catalog.version_column(profile.c.workspace_id).label("catalog_version"),
        (_last_order_items() if last_order else sa.null()).label("last_order"),
        *[expr.label(label) for label, expr in consent_repository.check_columns(profile).items()],
        *[expr.label(label) for label, expr in rules.items()],
    ]
    stmt = sa.select(*columns).where(
        profile.c.workspace_id == sa.bindparam("state_workspace_id", type_=pg.UUID(as_uuid=True)),
        profile.c.id == sa.bindparam("state_profile_id", type_=pg.UUID(as_uuid=True)),
    )
    prepared = Precompiled(stmt, dialect, {k: v for k, v in _STATE_RUNTIME.items()
                                           if capped or k not in ("capped_offers", "periods")})
    # The entry holds the rule expressions themselves, so their ids in the key stay theirs.
    _state_statements[key] = (prepared, tuple(rules.values()))
    while len(_state_statements) > _STATE_CACHE_SIZE:
        _state_statements.popitem(last=False)
    return prepared


async def profile_state(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_id: uuid.UUID,
    rules: dict[str, sa.ColumnElement[bool]],
    capped_offers: Sequence[uuid.UUID],
    periods: Sequence[str],
    last_order: bool,
    purpose: str,
    channel: str,
) -> dict[str, Any] | None:
    """Everything a decision needs about the person, in one round trip: traits, computed traits,
    recent behaviour, every candidate's eligibility (one column per rule), cap counters, the
    latest model version, the catalog's version, what the consent check for `purpose` on
    `channel` reads and (for complementary-item offers) the last order's items."""
    read = _state_statement(rules, bool(capped_offers), last_order, session.get_bind().dialect)
    params: dict[str, Any] = {"state_workspace_id": workspace_id, "state_profile_id": profile_id,
                              "check_purpose": purpose, "check_channel": channel}
    if capped_offers:
        params |= {"capped_offers": list(capped_offers), "periods": list(periods)}
    conn = await raw_connection(session)
    row = await conn.fetchrow(read.sql, *read.args(params))
    return dict(row.items()) if row is not None else None


# A decision's writes, one statement: count the chosen offers' caps and store the decision
# with its offers, or, when a cap filled since the profile read, change nothing but the
# counters it could count (undone by `_uncount` below). Each counter is created at 1 or
# counted up only while under its limit, by one INSERT .. ON CONFLICT DO UPDATE WHERE: the
# row lock it takes is held to the end of the transaction, so 32 decisions racing for an offer
# capped at 1 count it once. Counters are taken in key order, so two decisions never wait on
# each other in a cycle. The ledger rows are written only when every counter was counted
# (the CTEs see one snapshot, so `counted` is what this statement itself changed).
_RECORD_DECISION = """
WITH cap AS (
    SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::int[]) AS k(profile_id, offer_id, period, cap_limit)
), counted AS (
    INSERT INTO offer_cap_counter AS c (workspace_id, profile_id, offer_id, period, count)
    SELECT $1, profile_id, offer_id, period, 1 FROM cap ORDER BY profile_id, offer_id, period
    ON CONFLICT (workspace_id, profile_id, offer_id, period) DO UPDATE SET count = c.count + 1
    WHERE c.count < (SELECT cap.cap_limit FROM cap WHERE cap.profile_id = excluded.profile_id
                     AND cap.offer_id = excluded.offer_id AND cap.period = excluded.period)
    RETURNING c.profile_id, c.offer_id, c.period
), complete AS (
    SELECT (SELECT count(*) FROM counted) = cardinality($2::uuid[]) AS ok
), ledger AS (
    INSERT INTO decision (workspace_id, id, profile_id, placement, channel, context, offers, candidates, exclusions,
                          consent, policy, features, model_version, control, fallback, created_at)
    SELECT $1, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20
    WHERE (SELECT ok FROM complete)
), served AS (
    INSERT INTO decision_offer (workspace_id, decision_id, offer_id, profile_id, rank, probability, propensity,
                                score, created_at)
    SELECT $1, $6, o.offer_id, $7, o.rank, o.probability, o.propensity, o.score, $20
    FROM unnest($21::uuid[], $22::int[], $23::float8[], $24::float8[], $25::float8[])
         AS o(offer_id, rank, probability, propensity, score)
    WHERE (SELECT ok FROM complete)
)
SELECT (SELECT ok FROM complete) AS ok,
       coalesce((SELECT array_agg(ARRAY[profile_id::text, offer_id::text, period]) FROM counted), '{}') AS counted
"""
_UNCOUNT = """
UPDATE offer_cap_counter SET count = count - 1
WHERE workspace_id = $1 AND (profile_id, offer_id, period) IN (
    SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::text[]))
"""

CapKey = tuple[uuid.UUID, uuid.UUID, str]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()  # the connection's jsonb codec takes JSON text


async def record_decision(
    session: AsyncSession, decision: dict[str, Any], offers: list[dict[str, Any]], caps: Sequence[tuple[CapKey, int]],
) -> set[CapKey]:
    """Count the caps (counter key, limit) of the chosen offers and store the decision and its
    offers, in one round trip. Returns the keys whose cap was already full: then nothing of
    the decision is stored and no counter is left changed (another choice has to be made)."""
    conn = await raw_connection(session)
    caps = sorted(dict(caps).items(), key=lambda c: (str(c[0][0]), str(c[0][1]), c[0][2]))
    d = decision
    row = await conn.fetchrow(
        _RECORD_DECISION, d["workspace_id"],
        [k[0] for k, _ in caps], [k[1] for k, _ in caps], [k[2] for k, _ in caps], [limit for _, limit in caps],
        d["id"], d["profile_id"], d["placement"], d["channel"], _json(d["context"]), _json(d["offers"]),
        _json(d["candidates"]), _json(d["exclusions"]), _json(d["consent"]), _json(d["policy"]), _json(d["features"]),
        d["model_version"], d["control"], d["fallback"], d["created_at"],
        [o["offer_id"] for o in offers], [o["rank"] for o in offers], [o["probability"] for o in offers],
        [o["propensity"] for o in offers], [o["score"] for o in offers],
    )
    if row["ok"]:
        return set()
    counted = [(uuid.UUID(p), uuid.UUID(o), period) for p, o, period in row["counted"]]
    if counted:
        await conn.execute(_UNCOUNT, d["workspace_id"], [k[0] for k in counted], [k[1] for k in counted],
                           [k[2] for k in counted])
    done = set(counted)
    return {k for k, _ in caps if k not in done}


async def insert_decisions(session: AsyncSession, decisions: list[dict[str, Any]], offers: list[dict[str, Any]]) -> int:
    """Many decisions at once (imports); existing ids are skipped. Returns how many were new."""
    if not decisions:
        return 0
    new = (await session.execute(
        pg.insert(Decision.__table__).values(decisions).on_conflict_do_nothing().returning(Decision.__table__.c.id)
    )).scalars().all()
    fresh = set(new)
    rows = [o for o in offers if o["decision_id"] in fresh]
    if rows:
        await session.execute(pg.insert(DecisionOffer.__table__).values(rows).on_conflict_do_nothing())
    return len(fresh)


async def get_decision(session: AsyncSession, workspace_id: uuid.UUID, decision_id: uuid.UUID) -> Decision | None:
    return await session.scalar(
        sa.select(Decision).where(Decision.workspace_id == workspace_id, Decision.id == decision_id)
    )


async def list_profile_decisions(
    session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Decision]:
    q = sa.select(Decision).where(Decision.workspace_id == workspace_id, Decision.profile_id == profile_id)
    if after is not None:
        q = q.where(sa.tuple_(Decision.created_at, Decision.id) < sa.tuple_(*after))
    return (await session.scalars(q.order_by(Decision.created_at.desc(), Decision.id.desc()).limit(limit))).all()


async def feedback_of(
    session: AsyncSession, workspace_id: uuid.UUID, decision_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[DecisionFeedback]]:
    out: dict[uuid.UUID, list[DecisionFeedback]] = {d: [] for d in decision_ids}
    if decision_ids:
        rows = await session.scalars(
            sa.select(DecisionFeedback)
            .where(DecisionFeedback.workspace_id == workspace_id, DecisionFeedback.decision_id.in_(list(decision_ids)))
            .order_by(DecisionFeedback.occurred_at, DecisionFeedback.id)
        )
        for f in rows:
            out[f.decision_id].append(f)
    return out


async def served(session: AsyncSession, workspace_id: uuid.UUID, decision_id: uuid.UUID, offer_id: uuid.UUID) -> bool:
    return bool(await session.scalar(
        sa.select(sa.literal(True)).where(
            DecisionOffer.workspace_id == workspace_id, DecisionOffer.decision_id == decision_id,
            DecisionOffer.offer_id == offer_id,
        )
    ))


async def insert_feedback(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    result = await session.execute(pg.insert(DecisionFeedback.__table__).values(rows).on_conflict_do_nothing())
    return result.rowcount or 0


# Feedback carried by tracked events: the batch's new events named below that carry a
# decision_id and offer_id of a decision that served that offer. One statement per batch, run
# only when the batch holds such events; replays insert nothing (unique message_id).
FEEDBACK_FROM_EVENTS = """
INSERT INTO decision_feedback (workspace_id, id, decision_id, offer_id, profile_id, type, value, source, message_id,
                               occurred_at)
SELECT e.workspace_id, gen_random_uuid(), o.decision_id, o.offer_id, o.profile_id,
       CASE e.event WHEN 'Offer Viewed' THEN 'impression' WHEN 'Offer Clicked' THEN 'click'
                    WHEN 'Offer Accepted' THEN 'accept' WHEN 'Offer Declined' THEN 'decline' ELSE 'convert' END,
       CASE WHEN e.event = 'Order Completed' AND jsonb_typeof(coalesce(e.properties->'revenue', e.properties->'total'))
                 = 'number' THEN (coalesce(e.properties->'revenue', e.properties->'total'))::text::float8 END,
       'event', e.message_id, e.timestamp
FROM event AS e
JOIN decision_offer AS o
  ON o.workspace_id = e.workspace_id
 AND o.decision_id = CASE WHEN e.properties->>'decision_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                          THEN (e.properties->>'decision_id')::uuid END
 AND o.offer_id = CASE WHEN e.properties->>'offer_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                       THEN (e.properties->>'offer_id')::uuid END
WHERE e.workspace_id = $1 AND e.message_id = ANY($2::text[])
ON CONFLICT DO NOTHING
"""


async def feedback_from_events(conn: Any, workspace_id: uuid.UUID, message_ids: Sequence[str]) -> None:
    await conn.execute(FEEDBACK_FROM_EVENTS, workspace_id, list(message_ids))


async def training_rows(session: AsyncSession, workspace_id: uuid.UUID, positives: Sequence[str], limit: int) -> list[Any]:
    """The latest `limit` served offers with their logged probability, the decision's features
    and whether a positive outcome followed (control decisions included: their probabilities
    are logged like any other)."""
    fb = DecisionFeedback.__table__
    label = (
        sa.select(sa.literal(1)).where(
            fb.c.workspace_id == DecisionOffer.workspace_id, fb.c.decision_id == DecisionOffer.decision_id,
            fb.c.offer_id == DecisionOffer.offer_id, fb.c.type.in_(list(positives)),
        ).exists()
    )
    q = (
        sa.select(DecisionOffer.offer_id, DecisionOffer.created_at, DecisionOffer.probability, Decision.features,
                  label.label("label"))
        .join(Decision, sa.and_(Decision.workspace_id == DecisionOffer.workspace_id, Decision.id == DecisionOffer.decision_id))
        .where(DecisionOffer.workspace_id == workspace_id, Decision.fallback.is_(False))
        .order_by(DecisionOffer.created_at.desc()).limit(limit)
    )
    return list(await session.execute(q))


async def latest_model(session: AsyncSession, workspace_id: uuid.UUID) -> OfferModel | None:
    return await session.scalar(
        sa.select(OfferModel).where(OfferModel.workspace_id == workspace_id).order_by(OfferModel.version.desc()).limit(1)
    )


async def get_model(session: AsyncSession, workspace_id: uuid.UUID, version: int) -> OfferModel | None:
    return await session.scalar(
        sa.select(OfferModel).where(OfferModel.workspace_id == workspace_id, OfferModel.version == version)
    )


async def list_models(session: AsyncSession, workspace_id: uuid.UUID, limit: int = 50) -> Sequence[OfferModel]:
    return (await session.scalars(
        sa.select(OfferModel).where(OfferModel.workspace_id == workspace_id).order_by(OfferModel.version.desc()).limit(limit)
    )).all()


async def insert_model(session: AsyncSession, workspace_id: uuid.UUID, target: str, params: dict[str, Any],
                       metrics: dict[str, Any]) -> int:
    """The next version number, taken under a per-workspace advisory lock (two trainings at once
    get distinct versions)."""
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('offer_model:' || :ws, 0))"),
                          {"ws": str(workspace_id)})
    version = (await session.scalar(
        sa.select(sa.func.coalesce(sa.func.max(OfferModel.version), 0) + 1).where(OfferModel.workspace_id == workspace_id)
    ))
    await session.execute(sa.insert(OfferModel.__table__).values(
        workspace_id=workspace_id, version=version, target=target, params=params, metrics=metrics))
    return int(version)


# --- purchases and associations ---------------------------------------------------------------

_products = sa.func.jsonb_array_elements(
    sa.case((sa.func.jsonb_typeof(event.c.properties["products"]) == "array", event.c.properties["products"]),
            else_=sa.cast(sa.literal("[]"), pg.JSONB))
).table_valued("value").alias("p")


async def purchases(session: AsyncSession, workspace_id: uuid.UUID, since: datetime | None = None) -> list[tuple[str, str]]:
    """(profile, product id) of every order's products."""
    item = _products.c.value.op("->>")("product_id")
    q = (
        sa.select(sa.cast(event.c.profile_id, sa.Text), item)
        .select_from(event).join(_products, sa.true())
        .where(event.c.workspace_id == workspace_id, event.c.event == ORDER_EVENT, event.c.profile_id.is_not(None),
               item.is_not(None))
    )
    if since is not None:
        q = q.where(event.c.timestamp >= since)
    return [(r[0], r[1]) for r in await session.execute(q)]


async def profile_purchases(session: AsyncSession, workspace_id: uuid.UUID, profile_id: uuid.UUID, limit: int = 200) -> list[Any]:
    """(product id, time) of the person's latest orders' products."""
    orders = (
        sa.select(event.c.properties, event.c.timestamp)
        .where(_of_profile(workspace_id, profile_id), event.c.event == ORDER_EVENT)
        .order_by(event.c.timestamp.desc()).limit(limit).subquery()
    )
    products = sa.func.jsonb_array_elements(
        sa.case((sa.func.jsonb_typeof(orders.c.properties["products"]) == "array", orders.c.properties["products"]),
                else_=sa.cast(sa.literal("[]"), pg.JSONB))
    ).table_valued("value").alias("p")
    item = products.c.value.op("->>")("product_id")
    q = sa.select(item.label("item"), orders.c.timestamp).select_from(orders).join(products, sa.true()).where(item.is_not(None))
    return list(await session.execute(q))


async def replace_associations(
    session: AsyncSession, workspace_id: uuid.UUID, neighbours: dict[str, list[tuple[str, float, int]]],
    popularity: dict[str, int],
) -> int:
    table = ItemAssociation.__table__
    await session.execute(sa.delete(table).where(table.c.workspace_id == workspace_id))
    doc = [[i, o, s, n] for i, rows in neighbours.items() for o, s, n in rows]
    doc += [["", item, float(n), n] for item, n in popularity.items()]
    if doc:
        await session.execute(sa.text(
            """INSERT INTO item_association (workspace_id, item_id, other_item_id, score, support)
               SELECT :ws, r->>0, r->>1, (r->>2)::float8, (r->>3)::int FROM jsonb_array_elements(CAST(:doc AS jsonb)) AS r"""
        ), {"ws": workspace_id, "doc": orjson.dumps(doc).decode()})
    return len(doc)


async def associations(
    session: AsyncSession, workspace_id: uuid.UUID, items: Sequence[str], popular: int
) -> tuple[dict[str, list[tuple[str, float, int]]], dict[str, int]]:
    table = ItemAssociation.__table__
    neighbours: dict[str, list[tuple[str, float, int]]] = {}
    rows = await session.execute(
        sa.select(table.c.item_id, table.c.other_item_id, table.c.score, table.c.support)
        .where(table.c.workspace_id == workspace_id, table.c.item_id.in_(list(items)))
        .order_by(table.c.item_id, table.c.score.desc())
    ) if items else []
    for r in rows:
        neighbours.setdefault(r.item_id, []).append((r.other_item_id, r.score, r.support))
    pop_rows = await session.execute(
        sa.select(table.c.other_item_id, table.c.support)
        .where(table.c.workspace_id == workspace_id, table.c.item_id == "")
        .order_by(table.c.support.desc(), table.c.other_item_id).limit(popular)
    )
    return neighbours, {r.other_item_id: r.support for r in pop_rows}


async def imported_ids(session: AsyncSession, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Which of these decisions have no feedback yet (so a re-run import adds none twice)."""
    if not ids:
        return []
    fb = DecisionFeedback.__table__
    rows = await session.scalars(
        sa.select(Decision.id).where(
            Decision.workspace_id == workspace_id,
            Decision.id == sa.any_(sa.literal(list(ids), pg.ARRAY(pg.UUID(as_uuid=True)))),
            ~sa.select(fb.c.id).where(fb.c.workspace_id == workspace_id, fb.c.decision_id == Decision.id).exists(),
        )
    )
    return list(rows)
