"""Computed traits: definitions, refreshes (full and incremental), RFM, CLV, values on profiles.

A refresh holds the workspace's refresh lock for its transaction and stamps every value it
changes with one `computed_at` (a value it finds unchanged keeps the stamp of the refresh that
computed it); values that no longer hold go, so values always reflect one consistent pass.
Other domains read values through `get_profile_values`; ingest marks the profiles whose new
events can change a value, and merges and splits theirs with `enqueue_incremental_refresh`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings, get_settings
from app.core.db import raw_connection
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed, field_errors_from_pydantic
from app.jobs import queue
from app.jobs import service as job_service
from app.jobs.models import Job
from app.traits import clv, repository
from app.traits.models import ClvModel, ComputedTrait
from app.traits.schemas import (
    BUILT_IN_TRAITS,
    CLV_TRAITS,
    ClvCandidate,
    ClvComparison,
    ClvFitRequest,
    ClvHoldoutGroup,
    ClvModelPublic,
    ClvSettings,
    ComputedTraitCreate,
    ComputedTraitUpdate,
    ComputedTraitValuePublic,
    GammaGammaParams,
    PurchaseModelParams,
    clv_trait_names,
)

log = logging.getLogger("clientele.traits")

TASK_REFRESH = "traits.refresh"
TASK_INCREMENTAL = "traits.incremental"
# Past this many touched profiles one pass over the workspace is cheaper than ANY(ids) probes.
INCREMENTAL_LIMIT = 50_000
WEEK = 7.0  # CLV time unit, in days (the BG/NBD paper's)
MIN_CLV_CUSTOMERS = 20  # below this BG/NBD is not identified; fitting only burns CPU
MIN_CLV_REPEAT_CUSTOMERS = 5
# A fit without a holdout of its own compares the models on the later half of the history when
# that half is at least this long.
MIN_SPLIT_HOLDOUT_DAYS = 28
_DEFINITION_FIELDS = ("name", "aggregation", "event", "property", "window_days")


# ------------------------------------------------------------------------- definitions


async def list_definitions(session: AsyncSession, *, workspace_id: uuid.UUID) -> list[ComputedTrait]:
    return await repository.list_definitions(session, workspace_id)


async def get_definition(session: AsyncSession, *, workspace_id: uuid.UUID, trait_id: uuid.UUID) -> ComputedTrait:
    trait = await repository.get_definition(session, workspace_id, trait_id)
    if trait is None:
        raise NotFound(f"No computed trait with id {trait_id} in this workspace.")
    return trait


def _duplicate(name: str) -> Conflict:
    return Conflict(f"A computed trait named `{name}` already exists in this workspace.", code="duplicate_name")


async def create_definition(
    session: AsyncSession, *, workspace_id: uuid.UUID, data: ComputedTraitCreate
) -> ComputedTrait:
    """Values appear with the next refresh (hourly, or `request_refresh`)."""
    if await repository.name_taken(session, workspace_id, data.name):
        raise _duplicate(data.name)
    try:
        return await repository.insert_definition(session, ComputedTrait(workspace_id=workspace_id, **data.model_dump()))
    except IntegrityError:  # the same name, created concurrently
        raise _duplicate(data.name) from None


async def update_definition(
    session: AsyncSession, *, workspace_id: uuid.UUID, trait_id: uuid.UUID, changes: ComputedTraitUpdate
) -> ComputedTrait:
    """Apply the changes, validate the result as a whole; a changed definition loses its values
    (they described the old one) until the next refresh."""
    trait = await get_definition(session, workspace_id=workspace_id, trait_id=trait_id)
    merged = {f: getattr(trait, f) for f in _DEFINITION_FIELDS} | changes.model_dump(exclude_unset=True)
    try:
        data = ComputedTraitCreate.model_validate(merged)
    except ValidationError as exc:
        errors = field_errors_from_pydantic(exc.errors(), location="body")
        summary = "; ".join(f"{e.location}{e.pointer}: {e.detail}" for e in errors[:5])
        raise ValidationFailed(f"The updated definition is invalid: {summary}", errors=errors) from None
    if data.name != trait.name and await repository.name_taken(session, workspace_id, data.name, other_than=trait.id):
        raise _duplicate(data.name)
    if all(getattr(trait, f) == getattr(data, f) for f in _DEFINITION_FIELDS):
        return trait
    old_name = trait.name
    for f in _DEFINITION_FIELDS:
        setattr(trait, f, getattr(data, f))
    try:
        trait = await repository.save_definition(session, trait)
    except IntegrityError:
        raise _duplicate(data.name) from None
    await repository.delete_values_named(session, workspace_id, old_name)
    return trait


async def delete_definition(session: AsyncSession, *, workspace_id: uuid.UUID, trait_id: uuid.UUID) -> None:
    trait = await get_definition(session, workspace_id=workspace_id, trait_id=trait_id)
    await repository.delete_values_named(session, workspace_id, trait.name)
    await repository.delete_definition(session, trait)


# ------------------------------------------------------------------------------ values


async def get_profile_values(
    session: AsyncSession, *, workspace_id: uuid.UUID, profile_id: uuid.UUID
) -> dict[str, ComputedTraitValuePublic]:
    """Every computed trait of one (resolved) profile: `{name: {value, computed_at}}`."""
    rows = await repository.profile_values(session, workspace_id, profile_id)
    return {r.name: ComputedTraitValuePublic(value=r.value, computed_at=r.computed_at) for r in rows}


# ----------------------------------------------------------------------------- refresh


def clv_refit_after(settings: Settings) -> timedelta | None:
    """How old a CLV model may get before a full refresh refits it (CLIENTELE_CLV_REFIT_HOURS)."""
    return timedelta(hours=settings.clv_refit_hours) if settings.clv_refit_hours > 0 else None


async def refresh(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    profile_ids: Sequence[uuid.UUID] | repository.ProfileSet | None = None,
    clv_refit_after: timedelta | None = None,
) -> dict[str, Any]:
    """Recompute every trait of the workspace, or of `profile_ids` only (incremental).

    One statement per definition, one for the order built-ins, one for RFM, one for CLV
    scores; each writes only the values that changed and deletes those that no longer hold.
    A full refresh refits the CLV model first when it is missing or older than
    `clv_refit_after` (None: never), and ends by dropping values no family owns. Returns
    counts for the job record.
    """
    conn = await raw_connection(session)
    computed_at = await repository.lock_workspace(conn, workspace_id)
    profiles = (
        None if profile_ids is None
        else profile_ids if isinstance(profile_ids, repository.ProfileSet)
        else repository.ProfileSet.of(profile_ids)
    )
    stamp = {"computed_at": computed_at, "profiles": profiles}
    definitions = await repository.list_definitions(session, workspace_id)
    outcomes = [await repository.upsert_definition_values(conn, workspace_id, trait, **stamp) for trait in definitions]
    outcomes.append(await repository.upsert_order_values(conn, workspace_id, **stamp))
    outcomes.append(await repository.upsert_rfm(conn, workspace_id, **stamp))
    clv_outcome, clv_scores, clv_model = await _refresh_clv(
        session, workspace_id=workspace_id, computed_at=computed_at, profiles=profiles,
        refit_after=clv_refit_after if profiles is None else None,
    )
    outcomes.append(clv_scores)
    removed = sum(o.removed for o in outcomes)
    if profiles is None:
        owned = [t.name for t in definitions] + list(BUILT_IN_TRAITS)
        owned += clv_model_traits(clv_model) if clv_model is not None else []
        removed += await repository.delete_orphan_values(conn, workspace_id, owned)
    return {
        "mode": "full" if profiles is None else "incremental",
        "profiles": None if profiles is None else profiles.count,
        "definitions": len(definitions),
        "values_written": sum(o.written for o in outcomes),
        "values_removed": removed,
        "clv": clv_outcome,
        "computed_at": computed_at.isoformat(),
    }


async def request_refresh(
    session: AsyncSession, *, workspace_id: uuid.UUID, wait: bool = False, clv_refit_after: timedelta | None = None
) -> Job:
    """Queue a full refresh for the worker (a waiting one is reused), or with `wait` run it now."""
    if wait:
        return await job_service.run_inline(
            session, workspace_id=workspace_id, task=TASK_REFRESH, params={},
            work=lambda s: refresh(s, workspace_id=workspace_id, clv_refit_after=clv_refit_after),
        )
    return await job_service.submit(session, workspace_id=workspace_id, task=TASK_REFRESH)


async def get_refresh_job(session: AsyncSession, *, workspace_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    return await job_service.get_job(session, workspace_id=workspace_id, job_id=job_id, task_prefix="traits.")


def _incremental_key(workspace_id: uuid.UUID, bucket: int) -> str:
    return f"{TASK_INCREMENTAL}:{workspace_id}:{bucket}"


async def enqueue_incremental_refresh(
    db: queue.Executor,
    *,
    workspace_id: uuid.UUID,
    profile_ids: Sequence[uuid.UUID],
    delay_seconds: float | None = None,
) -> None:
    """Refresh these profiles' traits soon (their events changed: a merge, a split).

    Debounced: profiles join the current window (CLIENTELE_TRAITS_INCREMENTAL_DELAY_SECONDS)
    and one job per workspace and window refreshes them all when it closes, however many
    events arrived. Cost: one appended row, and a queue check once per window and process.
    It never waits on the worker. (Ingest appends its mark in its event insert and then calls
    `ensure_incremental_job`.)
    """
    if not profile_ids:
        return
    delay = incremental_delay(delay_seconds)
    conn = await queue.connection(db)
    bucket, wait = await repository.mark_dirty(conn, workspace_id, profile_ids, delay)
    await ensure_incremental_job(conn, workspace_id=workspace_id, bucket=bucket, wait=wait, delay=delay)


def incremental_delay(delay_seconds: float | None = None) -> float:
    return delay_seconds if delay_seconds is not None else get_settings().traits_incremental_delay_seconds


async def ensure_incremental_job(
    db: queue.Executor, *, workspace_id: uuid.UUID, bucket: int, wait: float, delay: float
) -> None:
    """After marking profiles dirty in window `bucket` (closing in `wait` seconds): make sure
    that window's job is queued (for a caller that marked them itself, like ingest)."""
    # This process already saw the window's job queued, and a queued job cannot start before
    # its window closes: skip the queue round trips until shortly before that.
    if _window_job_seen.get((workspace_id, bucket), 0.0) > monotonic():
        return
    state = await queue.pending_state(db, dedupe_key=_incremental_key(workspace_id, bucket))
    if state == "picked":
        # This window's job is already running and may not see these rows; the next window's
        # job takes every window up to its own.
        bucket, wait = bucket + 1, wait + delay
        state = await queue.pending_state(db, dedupe_key=_incremental_key(workspace_id, bucket))
    if state != "queued":
        await queue.enqueue(
            db, task=TASK_INCREMENTAL, payload={"workspace_id": str(workspace_id), "bucket": bucket},
            dedupe_key=_incremental_key(workspace_id, bucket), delay=timedelta(seconds=wait),
        )
    if len(_window_job_seen) > 10_000:
        _window_job_seen.clear()
    _window_job_seen[(workspace_id, bucket)] = monotonic() + wait - _WINDOW_MARGIN_SECONDS


# (workspace, window) -> until when (monotonic clock) this process may trust that the window's
# job is queued. Only a cache: a miss costs the two queue round trips it saves.
_window_job_seen: dict[tuple[uuid.UUID, int], float] = {}
_WINDOW_MARGIN_SECONDS = 1.0


# SQLSTATEs of a refresh that lost a race with a merge, split or erasure: a deadlock (both
# lock rows of the same profile, in different orders), or a value written for a profile
# deleted while the statement ran (its row was gone when the upsert came to it, so it
# inserted one, and the foreign-key check found no profile).
_LOST_RACE = frozenset({"40P01", "23503"})


def lost_race(exc: Exception) -> bool:
    """Whether a refresh failed only because of concurrent writes. It rolled back entirely,
    with its claim of the dirty marks, so running it again in a new transaction is safe."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # asyncpg's own error, or SQLAlchemy's wrapping
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in _LOST_RACE:
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


async def run_incremental_refresh(session: AsyncSession, *, workspace_id: uuid.UUID, up_to_bucket: int) -> dict[str, Any]:
    """The job of a closed window: refresh every profile marked up to it."""
    conn = await raw_connection(session)
    await repository.lock_workspace(conn, workspace_id)  # claim only after a running refresh commits
    profiles = await repository.claim_dirty(conn, workspace_id, up_to_bucket)
    if not profiles.count:
        return {"mode": "incremental", "profiles": 0}
    if profiles.count > INCREMENTAL_LIMIT:
        return await refresh(session, workspace_id=workspace_id)
    return await refresh(session, workspace_id=workspace_id, profile_ids=profiles)


# --------------------------------------------------------------------------------- CLV


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


@dataclass(frozen=True)
class _Period:
    """The days a fit reads: orders from `start_day` to `calibration_end` estimate the model;
    customers' histories are read up to `observation_end` (T counted to its UTC day)."""

    start_day: date | None
    calibration_end: date
    observation_end: datetime

    @property
    def since(self) -> datetime | None:
        return datetime.combine(self.start_day, time.min, tzinfo=UTC) if self.start_day else None

    @property
    def calibration_until(self) -> datetime:
        return min(_end_of_day(self.calibration_end), self.observation_end)


@dataclass(frozen=True)
class _Customers:
    """One calibration period's customers, as app.traits.clv codes them (weeks)."""

    profile_ids: list[uuid.UUID]
    x: np.ndarray
    t_x: np.ndarray
    age: np.ndarray
    monetary: np.ndarray


async def _observation_end(conn: Any, workspace_id: uuid.UUID, settings: ClvSettings, now: datetime) -> datetime:
    """`as_of` when set; else the end of the latest order's day when that day is before today
    (an imported history: counting the years since it as silence would make everyone lost),
    else now."""
    if settings.as_of is not None:
        return settings.as_of
    _, latest = await repository.order_span(conn, workspace_id)
    if latest is not None and _utc_day(latest) < _utc_day(now):
        return _end_of_day(_utc_day(latest))
    return now


async def _period(conn: Any, workspace_id: uuid.UUID, settings: ClvSettings, now: datetime) -> _Period:
    observation_end = await _observation_end(conn, workspace_id, settings, now)
    end_day = _utc_day(observation_end)
    if settings.calibration_end is not None and settings.calibration_end > end_day:
        # T would count days nobody could have bought on yet.
        raise ValidationFailed(
            f"calibration_end must not be after the observation end ({observation_end.isoformat()}: as_of, by "
            "default the latest order's day, or now).",
            errors=[FieldError(pointer="/calibration_end", location="body", detail="after as_of", code="value_error")],
        )
    return _Period(settings.calibration_start, settings.calibration_end or end_day, observation_end)


def _weeks(days: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.float64) / WEEK


def _rfm_arrays(summary: repository.OrderSummary, end_day: date) -> tuple[np.ndarray, ...]:
    """frequency, recency, T (weeks, whole days) and monetary value, as clv.summarize codes them."""
    first = np.array([d.toordinal() for d in summary.first_day])
    last = np.array([d.toordinal() for d in summary.last_day])
    return (
        np.asarray(summary.frequency, dtype=np.float64),
        _weeks(last - first),
        _weeks(end_day.toordinal() - first),
        np.asarray(summary.monetary, dtype=np.float64),
    )


async def _customers(conn: Any, workspace_id: uuid.UUID, *, since: datetime | None, until: datetime, end_day: date) -> _Customers:
    summary = await repository.order_summaries(conn, workspace_id, until=until, since=since)
    x, t_x, age, monetary = _rfm_arrays(summary, end_day) if summary.profile_ids else (np.zeros(0),) * 4
    return _Customers(summary.profile_ids, x, t_x, age, monetary)


def _check_enough(customers: _Customers, what: str) -> None:
    if not customers.profile_ids:
        raise ValidationFailed(f"There are no `Order Completed` events in {what}.", code="clv_no_orders")
    repeaters = int((customers.x > 0).sum())
    if len(customers.x) < MIN_CLV_CUSTOMERS or repeaters < MIN_CLV_REPEAT_CUSTOMERS:
        # Too little data identifies no model, and the optimiser would spend time proving it.
        raise ValidationFailed(
            f"The order history is too small to fit the CLV model: {len(customers.x)} customers in {what}, "
            f"{repeaters} with repeat purchases (at least {MIN_CLV_CUSTOMERS} and {MIN_CLV_REPEAT_CUSTOMERS} "
            "are needed).",
            code="clv_not_enough_data",
        )


def _purchase_params_public(params: clv.PurchaseParams) -> PurchaseModelParams:
    values = {k: v for k, v in asdict(params).items() if k != "log_likelihood"}
    return PurchaseModelParams(**values)


def _candidate(key: str, params: clv.PurchaseParams, customers: _Customers, actual: np.ndarray, weeks: float) -> ClvCandidate:
    result = clv.compare_on_holdout(params, customers.x, customers.t_x, customers.age, actual, holdout_units=weeks)
    return ClvCandidate(
        model=key, params=_purchase_params_public(params), log_likelihood=params.log_likelihood,
        actual=result.actual, predicted=result.predicted, total_error=result.total_error, mae=result.mae,
        rmse=result.rmse, groups=[ClvHoldoutGroup(**g) for g in result.groups],
    )


async def _compare(
    keys: Sequence[str], customers: _Customers, actual: np.ndarray, weeks: float
) -> tuple[list[ClvCandidate], dict[str, clv.PurchaseParams]]:
    """Fit each model on the comparison's calibration customers and score it on the holdout."""
    candidates: list[ClvCandidate] = []
    fits: dict[str, clv.PurchaseParams] = {}
    for key in keys:
        try:
            params = await asyncio.to_thread(clv.fit_purchase_model, key, customers.x, customers.t_x, customers.age)
            candidates.append(_candidate(key, params, customers, actual, weeks))
            fits[key] = params
        except ValueError as exc:
            candidates.append(ClvCandidate(model=key, error=str(exc)))
    return candidates, fits


def _ranked(candidates: list[ClvCandidate]) -> list[ClvCandidate]:
    """Fitted candidates, best first: lowest per-customer RMSE, then lowest total error."""
    fitted = [c for c in candidates if c.rmse is not None]
    return sorted(fitted, key=lambda c: (c.rmse, abs(c.total_error or 0.0)))


def _choice_reason(ranked: list[ClvCandidate]) -> str:
    best, others = ranked[0], ranked[1:]
    if not others:
        return f"the only model compared; holdout RMSE per customer {best.rmse:.3f}"
    against = " and ".join(f"{c.rmse:.3f} ({c.model})" for c in others)
    return f"lowest holdout RMSE per customer: {best.rmse:.3f} against {against}"


def _holdout_actual(customers: _Customers, counts: dict[uuid.UUID, int]) -> np.ndarray:
    return np.array([counts.get(pid, 0) for pid in customers.profile_ids], dtype=np.float64)


async def _fit(
    session: AsyncSession, *, workspace_id: uuid.UUID, settings: ClvSettings, now: datetime
) -> tuple[ClvModel, _Period]:
    """Fit the purchase model the settings ask for (or choose one by a calibration/holdout
    comparison), and Gamma-Gamma; store them with the settings and return the model."""
    conn = await raw_connection(session)
    period = await _period(conn, workspace_id, settings, now)
    end_day = _utc_day(period.observation_end)
    customers = await _customers(
        conn, workspace_id, since=period.since, until=period.calibration_until, end_day=period.calibration_end
    )
    _check_enough(customers, "the calibration period")
    keys = list(clv.MODELS) if settings.model == "auto" else [settings.model]

    if period.calibration_end < end_day:
        # The fit's own holdout: the models fitted on the calibration period are the candidates.
        counts = await repository.holdout_purchases(
            conn, workspace_id, after=_end_of_day(period.calibration_end), until=period.observation_end
        )
        holdout_days = (end_day - period.calibration_end).days
        candidates, fits = await _compare(keys, customers, _holdout_actual(customers, counts), holdout_days / WEEK)
        ranked = _ranked(candidates)
        if not ranked:
            errors = "; ".join(f"{clv.MODELS[c.model]}: {c.error}" for c in candidates)
            raise ValidationFailed(f"The order history cannot fit the CLV model: {errors}", code="clv_fit_failed")
        chosen, params = ranked[0].model, fits[ranked[0].model]
        comparison = ClvComparison(
            method="holdout", calibration_start=period.start_day, calibration_end=period.calibration_end,
            holdout_end=end_day, holdout_days=holdout_days, customers=len(customers.x), chosen=chosen,
            reason=_choice_reason(ranked), candidates=candidates,
        )
    else:
        comparison_customers: _Customers | None = None
        first, _ = await repository.order_span(conn, workspace_id, since=period.since)
        span = (period.calibration_end - _utc_day(first)).days if first is not None else 0
        split_day = _utc_day(first) + timedelta(days=span // 2) if first is not None else period.calibration_end
        holdout_days = (period.calibration_end - split_day).days
        candidates: list[ClvCandidate] = []
        ranked: list[ClvCandidate] = []
        why_not = f"the history is too short to hold out a period of {MIN_SPLIT_HOLDOUT_DAYS} days or more"
        if holdout_days >= MIN_SPLIT_HOLDOUT_DAYS:
            # No holdout was asked for: hold out the later half of the history to compare the
            # models on, then refit the chosen one on all of it.
            comparison_customers = await _customers(
                conn, workspace_id, since=period.since, until=_end_of_day(split_day), end_day=split_day
            )
            try:
                _check_enough(comparison_customers, "the first half of the history")
            except ValidationFailed as exc:
                why_not = exc.detail
            else:
                counts = await repository.holdout_purchases(
                    conn, workspace_id, after=_end_of_day(split_day), until=period.calibration_until
                )
                actual = _holdout_actual(comparison_customers, counts)
                candidates, _ = await _compare(keys, comparison_customers, actual, holdout_days / WEEK)
                ranked = _ranked(candidates)
                why_not = "no model could be fitted on the first half of the history"
        # Every candidate is refitted on the whole calibration period (published beside its
        # comparison); the best ranked one that fits is the model in use.
        whole: dict[str, clv.PurchaseParams] = {}
        errors: dict[str, str] = {}
        for key in keys:
            try:
                whole[key] = await asyncio.to_thread(
                    clv.fit_purchase_model, key, customers.x, customers.t_x, customers.age
                )
            except ValueError as exc:
                errors[key] = str(exc)
        if not whole:
            detail = "; ".join(f"{clv.MODELS[k]}: {e}" for k, e in errors.items())
            raise ValidationFailed(f"The order history cannot fit the CLV model: {detail}", code="clv_fit_failed")
        by_key = {c.model: c for c in candidates}
        for key in keys:
            candidate = by_key.get(key)
            if candidate is None:
                candidate = by_key[key] = ClvCandidate(model=key)
                candidates.append(candidate)
            if key in whole:
                candidate.whole_period_params = _purchase_params_public(whole[key])
                candidate.whole_period_log_likelihood = whole[key].log_likelihood
            else:
                candidate.whole_period_error = errors[key]
        usable = [c.model for c in ranked if c.model in whole]
        if usable:
            chosen = usable[0]
            reason = _choice_reason(ranked)
            if chosen != ranked[0].model:
                reason += f"; {clv.MODELS[ranked[0].model]} could not be fitted on the whole period"
        else:
            chosen = max(whole, key=lambda k: whole[k].log_likelihood)
            reason = f"not compared: {why_not}; " + (
                "the model asked for" if settings.model != "auto"
                else "the highest log-likelihood on the calibration period"
            )
        params = whole[chosen]
        comparison = ClvComparison(
            method="split", calibration_start=period.start_day,
            calibration_end=split_day if ranked else None, holdout_end=period.calibration_end if ranked else None,
            holdout_days=holdout_days if ranked else None,
            customers=len(comparison_customers.x) if ranked and comparison_customers else None,
            chosen=chosen, reason=reason, candidates=candidates,
        )

    try:
        gg: clv.GammaGammaParams | None = await asyncio.to_thread(clv.fit_gamma_gamma, customers.x, customers.monetary)
    except ValueError as exc:
        # Purchase counts stand without a spend model; expected spend and CLV are left out.
        log.info("gamma-gamma not fitted", extra={"workspace_id": str(workspace_id), "reason": str(exc)})
        gg = None
    values = {k: v for k, v in asdict(params).items() if k != "log_likelihood"}
    model = ClvModel(
        workspace_id=workspace_id,
        model=chosen,
        params=values | {"p": gg.p if gg else None, "q": gg.q if gg else None, "v": gg.v if gg else None},
        log_likelihood=params.log_likelihood,
        gamma_gamma_log_likelihood=gg.log_likelihood if gg else None,
        customer_count=len(customers.x),
        repeat_customer_count=int(np.count_nonzero(customers.x)),
        calibration_start=period.start_day,
        calibration_end=period.calibration_end,
        observation_end=period.observation_end,
        settings=settings.model_dump(mode="json"),
        comparison=comparison.model_dump(mode="json"),
        fitted_at=now,
    )
    return await repository.save_clv_model(session, model), period


async def fit_clv(session: AsyncSession, *, workspace_id: uuid.UUID, request: ClvFitRequest | None = None) -> ClvModelPublic:
    """Fit the CLV models on the workspace's orders as `request` asks, store them with the
    request (every automatic refit reuses it), and score every customer.

    The calibration period (default: all history up to the observation end) estimates the
    parameters; T is counted in whole days up to `calibration_end`, as the BG/NBD paper codes
    its data. Profiles are then scored on their history up to the observation end.
    """
    settings = ClvSettings.model_validate((request or ClvFitRequest()).model_dump())
    conn = await raw_connection(session)
    computed_at = await repository.lock_workspace(conn, workspace_id)
    previous = await repository.get_clv_model(session, workspace_id)
    stale = clv_model_traits(previous) if previous is not None else ()
    model, period = await _fit(session, workspace_id=workspace_id, settings=settings, now=computed_at)
    await _score_clv(conn, workspace_id, model, as_of=period.observation_end, computed_at=computed_at,
                     profiles=None, stale=stale)
    return clv_model_public(model)


async def get_clv_model(session: AsyncSession, *, workspace_id: uuid.UUID) -> ClvModelPublic:
    model = await repository.get_clv_model(session, workspace_id)
    if model is None:
        raise NotFound("No CLV model has been fitted in this workspace yet; POST /v1/computed-traits/clv/fit.")
    return clv_model_public(model)


def _settings(model: ClvModel) -> ClvSettings:
    return ClvSettings.model_validate(model.settings)


def clv_model_traits(model: ClvModel) -> tuple[str, ...]:
    return clv_trait_names(_settings(model).horizons_days)


def _purchase_params(model: ClvModel) -> clv.PurchaseParams:
    return clv.params_of(model.model, model.params, model.log_likelihood)


def clv_model_public(model: ClvModel) -> ClvModelPublic:
    params = model.params
    gamma_gamma = None
    if params.get("p") is not None and model.gamma_gamma_log_likelihood is not None:
        gamma_gamma = GammaGammaParams(
            p=params["p"], q=params["q"], v=params["v"], log_likelihood=model.gamma_gamma_log_likelihood
        )
    return ClvModelPublic(
        model=model.model,
        params=_purchase_params_public(_purchase_params(model)),
        log_likelihood=model.log_likelihood,
        gamma_gamma=gamma_gamma,
        customer_count=model.customer_count,
        repeat_customer_count=model.repeat_customer_count,
        calibration_start=model.calibration_start,
        calibration_end=model.calibration_end,
        observation_end=model.observation_end,
        settings=_settings(model),
        traits=list(clv_model_traits(model)),
        comparison=ClvComparison.model_validate(model.comparison) if model.comparison else None,
        fitted_at=model.fitted_at,
    )


def _finite(values: np.ndarray, digits: int) -> list[float | None]:
    return [round(float(v), digits) if math.isfinite(v) else None for v in values]


def _clv_scores(model: ClvModel, summary: repository.OrderSummary, end_day: date) -> dict[str, list[float | None]]:
    """Per-customer scores (numpy; run in a thread). Keys are the model's trait names.

    A barely identified model (a young workspace) can overflow for some customers; their
    score is left out (`_finite`) rather than stored as NaN, hence the silenced warnings.
    """
    with np.errstate(all="ignore"):
        return _clv_score_arrays(model, summary, end_day)


def _clv_score_arrays(model: ClvModel, summary: repository.OrderSummary, end_day: date) -> dict[str, list[float | None]]:
    x, t_x, age, monetary = _rfm_arrays(summary, end_day)
    params = model.params
    purchases = _purchase_params(model)
    horizons = _settings(model).horizons_days
    expected = {days: clv.expected_purchases(purchases, days / WEEK, x, t_x, age) for days in horizons}
    scores: dict[str, list[float | None]] = {"probability_alive": _finite(clv.prob_alive(purchases, x, t_x, age), 6)}
    for days in horizons:
        scores[f"expected_orders_{days}d"] = _finite(expected[days], 6)
    spend = np.full(len(x), np.nan)
    if params.get("p") is not None and model.gamma_gamma_log_likelihood is not None:
        gg = clv.GammaGammaParams(p=params["p"], q=params["q"], v=params["v"],
                                  log_likelihood=model.gamma_gamma_log_likelihood)
        # With q <= 1 the population mean spend is infinite: customers without repeat
        # purchases get no expected spend rather than failing everyone.
        ok = gg.p * x + gg.q - 1 > 0
        if np.any(ok):
            spend[ok] = clv.gamma_gamma_expected_spend(gg, x[ok], monetary[ok])
    scores["expected_spend"] = _finite(spend, 2)
    for days in horizons:
        # Undiscounted: the expected purchases over the horizon times the expected order value
        # (what clv.customer_lifetime_value gives with no discount rate).
        scores[f"clv_{days}d"] = _finite(expected[days] * spend, 2)
    assert set(scores) == set(clv_model_traits(model))
    return scores


async def _score_clv(
    conn: Any,
    workspace_id: uuid.UUID,
    model: ClvModel | None,
    *,
    as_of: datetime,
    computed_at: datetime,
    profiles: repository.ProfileSet | None,
    stale: Sequence[str] = (),
) -> repository.Written:
    """Score `profiles` (None: everyone) with `model` on their history up to `as_of`; without a
    model, drop their scores. `stale`: trait names of a previous model to drop as well."""
    columns: dict[str, list[float | None]] = {}
    ids: list[uuid.UUID] = []
    family = [*CLV_TRAITS, *stale]
    if model is not None:
        family += clv_model_traits(model)
        summary = await repository.order_summaries(conn, workspace_id, until=as_of, profiles=profiles)
        if summary.profile_ids:
            columns = await asyncio.to_thread(_clv_scores, model, summary, _utc_day(as_of))
            ids = summary.profile_ids
    return await repository.upsert_clv_values(
        conn, workspace_id, computed_at=computed_at, profiles=profiles, profile_ids=ids, columns=columns,
        family=list(dict.fromkeys(family)),
    )


async def _refresh_clv(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    computed_at: datetime,
    profiles: repository.ProfileSet | None,
    refit_after: timedelta | None,
) -> tuple[str, repository.Written, ClvModel | None]:
    """Score with the stored model, refitting it first (with its own settings) when due.
    Returns (outcome, what the scores' statement did, the model)."""
    conn = await raw_connection(session)
    model = await repository.get_clv_model(session, workspace_id)
    outcome = "scored"
    settings = _settings(model) if model is not None else ClvSettings()
    if refit_after is not None and (model is None or model.fitted_at < computed_at - refit_after):
        try:
            model, _ = await _fit(session, workspace_id=workspace_id, settings=settings, now=computed_at)
            outcome = "fitted"
        except ValidationFailed as exc:
            # Too little history is normal for a young workspace: keep the old model (if any).
            outcome = f"not fitted: {exc.detail}"
    as_of = computed_at if model is None else await _observation_end(conn, workspace_id, settings, computed_at)
    written = await _score_clv(conn, workspace_id, model, as_of=as_of, computed_at=computed_at, profiles=profiles)
    if model is None:
        return (outcome if outcome != "scored" else "no model"), written, None
    return outcome, written, model
