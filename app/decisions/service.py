"""Decisions: eligible offers x consent x caps x model score -> ranked offers, and the ledger.

One decision, in round trips: the person's profile read (their features, every candidate's
eligibility rule as a column, their cap counters, the latest model version and the catalog's
version), the consent check of the channel, the cap counters of the chosen offers locked and
counted (only for offers with caps), and the ledger insert. The placement, its offers and
their compiled rules come from the per-process catalog (app/offers/catalog.py), reloaded when
the profile read shows the catalog changed. See docs/DECISIONS.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest, NotFound, ValidationFailed
from app.core.ids import uuid7
from app.core.pagination import decode_cursor, encode_cursor
from app.decisions import consent as decision_consent
from app.decisions import learning, policy, recommend, repository
from app.decisions.errors import DecisionNotFound, OfferNotServed
from app.decisions.models import EVERYONE, Decision, OfferModel
from app.decisions.schemas import (
    ChosenOffer,
    DecisionPublic,
    DecisionRecord,
    DecisionRequest,
    Exclusion,
    FeedbackCreate,
    FeedbackPublic,
    ImportResult,
)
from app.identity import service as identity_service
from app.jobs import service as job_service
from app.jobs.models import Job
from app.offers import catalog as offer_catalog
from app.offers import eligibility
from app.offers import service as offer_service
from app.offers.catalog import OfferView
from app.profiles import service as profile_service
from app.workspaces import service as workspace_service

log = logging.getLogger("clientele.decisions")

TASK_TRAIN = "decisions.train"
OFFER_EVENTS = frozenset({"Offer Viewed", "Offer Clicked", "Offer Accepted", "Offer Declined", "Order Completed"})
TRAINING_ROWS = 500_000
_rng = random.SystemRandom()
# The latest model version of each workspace, parsed once (decisions check the version in
# their profile read; a retrain is picked up by the next decision).
_models: dict[uuid.UUID, learning.ModelSet] = {}


def _periods(now: datetime) -> dict[str, str]:
    year, week, _ = now.isocalendar()
    return {
        "per_profile_per_day": f"d:{now.date().isoformat()}",
        "per_profile_per_week": f"w:{year}-W{week:02d}",
        "per_profile_total": "total",
        "total": "total",
    }


def _cap_keys(offer: OfferView, profile_id: uuid.UUID, periods: dict[str, str]) -> list[tuple[str, tuple[uuid.UUID, uuid.UUID, str], int]]:
    """(cap name, counter key, limit) of each cap of the offer."""
    out = []
    for cap, limit in (offer.caps or {}).items():
        if limit is None or cap not in periods:
            continue
        who = EVERYONE if cap == "total" else profile_id
        out.append((cap, (who, offer.id, periods[cap]), int(limit)))
    return out


async def _model(session: AsyncSession, workspace_id: uuid.UUID, version: int | None) -> learning.ModelSet:
    if version is None:
        return learning.ModelSet(None)
    cached = _models.get(workspace_id)
    if cached is not None and cached.version == version:
        return cached
    row = await repository.get_model(session, workspace_id, version)
    model = learning.ModelSet.from_params(row.version, row.params) if row is not None else learning.ModelSet(None)
    _models[workspace_id] = model
    return model


async def resolve_person(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID | None, identifier: Any
) -> uuid.UUID:
    if profile_id is not None:
        return profile_id
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    found = await profile_service.find_profile_ids(
        session, workspace_id=workspace_id, identifiers=[(identifier.type, identifier.value)],
        settings=identity_service.identity_settings_from(workspace.settings),
    )
    if not found:
        raise NotFound(f"No profile has {identifier.type} {identifier.value!r} in this workspace.", code="profile_not_found")
    return next(iter(found.values()))


def _in_window(offer: OfferView, now: datetime) -> bool:
    return (offer.valid_from is None or offer.valid_from <= now) and (offer.valid_until is None or now < offer.valid_until)


def _exclusion(offer: OfferView, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"offer_id": str(offer.id), "name": offer.name, "reason": reason, "detail": detail,
            **{k: v for k, v in extra.items() if v is not None}}


def _rule_columns(catalog: offer_catalog.Catalog, explain: bool) -> dict[str, Any]:
    """Eligibility as columns of the profile read: `r{i}` for offer i's rule and, with explain,
    `r{i}_{j}` for each of its nodes. The same dict objects for the same catalog, so the
    statement built and compiled from them is reused (repository._state_statement)."""
    rules: dict[str, Any] = {}
    for i, rule in enumerate(catalog.rules):
        if rule is not None:
            rules[f"r{i}"] = rule.clause
            if explain:
                for j, (_, _, clause, _) in enumerate(rule.nodes):
                    rules[f"r{i}_{j}"] = clause
    return rules


async def decide(
    session: AsyncSession, *, workspace_id: uuid.UUID, request: DecisionRequest, rng: random.Random | None = None,
) -> DecisionPublic:
    rng = rng or _rng
    now = datetime.now(UTC)
    profile_id = await resolve_person(
        session, workspace_id=workspace_id, profile_id=request.profile_id, identifier=request.identifier
    )
    catalog = await offer_catalog.for_placement(session, workspace_id=workspace_id, placement=request.placement, now=now)
    periods = _periods(now)
    state: dict[str, Any] | None = None
    for _ in range(3):  # a merged person or an edited catalog reads again (bounded: edits may go on)
        rules = _rule_columns(catalog, request.explain)
        channel = catalog.placement.channel  # the reloaded catalog's, should it have changed
        state = await repository.profile_state(
            session, workspace_id=workspace_id, profile_id=profile_id, rules=rules, capped_offers=catalog.capped,
            periods=sorted(set(periods.values())), last_order=catalog.has_complements,
            purpose=decision_consent.purpose_for_channel(channel), channel=channel,
        )
        if state is None:
            raise NotFound(f"No profile with id {profile_id} in this workspace.", code="profile_not_found")
        if state["merged_into"] is not None:
            profile_id = (await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)).id
        elif state["catalog_version"] != catalog.version:
            catalog = await offer_catalog.for_placement(
                session, workspace_id=workspace_id, placement=request.placement, now=now, stale_version=catalog.version)
        else:
            break
    assert state is not None
    placement = catalog.placement
    count = min(request.count or placement.max_offers, placement.max_offers)

    exclusions: list[dict[str, Any]] = []
    live: list[tuple[int, OfferView]] = []
    for i, o in enumerate(catalog.offers):
        if o.paused:
            exclusions.append(_exclusion(o, "paused", "The offer is paused."))
        elif not _in_window(o, now):
            exclusions.append(_exclusion(o, "outside_validity", f"Valid from {o.valid_from} until {o.valid_until}."))
        else:
            live.append((i, o))

    # Consent: one check for the channel, from what the profile read returned (merges followed);
    # without it nothing is offered, not even the fallback.
    consent = decision_consent.from_state(state, profile_id=profile_id, channel=placement.channel, at=now)
    consent_records = [consent]
    counts: dict[tuple[uuid.UUID, uuid.UUID, str], int] = {}
    for offer_id, everyone, period, n in state["counters"] or []:
        counts[(EVERYONE if everyone else profile_id, uuid.UUID(offer_id), period)] = n

    last_seen = state["last_seen"]
    behaviour = {"events_7d": state["events_7d"], "events_30d": state["events_30d"],
                 "days_since_last_event": round((now - last_seen).total_seconds() / 86400, 3) if last_seen else None}
    features = learning.snapshot(state["traits"], state["computed"], {k: v for k, v in behaviour.items() if v is not None})
    model = await _model(session, workspace_id, state["model_version"])
    x = learning.vector(model.spec, features) if model.spec else None

    last_order = [p.get("product_id") for p in (state["last_order"] or []) if isinstance(p, dict) and p.get("product_id")]
    complement: str | None = None
    if last_order and any(o.kind == "complementary_item" for _, o in live):
        neighbours, _ = await repository.associations(session, workspace_id, [str(i) for i in last_order], popular=0)
        complement = recommend.complementary([str(i) for i in last_order], neighbours)

    eligible: list[OfferView] = []
    for i, o in live:
        if not consent["allowed"]:
            exclusions.append(_exclusion(o, "no_consent", consent["reason"], consent=consent))
            continue
        if o.eligibility and not state[f"r{i}"]:
            nodes = None
            rule = catalog.rules[i]
            if request.explain and rule is not None:
                values = [bool(state[f"r{i}_{j}"]) for j in range(len(rule.nodes))]
                nodes = eligibility.failing_nodes(rule, values)
            exclusions.append(_exclusion(o, "not_eligible", "The person does not match the eligibility rule"
                                         + (f" at {', '.join(n or '/' for n in nodes)}." if nodes else "."),
                                         rule_nodes=nodes))
            continue
        full = next((cap for cap, key, limit in _cap_keys(o, profile_id, periods) if counts.get(key, 0) >= limit), None)
        if full is not None:
            exclusions.append(_exclusion(o, "capped", f"The {full} cap ({o.caps[full]}) is reached.", cap=full))
            continue
        if o.kind == "complementary_item" and complement is None:
            exclusions.append(_exclusion(o, "no_purchase_to_complement",
                                         "No purchase with an associated item to complement."))
            continue
        eligible.append(o)

    explore = request.explore
    pol = policy.Policy(
        exploration=placement.exploration if explore else "off",
        epsilon=placement.epsilon if explore else 0.0,
        control_share=placement.control_share if explore else 0.0,
        control_mode=placement.control_mode,
    )
    scored: list[dict[str, Any]] = []
    arms: list[policy.Arm] = []
    for k, o in enumerate(eligible):
        p, n = model.propensity(str(o.id), o.prior_propensity, x)
        scale = o.value * o.weight
        scored.append({"offer_id": str(o.id), "name": o.name, "propensity": p, "value": o.value, "weight": o.weight,
                       "score": p * scale})
        arms.append(policy.Arm(key=k, score=p * scale, propensity=p, scale=scale, priority=o.priority,
                               tiebreak=str(o.id), alpha=1.0 + p * max(n, 10.0), beta=1.0 + (1.0 - p) * max(n, 10.0)))

    # Choose, then count the chosen offers' caps and store the decision in one statement. A cap
    # another decision filled since the profile read excludes that offer and the choice is made
    # again over what is left, so the logged probabilities are those of the policy over the
    # offers really available.
    decision_id = uuid7()
    pol_doc = {"exploration": pol.exploration, "epsilon": pol.epsilon, "control_share": pol.control_share,
               "control_mode": pol.control_mode, "count": count}
    while True:
        picks, control = policy.choose(arms, count, pol, rng)
        chosen: list[dict[str, Any]] = []
        for rank, pk in enumerate(picks, start=1):
            o, s = eligible[pk.key], scored[pk.key]
            content = dict(o.content)
            if o.kind == "complementary_item":
                content["item_id"] = complement
            chosen.append({"offer_id": str(o.id), "name": o.name, "rank": rank, "score": s["score"],
                           "propensity": s["propensity"], "value": o.value, "probability": pk.probability,
                           "content": content})
        fallback = False
        if not chosen and not control and catalog.fallback is not None and consent["allowed"]:
            o = catalog.fallback
            fallback = True
            chosen.append({"offer_id": str(o.id), "name": o.name, "rank": 1, "score": None, "propensity": None,
                           "value": o.value, "probability": 1.0, "content": dict(o.content)})
        full = await repository.record_decision(
            session,
            {"workspace_id": workspace_id, "id": decision_id, "profile_id": profile_id, "placement": placement.name,
             "channel": placement.channel, "context": request.context, "offers": chosen, "candidates": scored,
             "exclusions": exclusions, "consent": consent_records, "policy": pol_doc, "features": features,
             "model_version": model.version, "control": control, "fallback": fallback, "created_at": now},
            [{"offer_id": uuid.UUID(c["offer_id"]), "rank": c["rank"], "probability": c["probability"],
              "propensity": c["propensity"], "score": c["score"]} for c in chosen],
            [(key, limit) for pk in picks for _, key, limit in _cap_keys(eligible[pk.key], profile_id, periods)],
        )
        if not full:
            break
        filled = {key[1]: key for key in full}
        for offer_id, key in filled.items():
            o = next(e for e in eligible if e.id == offer_id)
            cap = next(c for c, k, _ in _cap_keys(o, profile_id, periods) if k == key)
            exclusions.append(_exclusion(o, "capped", f"The {cap} cap ({o.caps[cap]}) is reached.", cap=cap))
        arms = [a for a in arms if eligible[a.key].id not in filled]

    return DecisionPublic(
        decision_id=decision_id, profile_id=profile_id, placement=placement.name, channel=placement.channel,
        offers=[ChosenOffer.model_validate(c) for c in chosen], model_version=model.version, control=control,
        fallback=fallback, exclusions=[Exclusion.model_validate(e) for e in exclusions] if request.explain else None,
        consent=consent_records, created_at=now,
    )


# --- the ledger ---------------------------------------------------------------------------------

def _record(d: Decision, feedback: list[Any]) -> DecisionRecord:
    return DecisionRecord(
        decision_id=d.id, profile_id=d.profile_id, placement=d.placement, channel=d.channel,
        offers=[ChosenOffer.model_validate(c) for c in d.offers], model_version=d.model_version, control=d.control,
        fallback=d.fallback, exclusions=[Exclusion.model_validate(e) for e in d.exclusions], consent=d.consent,
        created_at=d.created_at, context=d.context, candidates=d.candidates, policy=d.policy, imported=d.imported,
        feedback=[FeedbackPublic.model_validate(f) for f in feedback],
    )


async def get_decision(session: AsyncSession, *, workspace_id: uuid.UUID, decision_id: uuid.UUID) -> DecisionRecord:
    d = await repository.get_decision(session, workspace_id, decision_id)
    if d is None:
        raise DecisionNotFound(f"No decision with id {decision_id} in this workspace.")
    return _record(d, (await repository.feedback_of(session, workspace_id, [d.id]))[d.id])


async def list_profile_decisions(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[DecisionRecord], str | None]:
    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    after = None
    if cursor:
        ts, did = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(ts), uuid.UUID(did))
        except ValueError:
            raise BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor") from None
    rows = list(await repository.list_profile_decisions(session, workspace_id, profile.id, after, limit + 1))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id)
    feedback = await repository.feedback_of(session, workspace_id, [d.id for d in rows])
    return [_record(d, feedback[d.id]) for d in rows], next_cursor


async def add_feedback(
    session: AsyncSession, *, workspace_id: uuid.UUID, decision_id: uuid.UUID, data: FeedbackCreate
) -> FeedbackPublic:
    d = await repository.get_decision(session, workspace_id, decision_id)
    if d is None:
        raise DecisionNotFound(f"No decision with id {decision_id} in this workspace.")
    if not await repository.served(session, workspace_id, decision_id, data.offer_id):
        raise OfferNotServed(f"Decision {decision_id} did not return offer {data.offer_id}.")
    row = {"workspace_id": workspace_id, "id": uuid7(), "decision_id": decision_id, "offer_id": data.offer_id,
           "profile_id": d.profile_id, "type": data.type, "value": data.value, "source": "api",
           "occurred_at": data.occurred_at or datetime.now(UTC)}
    await repository.insert_feedback(session, [row])
    return FeedbackPublic.model_validate(row)


async def feedback_from_events(conn: Any, *, workspace_id: uuid.UUID, messages: Sequence[Any]) -> None:
    """Ingest's hook: the batch's Offer Viewed/Clicked/Accepted/Declined and Order Completed
    events that carry a decision_id and offer_id become feedback (one statement, and only when
    the batch has such events)."""
    ids = [m.message_id for m in messages
           if m.type == "track" and m.event in OFFER_EVENTS and b'"decision_id"' in m.row]
    if ids:
        await repository.feedback_from_events(conn, workspace_id, ids)


# --- historical decisions -------------------------------------------------------------------------

MAX_IMPORT_LINES = 200_000


def _parse_time(value: Any, line: int) -> datetime:
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"`{value}` is not an ISO 8601 time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


async def import_decisions(session: AsyncSession, *, workspace_id: uuid.UUID, body: bytes) -> ImportResult:
    """NDJSON, one logged decision per line:
    {"decision_id"?, "profile_id" | "identifier": {"type", "value"}, "offer_id" | "offer": name,
     "placement"?, "channel"?, "probability": (0, 1], "decided_at", "features"?: {...traits...},
     "outcomes": [{"type", "value"?, "at"?}]}
    Lines are validated first; bad ones are reported with their number and skipped. A line
    with a decision_id already in the ledger is a duplicate (imports can be re-run)."""
    lines = body.splitlines()
    if len(lines) > MAX_IMPORT_LINES:
        raise ValidationFailed(f"An import holds at most {MAX_IMPORT_LINES} lines; split the file.", code="import_too_large")
    rejected: list[dict[str, Any]] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
            if not isinstance(item, dict):
                raise ValueError("a line is a JSON object")
            parsed.append((n, item))
        except (orjson.JSONDecodeError, ValueError) as exc:
            rejected.append({"line": n, "code": "malformed_json", "detail": str(exc)})
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    idents = [(str(i["identifier"].get("type")), str(i["identifier"].get("value")))
              for _, i in parsed if isinstance(i.get("identifier"), dict)]
    found = await profile_service.find_profile_ids(
        session, workspace_id=workspace_id, identifiers=idents,
        settings=identity_service.identity_settings_from(workspace.settings),
    ) if idents else {}
    names = [str(i["offer"]) for _, i in parsed if "offer" in i]
    by_name = await offer_service.offers_by_name(session, workspace_id=workspace_id, names=names) if names else {}
    ids = []
    for _, i in parsed:
        try:
            ids.append(uuid.UUID(str(i["offer_id"])))
        except (KeyError, ValueError):
            pass
    by_id = await offer_service.offers_by_id(session, workspace_id=workspace_id, ids=ids) if ids else {}
    profile_ids = []
    for _, i in parsed:
        try:
            profile_ids.append(uuid.UUID(str(i["profile_id"])))
        except (KeyError, ValueError):
            pass
    known_profiles = await profile_service.existing_profile_ids(session, workspace_id=workspace_id, ids=profile_ids)

    decisions, offers, feedback = [], [], []
    for n, item in parsed:
        try:
            if "profile_id" in item:
                pid = uuid.UUID(str(item["profile_id"]))
                if pid not in known_profiles:
                    raise LookupError(f"no profile {pid}")
            elif isinstance(item.get("identifier"), dict):
                key = (str(item["identifier"].get("type")), str(item["identifier"].get("value")))
                if key not in found:
                    raise LookupError(f"no profile has {key[0]} {key[1]!r}")
                pid = found[key]
            else:
                raise ValueError("give profile_id or identifier")
            offer = by_name.get(str(item["offer"])) if "offer" in item else by_id.get(uuid.UUID(str(item.get("offer_id"))))
            if offer is None:
                raise LookupError(f"no offer {item.get('offer', item.get('offer_id'))!r}")
            prob = item.get("probability")
            if not isinstance(prob, int | float) or not 0 < prob <= 1:
                raise ValueError("probability is a number in (0, 1]")
            decided = _parse_time(item.get("decided_at"), n)
            did = uuid.UUID(str(item["decision_id"])) if item.get("decision_id") else uuid7()
            feats = item.get("features")
            snap = learning.snapshot(feats, None, {}) if isinstance(feats, dict) else {"t": {}, "c": {}, "b": {}}
            outs = item.get("outcomes") or []
            if not isinstance(outs, list):
                raise ValueError("outcomes is a list")
            fb_rows = []
            for out in outs:
                if not isinstance(out, dict) or out.get("type") not in ("impression", "click", "accept", "decline", "convert"):
                    raise ValueError("an outcome is {type: impression|click|accept|decline|convert, value?, at?}")
                value = out.get("value")
                if value is not None and not isinstance(value, int | float):
                    raise ValueError("an outcome's value is a number")
                fb_rows.append({"workspace_id": workspace_id, "id": uuid7(), "decision_id": did, "offer_id": offer.id,
                                "profile_id": pid, "type": out["type"], "value": value, "source": "import",
                                "occurred_at": _parse_time(out["at"], n) if out.get("at") else decided})
        except (ValueError, LookupError, TypeError, KeyError) as exc:
            code = "not_found" if isinstance(exc, LookupError) and not isinstance(exc, KeyError) else "invalid_line"
            rejected.append({"line": n, "code": code, "detail": str(exc)})
            continue
        decisions.append({"workspace_id": workspace_id, "id": did, "profile_id": pid,
                          "placement": item.get("placement"), "channel": item.get("channel") or (offer.channels[0] if offer.channels else None),
                          "context": {}, "features": snap,
                          "offers": [{"offer_id": str(offer.id), "name": offer.name, "rank": 1, "score": None,
                                      "propensity": None, "value": offer.value, "probability": float(prob),
                                      "content": offer.content}],
                          "candidates": [], "exclusions": [], "consent": [], "policy": {"imported": True},
                          "model_version": None, "control": False, "fallback": False, "imported": True,
                          "created_at": decided})
        offers.append({"workspace_id": workspace_id, "decision_id": did, "offer_id": offer.id, "profile_id": pid,
                       "rank": 1, "probability": float(prob), "propensity": None, "score": None, "created_at": decided})
        feedback.extend(fb_rows)
    imported = 0
    fb_count = 0
    chunk = 1000  # rows x columns stays under the 32,767 bind parameters of one statement
    for start in range(0, len(decisions), chunk):
        part = decisions[start:start + chunk]
        new = await repository.insert_decisions(session, part, offers[start:start + chunk])
        imported += new
    fresh_ids = set(await repository.imported_ids(session, workspace_id, [d["id"] for d in decisions])) if feedback else set()
    if feedback:
        # Only for decisions this import created (a re-run does not double the outcomes).
        rows = [f for f in feedback if f["decision_id"] in fresh_ids]
        for start in range(0, len(rows), chunk * 2):
            fb_count += await repository.insert_feedback(session, rows[start:start + chunk * 2])
    return ImportResult(imported=imported, duplicates=len(decisions) - imported, feedback=fb_count, rejected=rejected)


# --- learning -------------------------------------------------------------------------------------

async def train(session: AsyncSession, *, workspace_id: uuid.UUID, target: str = "accept") -> dict[str, Any]:
    """Fit a new model version from the ledger, and rebuild the item associations."""
    rows = await repository.training_rows(session, workspace_id, learning.TARGETS[target], TRAINING_ROWS)
    offers = await offer_service.list_offers(session, workspace_id=workspace_id)
    priors = {str(o.id): o.prior_propensity for o in offers}
    data = [learning.Row(str(r.offer_id), r.created_at, float(r.probability), r.features or {}, int(bool(r.label)))
            for r in rows]
    params, metrics = await asyncio.to_thread(learning.train, data, priors)
    version = await repository.insert_model(session, workspace_id, target, params, metrics)
    associations = await build_associations(session, workspace_id=workspace_id)
    return {"version": version, "target": target, "rows": len(data), "metrics": metrics, "associations": associations}


async def build_associations(session: AsyncSession, *, workspace_id: uuid.UUID) -> int:
    pairs = await repository.purchases(session, workspace_id)
    neighbours, popularity = await asyncio.to_thread(recommend.build, pairs)
    return await repository.replace_associations(session, workspace_id, neighbours, popularity)


async def request_training(session: AsyncSession, *, workspace_id: uuid.UUID, target: str, wait: bool) -> Job:
    if wait:
        return await job_service.run_inline(
            session, workspace_id=workspace_id, task=TASK_TRAIN, params={"target": target},
            work=lambda s: train(s, workspace_id=workspace_id, target=target),
        )
    return await job_service.submit(session, workspace_id=workspace_id, task=TASK_TRAIN, params={"target": target})


async def get_training_job(session: AsyncSession, *, workspace_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    return await job_service.get_job(session, workspace_id=workspace_id, job_id=job_id, task_prefix="decisions.")


async def list_models(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[tuple[OfferModel, bool]]:
    models = await repository.list_models(session, workspace_id)
    return [(m, i == 0) for i, m in enumerate(models)]


# --- recommendations --------------------------------------------------------------------------------

async def recommendations(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID, count: int, exclude_purchased: bool
) -> tuple[uuid.UUID, list[tuple[str, float]]]:
    profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
    history = [recommend.Purchase(str(r.item), r.timestamp)
               for r in await repository.profile_purchases(session, workspace_id, profile.id)]
    items = sorted({p.item for p in history})
    neighbours, popularity = await repository.associations(session, workspace_id, items, popular=count * 3 + len(items))
    ranked = recommend.score(history, neighbours, popularity, now=datetime.now(UTC), count=count,
                             exclude_purchased=exclude_purchased)
    return profile.id, ranked
