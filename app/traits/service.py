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
    BgNbdParams,
    ClvModelPublic,
    ComputedTraitCreate,
    ComputedTraitUpdate,
    ComputedTraitValuePublic,
    GammaGammaParams,
)

log = logging.getLogger("clientele.traits")

TASK_REFRESH = "traits.refresh"
TASK_INCREMENTAL = "traits.incremental"
# Past this many touched profiles one pass over the workspace is cheaper than ANY(ids) probes.
INCREMENTAL_LIMIT = 50_000
WEEK = 7.0  # CLV time unit, in days (the BG/NBD paper's)
MIN_CLV_CUSTOMERS = 20  # below this BG/NBD is not identified; fitting only burns CPU
MIN_CLV_REPEAT_CUSTOMERS = 5
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
    clv_outcome, clv_scores = await _refresh_clv(
        session, workspace_id=workspace_id, computed_at=computed_at, profiles=profiles,
        refit_after=clv_refit_after if profiles is None else None,
    )
    outcomes.append(clv_scores)
    removed = sum(o.removed for o in outcomes)
    if profiles is None:
        owned = [t.name for t in definitions] + list(BUILT_IN_TRAITS)
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


async def fit_clv(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    calibration_start: date | None = None,
    calibration_end: date | None = None,
    as_of: datetime | None = None,
) -> ClvModelPublic:
    """Fit BG/NBD + Gamma-Gamma on the workspace's orders, store the model, score every customer.

    The calibration period (default: all history up to `as_of`) chooses the orders that
    estimate the parameters; T is counted in whole days up to `calibration_end`, as the
    BG/NBD paper codes its data. Profiles are then scored on their history up to `as_of`
    (default now).
    """
    conn = await raw_connection(session)
    computed_at = await repository.lock_workspace(conn, workspace_id)
    as_of = as_of or computed_at
    if calibration_end is not None and calibration_end > as_of.astimezone(UTC).date():
        # T would count days nobody could have bought on yet.
        raise ValidationFailed(
            "calibration_end must not be after as_of (default: now).",
            errors=[FieldError(pointer="/calibration_end", location="body", detail="after as_of", code="value_error")],
        )
    end_day = calibration_end or as_of.astimezone(UTC).date()
    model = await _fit(
        session, workspace_id=workspace_id, start_day=calibration_start, end_day=end_day,
        until=_end_of_day(calibration_end) if calibration_end else as_of, fitted_at=computed_at,
    )
    await _score_clv(conn, workspace_id, model, as_of=as_of, computed_at=computed_at, profiles=None)
    return clv_model_public(model)


async def get_clv_model(session: AsyncSession, *, workspace_id: uuid.UUID) -> ClvModelPublic:
    model = await repository.get_clv_model(session, workspace_id)
    if model is None:
        raise NotFound("No CLV model has been fitted in this workspace yet; POST /v1/computed-traits/clv/fit.")
    return clv_model_public(model)


def clv_model_public(model: ClvModel) -> ClvModelPublic:
    params = model.params
    gamma_gamma = None
    if params.get("p") is not None and model.gamma_gamma_log_likelihood is not None:
        gamma_gamma = GammaGammaParams(
            p=params["p"], q=params["q"], v=params["v"], log_likelihood=model.gamma_gamma_log_likelihood
        )
    return ClvModelPublic(
        bgnbd=BgNbdParams(r=params["r"], alpha=params["alpha"], a=params["a"], b=params["b"],
                          log_likelihood=model.log_likelihood),
        gamma_gamma=gamma_gamma,
        customer_count=model.customer_count,
        repeat_customer_count=model.repeat_customer_count,
        calibration_start=model.calibration_start,
        calibration_end=model.calibration_end,
        fitted_at=model.fitted_at,
    )


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


async def _fit(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    start_day: date | None,
    end_day: date,
    until: datetime,
    fitted_at: datetime,
) -> ClvModel:
    conn = await raw_connection(session)
    since = datetime.combine(start_day, time.min, tzinfo=UTC) if start_day else None
    summary = await repository.order_summaries(conn, workspace_id, until=until, since=since)
    if not summary.profile_ids:
        raise ValidationFailed("There are no `Order Completed` events in the calibration period.", code="clv_no_orders")
    x, t_x, age, monetary = _rfm_arrays(summary, end_day)
    repeaters = int((x > 0).sum())
    if len(x) < MIN_CLV_CUSTOMERS or repeaters < MIN_CLV_REPEAT_CUSTOMERS:
        # Too little data identifies no model, and the optimiser would spend seconds proving it.
        raise ValidationFailed(
            f"The order history is too small to fit the CLV model: {len(x)} customers, {repeaters} with repeat "
            f"purchases (at least {MIN_CLV_CUSTOMERS} and {MIN_CLV_REPEAT_CUSTOMERS} are needed).",
            code="clv_not_enough_data",
        )
    try:
        bg = await asyncio.to_thread(clv.fit_bgnbd, x, t_x, age)
    except ValueError as exc:
        raise ValidationFailed(f"The order history cannot fit the CLV model: {exc}", code="clv_fit_failed") from None
    try:
        gg: clv.GammaGammaParams | None = await asyncio.to_thread(clv.fit_gamma_gamma, x, monetary)
    except ValueError as exc:
        # Purchase counts stand without a spend model; expected spend and CLV are left out.
        log.info("gamma-gamma not fitted", extra={"workspace_id": str(workspace_id), "reason": str(exc)})
        gg = None
    model = ClvModel(
        workspace_id=workspace_id,
        params={"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b,
                "p": gg.p if gg else None, "q": gg.q if gg else None, "v": gg.v if gg else None},
        log_likelihood=bg.log_likelihood,
        gamma_gamma_log_likelihood=gg.log_likelihood if gg else None,
        customer_count=len(x),
        repeat_customer_count=int(np.count_nonzero(x)),
        calibration_start=start_day,
        calibration_end=end_day,
        fitted_at=fitted_at,
    )
    return await repository.save_clv_model(session, model)


def _finite(values: np.ndarray, digits: int) -> list[float | None]:
    return [round(float(v), digits) if math.isfinite(v) else None for v in values]


def _clv_scores(model: ClvModel, summary: repository.OrderSummary, end_day: date) -> dict[str, list[float | None]]:
    """Per-customer scores (numpy; run in a thread). Keys are the CLV trait names.

    A barely identified model (a young workspace) can overflow for some customers; their
    score is left out (`_finite`) rather than stored as NaN, hence the silenced warnings.
    """
    with np.errstate(all="ignore"):
        return _clv_score_arrays(model, summary, end_day)


def _clv_score_arrays(model: ClvModel, summary: repository.OrderSummary, end_day: date) -> dict[str, list[float | None]]:
    x, t_x, age, monetary = _rfm_arrays(summary, end_day)
    params = model.params
    bg = clv.BGNBDParams(r=params["r"], alpha=params["alpha"], a=params["a"], b=params["b"],
                         log_likelihood=model.log_likelihood)
    scores: dict[str, list[float | None]] = {
        "probability_alive": _finite(clv.bgnbd_prob_alive(bg, x, t_x, age), 6),
        "expected_orders_90d": _finite(clv.bgnbd_expected_purchases(bg, 90 / WEEK, x, t_x, age), 6),
        "expected_orders_365d": _finite(clv.bgnbd_expected_purchases(bg, 365 / WEEK, x, t_x, age), 6),
    }
    spend = np.full(len(x), np.nan)
    value = np.full(len(x), np.nan)
    if params.get("p") is not None and model.gamma_gamma_log_likelihood is not None:
        gg = clv.GammaGammaParams(p=params["p"], q=params["q"], v=params["v"],
                                  log_likelihood=model.gamma_gamma_log_likelihood)
        # With q <= 1 the population mean spend is infinite: customers without repeat
        # purchases get no expected spend rather than failing everyone.
        ok = gg.p * x + gg.q - 1 > 0
        if np.any(ok):
            spend[ok] = clv.gamma_gamma_expected_spend(gg, x[ok], monetary[ok])
            value[ok] = clv.customer_lifetime_value(
                bg, gg, x[ok], t_x[ok], age[ok], monetary[ok], horizon_units=365 / WEEK
            )
    scores["expected_spend"] = _finite(spend, 2)
    scores["clv_365d"] = _finite(value, 2)
    assert set(scores) == set(CLV_TRAITS)
    return scores


async def _score_clv(
    conn: Any,
    workspace_id: uuid.UUID,
    model: ClvModel | None,
    *,
    as_of: datetime,
    computed_at: datetime,
    profiles: repository.ProfileSet | None,
) -> repository.Written:
    """Score `profiles` (None: everyone) with `model`; without a model, drop their scores."""
    columns: dict[str, list[float | None]] = {}
    ids: list[uuid.UUID] = []
    if model is not None:
        summary = await repository.order_summaries(conn, workspace_id, until=as_of, profiles=profiles)
        if summary.profile_ids:
            columns = await asyncio.to_thread(_clv_scores, model, summary, as_of.astimezone(UTC).date())
            ids = summary.profile_ids
    return await repository.upsert_clv_values(
        conn, workspace_id, computed_at=computed_at, profiles=profiles, profile_ids=ids, columns=columns
    )


async def _refresh_clv(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    computed_at: datetime,
    profiles: repository.ProfileSet | None,
    refit_after: timedelta | None,
) -> tuple[str, repository.Written]:
    """Score with the stored model, refitting it first when due. Returns (outcome, what the
    scores' statement did)."""
    conn = await raw_connection(session)
    model = await repository.get_clv_model(session, workspace_id)
    outcome = "scored"
    if refit_after is not None and (model is None or model.fitted_at < computed_at - refit_after):
        try:
            model = await _fit(
                session, workspace_id=workspace_id, start_day=None, end_day=computed_at.astimezone(UTC).date(),
                until=computed_at, fitted_at=computed_at,
            )
            outcome = "fitted"
        except ValidationFailed as exc:
            # Too little history is normal for a young workspace: keep the old model (if any).
            outcome = f"not fitted: {exc.detail}"
    written = await _score_clv(conn, workspace_id, model, as_of=computed_at, computed_at=computed_at, profiles=profiles)
    if model is None:
        return (outcome if outcome != "scored" else "no model"), written
    return outcome, written
