"""De-duplication runs and the review of their candidate pairs.

A run loads a workspace's live profiles in one query, maps their traits to
:class:`~app.dedup.matcher.PersonRecord` (the mapping is :func:`record_from_traits`), lets
the pure matcher find scored pairs, drops the pairs identity resolution is responsible for,
records the rest as candidates and merges those at or above the threshold through
``identity_service.manual_merge`` (ledger rule ``dedup``, so ``split`` undoes them).

A run requested through the API (:func:`request_run`) is synchronous when the workspace has
at most :data:`MAX_SYNC_PROFILES` matchable profiles: one in-memory pass inside the request's
transaction. A larger workspace gets a ``queued`` run and a job on the Postgres queue
(:data:`TASK_RUN`, ``app/dedup/jobs.py``) that calls :func:`run_dedup` for that run in a
transaction of its own; the CLI calls :func:`run_dedup` directly. Either way a run scans at
most :data:`MAX_PROFILES` profiles.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import AppError, BadRequest, Conflict, NotFound
from app.core.ids import uuid7
from app.core.pagination import decode_cursor, encode_cursor
from app.dedup import repository
from app.dedup.models import DedupCandidate, DedupRun
from app.dedup.schemas import DedupCandidatePublic, DedupRunCounts, DedupRunPublic
from app.identity import service as identity_service
from app.jobs import service as job_service
from app.dedup.dates import UnreadableDate, parse_birthdate
from app.dedup.matcher import CandidatePair, Decision, PersonRecord, find_candidates
from app.identity.normalize import IdentitySettings, InvalidIdentifier, normalize_identifier
from app.profiles import service as profile_service
from app.workspaces import service as workspace_service

#: Most profiles a run inside a request scans. Matching 100,000 records takes tens of seconds
#: (docs/DEDUP.md §5); a larger workspace is de-duplicated by a background job instead.
MAX_SYNC_PROFILES = 100_000
#: Most profiles any run scans (API job or CLI): memory grows with the profiles and the
#: blocked pairs, and 1M took a few GB (docs/DEDUP.md §5).
MAX_PROFILES = 2_000_000
#: The queue entrypoint of a background run (payload: workspace_id, job_id = the run's id).
TASK_RUN = "dedup.run"

MERGE_RULE = "dedup"

# Trait keys the matcher reads, by field. snake_case as in the issue, camelCase as in the
# Segment spec of reserved identify traits (firstName, address.postalCode, ...).
FIRST_NAME_KEYS = ("first_name", "firstName")
LAST_NAME_KEYS = ("last_name", "lastName")
NAME_KEYS = ("name",)
EMAIL_KEYS = ("email",)
PHONE_KEYS = ("phone",)
POSTCODE_KEYS = ("postcode", "zip", "postal_code", "postalCode")
STREET_KEYS = ("street",)
HOUSE_NUMBER_KEYS = ("street_number", "house_number", "streetNumber", "houseNumber")
ADDRESS2_KEYS = ("address_2", "address2", "address_line_2", "addressLine2", "street2", "line2")
CITY_KEYS = ("city", "town", "suburb")
STATE_KEYS = ("state", "region", "county", "province")
NATIONAL_ID_KEYS = ("national_id", "customer_number", "customer_no", "nationalId", "customerNumber")
ADDRESS_KEYS = ("address",)  # a string, or a Segment address object {street, city, state, postalCode}
BIRTHDATE_KEYS = ("birthdate", "birthday", "date_of_birth", "dob")
MATCHABLE_TRAITS: tuple[str, ...] = (
    *FIRST_NAME_KEYS, *LAST_NAME_KEYS, *NAME_KEYS, *EMAIL_KEYS, *PHONE_KEYS, *POSTCODE_KEYS,
    *STREET_KEYS, *HOUSE_NUMBER_KEYS, *ADDRESS2_KEYS, *CITY_KEYS, *STATE_KEYS, *NATIONAL_ID_KEYS, *ADDRESS_KEYS,
    *BIRTHDATE_KEYS,
)
#: Traits that are also identifiers (pairs sharing one belong to identity resolution).
IDENTIFIER_TRAITS = ("email", "phone")
#: Reasons of the decisions people made on the review queue: the labels the model learns from
#: (automatic merges are the model's own guesses and are not fed back to it).
MERGED_ON_REVIEW = "merged on review"
REJECTED_ON_REVIEW = "rejected on review"
#: Newest reviewed pairs a run learns from.
MAX_DECISIONS = 50_000
#: Examples of unreadable values kept on a run, per field.
MAX_UNREADABLE_EXAMPLES = 20


class DedupTooLarge(AppError):
    status, code, title = 422, "dedup_too_large", "Unprocessable Content"


class CandidateDecided(Conflict):
    code = "candidate_decided"


# --- traits -> PersonRecord ------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A usable scalar as stripped text (numbers too: ZIP codes and phones arrive as numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _first(source: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        if (text := _text(source.get(key))) is not None:
            return text
    return None


def _split_name(name: str) -> tuple[str | None, str | None]:
    """ "Jonathan Smith" -> (Jonathan, Smith); "Smith, Jonathan" -> (Jonathan, Smith); "Cher" -> (Cher, None)."""
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip() or None, last.strip() or None
    parts = name.split()
    if len(parts) == 1:
        return parts[0], None
    return " ".join(parts[:-1]), parts[-1]  # middle names stay with the first name, as the matcher expects


@dataclass(slots=True)
class Unreadable:
    """Trait values a run could not use, by field: counted, with a few examples."""

    fields: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def add(self, field: str, profile_id: uuid.UUID, value: Any, reason: str) -> None:
        entry = self.fields.setdefault(field, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < MAX_UNREADABLE_EXAMPLES:
            entry["examples"].append({"profile_id": str(profile_id), "value": value, "reason": reason})


def _birthdate(profile_id: uuid.UUID, traits: Mapping[str, Any], unreadable: Unreadable | None):
    for key in BIRTHDATE_KEYS:
        raw = traits.get(key)
        if raw is None or raw == "":
            continue
        text = _text(raw)
        if text is None:
            if unreadable is not None:
                unreadable.add("birthdate", profile_id, raw, f"{key} is not text")
            continue
        if isinstance(raw, int) and len(text) != 8:  # 19560419 may arrive as a number; 1956 alone is no date
            text = ""
        try:
            return parse_birthdate(text)
        except UnreadableDate as exc:
            if unreadable is not None:
                unreadable.add("birthdate", profile_id, raw, str(exc))
    return None


def record_from_traits(
    profile_id: uuid.UUID, traits: Mapping[str, Any], unreadable: Unreadable | None = None
) -> PersonRecord | None:
    """The matcher's view of a profile, or None when no trait it compares is present.

    first_name/firstName and last_name/lastName, else ``name`` split at the last space (or
    "Last, First"); email; phone; postcode/zip/postal_code/postalCode; the street line is
    ``address`` (a string) or ``street``, after ``street_number``/``house_number`` when those
    are separate; a second line (``address_2``...); the town (``city``, ``town``, ``suburb``)
    and region (``state``, ``region``, ``county``...); a Segment ``address`` object contributes
    street, city, state and postalCode; a national id or customer number; the birth date in
    the forms :mod:`app.dedup.dates` reads (what it cannot read goes to ``unreadable``).
    """
    first, last = _first(traits, FIRST_NAME_KEYS), _first(traits, LAST_NAME_KEYS)
    if first is None and last is None and (full := _first(traits, NAME_KEYS)) is not None:
        first, last = _split_name(full)
    raw_address = traits.get("address")
    address_obj: Mapping[str, Any] = raw_address if isinstance(raw_address, Mapping) else {}
    street = _text(raw_address) or _first(address_obj, ("street", "line1")) or _first(traits, STREET_KEYS)
    number = _first(traits, HOUSE_NUMBER_KEYS)
    if number and street and not street.startswith(number):
        street = f"{number} {street}"
    record = PersonRecord(
        id=str(profile_id),
        first_name=first,
        last_name=last,
        email=_first(traits, EMAIL_KEYS),
        phone=_first(traits, PHONE_KEYS),
        postcode=_first(traits, POSTCODE_KEYS) or _first(address_obj, POSTCODE_KEYS),
        address=street,
        birthdate=_birthdate(profile_id, traits, unreadable),
        city=_first(traits, CITY_KEYS) or _first(address_obj, CITY_KEYS),
        state=_first(traits, STATE_KEYS) or _first(address_obj, STATE_KEYS),
        address2=_first(traits, ADDRESS2_KEYS) or _first(address_obj, ("line2", "street2")),
        national_id=_first(traits, NATIONAL_ID_KEYS),
    )
    if all(getattr(record, f) is None for f in PersonRecord.__slots__ if f != "id"):
        return None
    return record


# --- runs ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Counts:
    profiles_scanned: int = 0
    pairs_compared: int = 0
    candidates: int = 0
    auto_merged: int = 0
    merge_conflicts: int = 0
    already_decided: int = 0
    shared_identifier: int = 0
    skipped_blocks: int = 0


async def request_run(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    threshold: float | None,
    min_score: float,
    max_block_size: int,
    dry_run: bool,
) -> DedupRunPublic:
    """A run as the API starts it: done now when the workspace has at most
    :data:`MAX_SYNC_PROFILES` matchable profiles (the run comes back ``completed``), else
    queued for the worker (``queued``; follow it at ``GET /v1/dedup/runs/{id}``).

    The queued run and its job are written in the caller's transaction, so a request that
    rolls back leaves neither. The job is tracked by the job service under the run's id,
    which is where a failed run's reason is kept.
    """
    await workspace_service.get_workspace(session, workspace_id=workspace_id)
    conn = await raw_connection(session)
    matchable = await repository.count_profiles(
        conn, workspace_id=workspace_id, trait_keys=MATCHABLE_TRAITS, limit=MAX_SYNC_PROFILES + 1
    )
    if matchable <= MAX_SYNC_PROFILES:
        return await run_dedup(
            session, workspace_id=workspace_id, threshold=threshold, min_score=min_score,
            max_block_size=max_block_size, dry_run=dry_run, max_profiles=MAX_SYNC_PROFILES,
        )
    job = await job_service.submit(session, workspace_id=workspace_id, task=TASK_RUN, coalesce=False)
    run = await repository.insert_run(
        session, workspace_id=workspace_id, run_id=job.id,
        values={"status": "queued", "threshold": threshold, "min_score": min_score,
                "max_block_size": max_block_size, "dry_run": dry_run},
    )
    return run_public(run)


async def start_queued_run(session: AsyncSession, *, workspace_id: uuid.UUID, run_id: uuid.UUID) -> bool:
    """Mark a queued run ``running`` (committed on its own, so pollers see it while it works).

    False when the run no longer waits: finished, failed or deleted with its workspace. A
    run already ``running`` is taken again: its worker died and the queue handed the job on
    (the first attempt's transaction rolled back with it, so nothing of it was kept).
    """
    return await repository.set_run_status(
        session, workspace_id=workspace_id, run_id=run_id, status="running", only_if=("queued", "running")
    ) is not None


async def fail_run(session: AsyncSession, *, workspace_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """Mark a background run ``failed`` (the job service keeps the reason)."""
    await repository.set_run_status(
        session, workspace_id=workspace_id, run_id=run_id, status="failed", only_if=("queued", "running"), finish=True
    )


async def run_queued(session: AsyncSession, *, workspace_id: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
    """The work of a background run: :func:`run_dedup` with the parameters stored on the run."""
    run = await repository.get_run(session, workspace_id=workspace_id, run_id=run_id)
    if run is None:
        raise NotFound(f"No dedup run with id {run_id} in this workspace.")
    done = await run_dedup(
        session, workspace_id=workspace_id, threshold=run.threshold, min_score=run.min_score,
        max_block_size=run.max_block_size, dry_run=run.dry_run, run_id=run_id,
    )
    return {"run_id": str(done.id), **done.counts.model_dump()}


async def run_dedup(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    threshold: float | None,
    min_score: float,
    max_block_size: int,
    dry_run: bool,
    max_profiles: int | None = None,
    run_id: uuid.UUID | None = None,
) -> DedupRunPublic:
    """Find likely duplicates among the workspace's profiles, record them, merge the confident ones.

    ``threshold`` None never merges. A ``dry_run`` records the candidates and checks each
    merge it would make (identity limits included) without making it; its ``auto_merged``
    and ``merge_conflicts`` say what a real run would do. ``run_id``: a queued run to carry
    out (a background job), else a new run is recorded. More than ``max_profiles``
    matchable profiles (default :data:`MAX_PROFILES`) is a 422 ``dedup_too_large``.
    """
    if max_profiles is None:
        max_profiles = MAX_PROFILES
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    conn = await raw_connection(session)
    await repository.lock_runs(conn, workspace_id)
    if run_id is None:
        run = await repository.insert_run(
            session, workspace_id=workspace_id, run_id=uuid7(),
            values={"status": "running", "threshold": threshold, "min_score": min_score,
                    "max_block_size": max_block_size, "dry_run": dry_run},
        )
    else:
        found = await repository.set_run_status(session, workspace_id=workspace_id, run_id=run_id, status="running",
                                                only_if=("queued", "running"))
        if found is None:
            raise NotFound(f"No waiting dedup run with id {run_id} in this workspace.")
        run = found
    profiles = await repository.load_profiles(
        conn, workspace_id=workspace_id, trait_keys=MATCHABLE_TRAITS, limit=max_profiles + 1
    )
    if len(profiles) > max_profiles:
        raise DedupTooLarge(
            f"The workspace has more than {max_profiles:,} profiles with matchable traits; "
            + ("a run inside a request is limited to that many." if max_profiles < MAX_PROFILES
               else "a run is limited to that many (docs/DEDUP.md).")
        )
    # Reading a million trait documents takes tens of seconds of CPU: off the event loop, like
    # the matching, so the process keeps serving (and a worker keeps its job's heartbeat).
    records, traits_of, unreadable = await asyncio.to_thread(_records_of, profiles)
    del profiles
    decisions = [
        Decision(evidence, same) for evidence, same in await repository.reviewed_evidence(
            conn, workspace_id=workspace_id, reasons=(MERGED_ON_REVIEW, REJECTED_ON_REVIEW), limit=MAX_DECISIONS
        )
    ]
    # Matching is CPU-bound: run it off the event loop so the process keeps answering other
    # requests meanwhile.
    result = await asyncio.to_thread(
        find_candidates, records, min_score=min_score, max_block_size=max_block_size, decisions=decisions
    )
    counts = _Counts(profiles_scanned=len(records), pairs_compared=result.compared_pairs,
                     skipped_blocks=result.skipped_blocks)

    settings = identity_service.identity_settings_from(workspace.settings)
    pairs = await _without_shared_identifiers(
        conn, workspace_id=workspace_id, pairs=result.pairs, traits_of=traits_of, settings=settings
    )
    counts.shared_identifier = len(result.pairs) - len(pairs)
    recorded = await repository.upsert_candidates(
        conn, workspace_id=workspace_id, run_id=run.id,
        rows=[(uuid7(), uuid.UUID(p.left_id), uuid.UUID(p.right_id), p.score, p.evidence) for p in pairs],
    )
    counts.candidates = len(recorded)
    counts.already_decided = len(pairs) - len(recorded)

    if threshold is not None:
        confident = [p for p in pairs if p.score >= threshold]  # already best first
        decisions = await _auto_merge(
            session, workspace_id=workspace_id, pairs=confident, candidate_ids=recorded, threshold=threshold,
            dry_run=dry_run, workspace_settings=workspace.settings, counts=counts,
        )
        await repository.record_decisions(conn, workspace_id=workspace_id, decisions=decisions)

    run = await repository.finish_run(
        session, workspace_id=workspace_id, run_id=run.id,
        counts=dataclasses.asdict(counts), model=result.model, unreadable=unreadable.fields,
    )
    return run_public(run)


def _records_of(
    profiles: Sequence[tuple[uuid.UUID, Any]],
) -> tuple[list[PersonRecord], dict[uuid.UUID, dict[str, Any]], Unreadable]:
    """The matcher's records of loaded profiles, their identifier traits, what was unreadable.

    Only the traits the shared-identifier check reads are kept: at 1M profiles the whole
    trait documents are gigabytes the matching does not need."""
    unreadable = Unreadable()
    records: list[PersonRecord] = []
    traits_of: dict[uuid.UUID, dict[str, Any]] = {}
    for pid, raw in profiles:
        traits = repository.parse_traits(raw)
        traits_of[pid] = {k: traits[k] for k in IDENTIFIER_TRAITS if k in traits}
        if (record := record_from_traits(pid, traits, unreadable)) is not None:
            records.append(record)
    return records, traits_of, unreadable


async def _without_shared_identifiers(
    conn: Any,
    *,
    workspace_id: uuid.UUID,
    pairs: Sequence[CandidatePair],
    traits_of: Mapping[uuid.UUID, Mapping[str, Any]],
    settings: IdentitySettings,
) -> list[CandidatePair]:
    """Drop pairs whose profiles share a normalised identifier.

    Identity resolution owns those: an identifier maps to one profile, so two live profiles
    sharing one (by their identities, or by an e-mail/phone trait) are pairs it refused to
    link because of identity limits, and it recorded the conflict (/v1/identity/conflicts).
    Only the profiles in candidate pairs are looked up, in one query.
    """
    involved = {uuid.UUID(i) for p in pairs for i in (p.left_id, p.right_id)}
    identifiers = await repository.identifiers_of(conn, workspace_id=workspace_id, profile_ids=involved)
    for pid in involved:
        identifiers[pid] |= _trait_identifiers(traits_of.get(pid, {}), settings)
    return [p for p in pairs if not identifiers[uuid.UUID(p.left_id)] & identifiers[uuid.UUID(p.right_id)]]


def _trait_identifiers(traits: Mapping[str, Any], settings: IdentitySettings) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for type_ in IDENTIFIER_TRAITS:
        raw = traits.get(type_)
        if raw is None or raw == "":
            continue
        try:
            ident = normalize_identifier(type_, raw, settings)
        except InvalidIdentifier:
            continue
        if ident is not None:
            out.add((ident.type, ident.value))
    return out


async def _auto_merge(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    pairs: Sequence[CandidatePair],
    candidate_ids: Mapping[tuple[uuid.UUID, uuid.UUID], uuid.UUID],
    threshold: float,
    dry_run: bool,
    workspace_settings: Mapping[str, Any],
    counts: _Counts,
) -> list[tuple[uuid.UUID, str, str | None, uuid.UUID | None]]:
    """Merge the pairs (best first) and return the decision for each candidate.

    A profile absorbed earlier in the run is represented by its survivor, so a cluster of
    three records becomes one profile; a pair whose two sides already ended up in one
    profile is marked merged without a ledger entry of its own. A merge that identity
    limits refuse (two user_ids...) leaves the pair pending, with the reason.
    """
    survivor_of: dict[uuid.UUID, uuid.UUID] = {}

    def current(profile_id: uuid.UUID) -> uuid.UUID:
        while profile_id in survivor_of:
            profile_id = survivor_of[profile_id]
        return profile_id

    decisions: list[tuple[uuid.UUID, str, str | None, uuid.UUID | None]] = []
    for pair in pairs:
        a, b = uuid.UUID(pair.left_id), uuid.UUID(pair.right_id)
        candidate_id = candidate_ids.get((a, b))
        if candidate_id is None:  # rejected or merged before: a decision stands
            continue
        a, b = current(a), current(b)
        if a == b:
            counts.auto_merged += 1
            if dry_run:
                decisions.append((candidate_id, "pending", "dry run: would be joined through other pairs of this run", None))
            else:
                decisions.append((candidate_id, "merged", "joined through other pairs merged in this run", None))
            continue
        try:
            merged = await identity_service.manual_merge(
                session, workspace_id=workspace_id, profile_ids=[a, b], survivor_id=None, dry_run=dry_run,
                workspace_settings=workspace_settings, rule=MERGE_RULE,
                exempt_types=identity_service.dedup_joins_from(workspace_settings),
            )
        except (Conflict, NotFound) as exc:
            # Refused by identity limits, or the profiles changed since they were loaded
            # (merged or erased concurrently): a person has to look at it.
            counts.merge_conflicts += 1
            decisions.append((candidate_id, "pending", f"not merged automatically: {exc.detail}", None))
            continue
        counts.auto_merged += 1
        for absorbed in merged["absorbed_ids"]:
            survivor_of[absorbed] = merged["survivor_id"]
        if dry_run:
            decisions.append((candidate_id, "pending", f"dry run: would be merged (score >= threshold {threshold})"
                              + _joined_note(merged), None))
        else:
            merge_id = merged["merge_ids"][0] if merged["merge_ids"] else None
            decisions.append((candidate_id, "merged", f"merged automatically (score >= threshold {threshold})"
                              + _joined_note(merged), merge_id))
    return decisions


def _joined_note(merged: Mapping[str, Any]) -> str:
    if not merged.get("joined"):
        return ""
    type_, values = merged["joined"]
    return f"; joins {type_} {values} under the workspace's dedup_joins rule"


async def get_run(session: AsyncSession, *, workspace_id: uuid.UUID, run_id: uuid.UUID) -> DedupRunPublic:
    run = await repository.get_run(session, workspace_id=workspace_id, run_id=run_id)
    if run is None:
        raise NotFound(f"No dedup run with id {run_id} in this workspace.")
    return run_public(run, error=await _failure(session, run))


async def _failure(session: AsyncSession, run: DedupRun) -> str | None:
    """Why a background run failed: the error its job recorded (the job has the run's id)."""
    if run.status != "failed":
        return None
    try:
        job = await job_service.get_job(session, workspace_id=run.workspace_id, job_id=run.id, task_prefix=TASK_RUN)
    except NotFound:
        return None
    return job.error


async def list_runs(
    session: AsyncSession, *, workspace_id: uuid.UUID, cursor: str | None, limit: int
) -> tuple[list[DedupRunPublic], str | None]:
    before = _uuid(decode_cursor(cursor, 1)[0]) if cursor else None
    runs = await repository.list_runs(session, workspace_id=workspace_id, before=before, limit=limit + 1)
    next_cursor = encode_cursor(runs[limit - 1].id) if len(runs) > limit else None
    return [run_public(r, error=await _failure(session, r)) for r in runs[:limit]], next_cursor


def run_public(run: DedupRun, error: str | None = None) -> DedupRunPublic:
    return DedupRunPublic(
        id=run.id, status=run.status, threshold=run.threshold, min_score=run.min_score,  # type: ignore[arg-type]
        max_block_size=run.max_block_size, dry_run=run.dry_run,
        counts=DedupRunCounts(**{name: getattr(run, name) for name in DedupRunCounts.model_fields}),
        model=run.model, unreadable=run.unreadable or {}, error=error,
        created_at=run.created_at, finished_at=run.finished_at,
    )


# --- review ----------------------------------------------------------------------------------


async def list_candidates(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    run_id: uuid.UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[DedupCandidatePublic], str | None]:
    """Candidates, highest score first; ``run_id`` of another workspace is a 404, not an empty page."""
    if run_id is not None:
        await get_run(session, workspace_id=workspace_id, run_id=run_id)
    after = None
    if cursor:
        score, candidate_id = decode_cursor(cursor, 2)
        try:
            after = (float(score), uuid.UUID(candidate_id))
        except ValueError:
            raise _invalid_cursor() from None
    rows = await repository.list_candidates(
        session, workspace_id=workspace_id, run_id=run_id, status=status, after=after, limit=limit + 1
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(repr(rows[-1].score), rows[-1].id)  # repr: the float round-trips exactly
    return [DedupCandidatePublic.model_validate(r) for r in rows], next_cursor


async def _pending_candidate(session: AsyncSession, *, workspace_id: uuid.UUID, candidate_id: uuid.UUID) -> DedupCandidate:
    candidate = await repository.get_candidate(
        session, workspace_id=workspace_id, candidate_id=candidate_id, for_update=True
    )
    if candidate is None:
        raise NotFound(f"No dedup candidate with id {candidate_id} in this workspace.")
    if candidate.status != "pending":
        raise CandidateDecided(
            f"Candidate {candidate_id} was already {candidate.status}; only pending candidates can be decided."
        )
    return candidate


async def merge_candidate(
    session: AsyncSession, *, workspace_id: uuid.UUID, candidate_id: uuid.UUID
) -> DedupCandidatePublic:
    """Merge a reviewed pair through ``manual_merge`` (rule ``dedup``; ``split`` undoes it).

    Either side may have been merged into another profile since the run: the pair then
    stands for those profiles' survivors, and when both ended up in one profile there is
    nothing left to merge.
    """
    candidate = await _pending_candidate(session, workspace_id=workspace_id, candidate_id=candidate_id)
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    survivors = []
    for profile_id in (candidate.profile_a_id, candidate.profile_b_id):
        try:
            profile = await profile_service.resolve_profile(session, workspace_id=workspace_id, profile_id=profile_id)
        except NotFound:
            raise Conflict(
                f"Profile {profile_id} of candidate {candidate_id} no longer exists; reject the candidate instead.",
                code="profile_gone",
            ) from None
        survivors.append(profile.id)
    if survivors[0] == survivors[1]:
        row = await repository.decide_candidate(
            session, workspace_id=workspace_id, candidate_id=candidate_id, status="merged",
            reason="already one profile: merged since the run",
        )
        return DedupCandidatePublic.model_validate(row)
    try:
        merged = await identity_service.manual_merge(
            session, workspace_id=workspace_id, profile_ids=survivors, survivor_id=None, dry_run=False,
            workspace_settings=workspace.settings, rule=MERGE_RULE,
            exempt_types=identity_service.dedup_joins_from(workspace.settings),
        )
    except Conflict as exc:
        raise Conflict(f"Candidate {candidate_id} cannot be merged: {exc.detail}", code=exc.code) from exc
    row = await repository.decide_candidate(
        session, workspace_id=workspace_id, candidate_id=candidate_id, status="merged", reason=MERGED_ON_REVIEW,
        merge_id=merged["merge_ids"][0],
    )
    return DedupCandidatePublic.model_validate(row)


async def reject_candidate(
    session: AsyncSession, *, workspace_id: uuid.UUID, candidate_id: uuid.UUID
) -> DedupCandidatePublic:
    """Mark a pair as two different people; later runs will not propose it again."""
    await _pending_candidate(session, workspace_id=workspace_id, candidate_id=candidate_id)
    row = await repository.decide_candidate(
        session, workspace_id=workspace_id, candidate_id=candidate_id, status="rejected", reason=REJECTED_ON_REVIEW
    )
    return DedupCandidatePublic.model_validate(row)


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _invalid_cursor() from None


def _invalid_cursor() -> BadRequest:
    return BadRequest("The cursor is not valid; use `next_cursor` from a previous page.", code="invalid_cursor")
