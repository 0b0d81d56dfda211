"""Privacy requests: access exports and erasures, suppression, event retention.

A request is stored `pending` and processed by a job (`privacy.process`) or, with
`wait=true`, inside the request that made it. Processing finds the person from one of their
identifiers, across merged profiles, then:

- access: gathers every row of every table that points at the person's profiles (found from
  the database catalogue, app/privacy/catalog.py) into one JSON document;
- erasure: in one transaction, under the workspace's exclusive identity lock and with
  `SET LOCAL clientele.erasure = 'on'` (which append-only tables accept as the one reason to
  delete), deletes those rows everywhere, the idempotency records that mention the person,
  and the identity cache's trace of them; records a suppression (keyed hash) per identifier.

The request row keeps its audit trail and a keyed hash of the identifier; the identifier
itself is dropped once the request is processed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core import idempotency
from app.core.db import Database, raw_connection, standalone_session
from app.identity import cache as identity_cache
from app.identity import service as identity_service
from app.identity.normalize import IdentitySettings, normalize_identifier
from app.identity.normalize import InvalidIdentifier as BadIdentifier
from app.jobs import queue
from app.privacy import catalog, repository
from app.privacy.errors import ExportNotReady, InvalidIdentifier, PrivacyRequestNotFound, SuppressionNotFound
from app.privacy.hashing import identifier_hash, identifier_hashes
from app.privacy.models import PrivacyExport, PrivacyRequest, Suppression
from app.segments import repository as segment_repository
from app.workspaces import service as workspace_service

log = logging.getLogger("clientele.privacy")

TASK_PROCESS = "privacy.process"
EXPORT_FORMAT = "clientele.access-export/1"
# The privacy domain's own document store: an export never contains earlier exports.
NOT_EXPORTED = frozenset({"privacy_export"})


def _now() -> datetime:
    return datetime.now(UTC)


def _audit(request: PrivacyRequest, action: str, **detail: Any) -> None:
    entry = {"at": _now().isoformat(), "action": action}
    if detail:
        entry["detail"] = detail
    request.audit = [*(request.audit or []), entry]


async def _identity_settings(session: AsyncSession, workspace_id: uuid.UUID) -> IdentitySettings:
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    return identity_service.identity_settings_from(workspace.settings)


def _normalize(type_: str, value: str, settings: IdentitySettings) -> tuple[str, str]:
    try:
        ident = normalize_identifier(type_, value, settings)
    except BadIdentifier as exc:
        raise InvalidIdentifier(f"The identifier is not usable: {exc.reason}.") from None
    if ident is None:
        raise InvalidIdentifier(
            f"The {type_} given is empty or a placeholder value (such as 'null' or 'unknown'); it identifies no one."
        )
    return ident.type, ident.value


# --- requests --------------------------------------------------------------------------------

async def create_request(
    session: AsyncSession, *, workspace_id: uuid.UUID, type_: str, identifier_type: str, identifier_value: str,
    wait: bool = False,
) -> PrivacyRequest:
    """Store a request (normalising its identifier as ingest does) and queue its processing,
    or process it now with `wait`."""
    settings = await _identity_settings(session, workspace_id)
    norm_type, norm_value = _normalize(identifier_type, identifier_value, settings)
    request = PrivacyRequest(
        workspace_id=workspace_id, type=type_, status="pending", identifier_type=norm_type,
        identifier_value=norm_value, identifier_hash=identifier_hash(workspace_id, norm_type, norm_value),
    )
    _audit(request, "received", type=type_, identifier_type=norm_type)
    await repository.insert_request(session, request)
    if wait:
        await _start(session, request)
        await _process(session, request)
        return request
    await queue.enqueue(
        session, task=TASK_PROCESS, payload={"workspace_id": str(workspace_id), "request_id": str(request.id)},
        dedupe_key=f"{TASK_PROCESS}:{request.id}",
    )
    _audit(request, "queued")
    await session.flush()
    return request


async def get_request(session: AsyncSession, *, workspace_id: uuid.UUID, request_id: uuid.UUID) -> PrivacyRequest:
    request = await repository.get_request(session, workspace_id, request_id)
    if request is None:
        raise PrivacyRequestNotFound(f"No privacy request with id {request_id} in this workspace.")
    return request


async def list_requests(
    session: AsyncSession, *, workspace_id: uuid.UUID, limit: int, before: uuid.UUID | None = None
) -> list[PrivacyRequest]:
    return await repository.list_requests(session, workspace_id, limit=limit, before=before)


async def get_export(session: AsyncSession, *, workspace_id: uuid.UUID, request_id: uuid.UUID) -> dict[str, Any]:
    request = await get_request(session, workspace_id=workspace_id, request_id=request_id)
    if request.type != "access":
        raise ExportNotReady(f"Request {request_id} is an {request.type} request; only access requests have an export.")
    if request.status != "completed":
        raise ExportNotReady(f"Request {request_id} is {request.status}; its export exists once it is completed.")
    export = await repository.get_export(session, workspace_id, request_id)
    if export is None:
        raise ExportNotReady(
            f"Request {request_id} found no data about the person, or its export was deleted by a later erasure."
        )
    return export.document


async def _start(session: AsyncSession, request: PrivacyRequest) -> None:
    request.status = "processing"
    request.started_at = _now()
    _audit(request, "processing")
    session.add(request)
    await session.flush()


async def _process(session: AsyncSession, request: PrivacyRequest) -> None:
    """Do the request's work in the session's transaction and mark it completed."""
    if request.identifier_value is None:
        # An erasure of the same person ran first and dropped the identifier.
        result: dict[str, Any] = {"found": False, "reason": "the person was erased by an earlier request"}
    elif request.type == "access":
        result = await _access(session, request)
    else:
        result = await _erase(session, request)
    request.status = "completed"
    request.finished_at = _now()
    request.result = result
    request.identifier_value = None  # only the keyed hash stays
    _audit(request, "completed", **{k: v for k, v in result.items() if k != "rows"})
    session.add(request)
    await session.flush()


async def process_request(db: Database, *, workspace_id: uuid.UUID, request_id: uuid.UUID) -> str:
    """The job: mark it processing (committed, so clients see it), do the work in a second
    transaction, or record the failure in a third. A retried job finishes what is unfinished."""
    async with standalone_session(db) as session:
        request = await repository.get_request(session, workspace_id, request_id, for_update=True)
        if request is None or request.status in ("completed", "failed"):
            return request.status if request is not None else "missing"
        await _start(session, request)
    try:
        async with standalone_session(db) as session:
            request = await repository.get_request(session, workspace_id, request_id, for_update=True)
            await _process(session, request)
        return "completed"
    except Exception as exc:
        log.exception("privacy request failed", extra={"request_id": str(request_id)})
        async with standalone_session(db) as session:
            request = await repository.get_request(session, workspace_id, request_id, for_update=True)
            request.status = "failed"
            request.finished_at = _now()
            # The exception's class only: a database message could quote the identifier.
            request.error = f"processing failed ({type(exc).__name__}); the request can be submitted again"
            _audit(request, "failed", error=type(exc).__name__)
            session.add(request)
        return "failed"


# --- access ----------------------------------------------------------------------------------

def _values(person: repository.Person) -> list[str]:
    return sorted({v for _, value, raw in person.identifiers for v in (value, raw)})


async def build_export(session: AsyncSession, *, workspace_id: uuid.UUID, person: repository.Person,
                       request_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Everything held about the person: every row of every table that points at one of their
    profiles (or their merges), table by table, plus a summary at the top."""
    conn = await raw_connection(session)
    tables: dict[str, list[Any]] = {}
    for table in await catalog.personal_tables(session):
        if table.name in NOT_EXPORTED:
            continue
        rows = await repository.select_rows(conn, table, workspace_id, person, _values(person))
        if rows:
            tables[table.name] = rows
    profiles = tables.get(catalog.PROFILE_TABLE, [])
    root = next((p for p in profiles if p.get("id") == str(person.profile_id)), {})
    computed = {r["name"]: r["value"] for r in tables.get("computed_trait_value", [])
                if r.get("profile_id") == str(person.profile_id)}
    return {
        "format": EXPORT_FORMAT,
        "generated_at": _now().isoformat(),
        "workspace_id": str(workspace_id),
        "request_id": str(request_id) if request_id else None,
        "profile_id": str(person.profile_id),
        "profile_ids": [str(p) for p in person.profile_ids],
        "identifiers": [{"type": t, "value": v, "raw": r} for t, v, r in person.identifiers],
        "traits": root.get("traits", {}),
        "computed_traits": computed,
        "counts": {name: len(rows) for name, rows in tables.items()},
        "tables": tables,
    }


async def _access(session: AsyncSession, request: PrivacyRequest) -> dict[str, Any]:
    conn = await raw_connection(session)
    person = await repository.find_person(conn, request.workspace_id, request.identifier_type, request.identifier_value)
    if person is None:
        return {"found": False}
    document = await build_export(session, workspace_id=request.workspace_id, person=person, request_id=request.id)
    await repository.insert_export(session, PrivacyExport(
        workspace_id=request.workspace_id, request_id=request.id, profile_id=person.profile_id, document=document,
    ))
    return {"found": True, "profiles": len(person.profile_ids), "tables": document["counts"]}


# --- erasure ---------------------------------------------------------------------------------

async def erase_person(session: AsyncSession, *, workspace_id: uuid.UUID, identifier_type: str,
                       identifier_value: str, request_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Delete everything held about the person with this (normalised) identifier, in the
    session's transaction, and suppress their identifiers. Returns what was deleted, by table."""
    # First, before the workspace's lock (so ingest is not held while it waits): every segment's
    # refresh lock. A refresh that read the person before this erasure commits finishes first,
    # and none starts until it has: no membership of the person is written after it (memberships
    # have no foreign key to profiles, see migration 0019).
    await segment_repository.lock_all_segments(session, workspace_id)
    conn = await raw_connection(session)
    await conn.execute("SET LOCAL clientele.erasure = 'on'")
    # Exclusive: no ingest batch is between its look-up and its commit while the person goes,
    # and every later batch sees the suppressions (ingest checks them under the shared lock).
    await identity_service.lock_workspace(conn, workspace_id, exclusive=True)
    requested = identifier_hash(workspace_id, identifier_type, identifier_value)
    person = await repository.find_person(conn, workspace_id, identifier_type, identifier_value)
    entries: list[tuple[str, bytes]] = [(identifier_type, requested)]
    rows: dict[str, int] = {}
    idempotency_records = 0
    if person is not None:
        entries += list(zip(
            [t for t, _, _ in person.identifiers],
            identifier_hashes(workspace_id, [(t, v) for t, v, _ in person.identifiers]),
            strict=True,
        ))
        values = _values(person)
        tables = repository.children_first(await catalog.personal_tables(session), await repository.foreign_keys(conn))
        for table in tables:
            n = await repository.delete_rows(conn, table, workspace_id, person, values)
            if n:
                rows[table.name] = n
        idempotency_records = await idempotency.forget_mentioning(
            conn, workspace_id=workspace_id, needles=[str(p) for p in person.profile_ids] + values,
        )
        await identity_cache.erased(conn, workspace_id, person.profile_ids)
    new = await repository.insert_suppressions(conn, workspace_id, request_id, entries)
    await repository.forget_request_identifiers(conn, workspace_id, [h for _, h in entries])
    await _mark_suppressions(session, workspace_id, True)
    return {
        "found": person is not None,
        "profiles": len(person.profile_ids) if person else 0,
        "rows_deleted": sum(rows.values()),
        "rows": rows,
        "idempotency_records": idempotency_records,
        "suppressed_identifiers": len({h for _, h in entries}),
        "new_suppressions": new,
    }


async def _erase(session: AsyncSession, request: PrivacyRequest) -> dict[str, Any]:
    return await erase_person(
        session, workspace_id=request.workspace_id, identifier_type=request.identifier_type,
        identifier_value=request.identifier_value, request_id=request.id,
    )


async def _mark_suppressions(session: AsyncSession, workspace_id: uuid.UUID, present: bool) -> None:
    """Keep the workspace's hint that ingest must check suppressions in step."""
    workspace = await workspace_service.get_workspace(session, workspace_id=workspace_id)
    section = dict((workspace.settings or {}).get("privacy") or {})
    if bool(section.get("suppressions")) == present:
        return
    section["suppressions"] = present
    await workspace_service.update_settings_section(session, workspace_id=workspace_id, section="privacy", value=section)


# --- suppressions ----------------------------------------------------------------------------

async def list_suppressions(
    session: AsyncSession, *, workspace_id: uuid.UUID, identifier_type: str | None = None,
    identifier_value: str | None = None, limit: int = 100, before: uuid.UUID | None = None,
) -> list[Suppression]:
    """The workspace's suppressions, newest first; with an identifier, the one matching it."""
    hashed = None
    if identifier_type is not None or identifier_value is not None:
        if identifier_type is None or identifier_value is None:
            raise InvalidIdentifier("Give both identifier_type and identifier_value to look a suppression up.")
        settings = await _identity_settings(session, workspace_id)
        hashed = identifier_hash(workspace_id, *_normalize(identifier_type, identifier_value, settings))
    return await repository.list_suppressions(session, workspace_id, identifier_hash=hashed, limit=limit, before=before)


async def lift_suppression(session: AsyncSession, *, workspace_id: uuid.UUID, suppression_id: uuid.UUID) -> Suppression:
    """Let the identifier in again (the person came back and asked to be a customer)."""
    row = await repository.delete_suppression(session, workspace_id, suppression_id)
    if row is None:
        raise SuppressionNotFound(f"No suppression with id {suppression_id} in this workspace.")
    if row.request_id is not None:
        request = await repository.get_request(session, workspace_id, row.request_id, for_update=True)
        if request is not None:
            _audit(request, "suppression_lifted", suppression_id=str(suppression_id),
                   identifier_type=row.identifier_type)
            session.add(request)
    if not await repository.any_suppression(session, workspace_id):
        await _mark_suppressions(session, workspace_id, False)
    await session.flush()
    return row


# --- retention -------------------------------------------------------------------------------

def retention_days(workspace_settings: dict | None) -> int | None:
    return ((workspace_settings or {}).get("privacy") or {}).get("event_retention_days")


async def apply_retention(
    db: Database, *, workspace_id: uuid.UUID, days: int, batch_size: int, now: datetime | None = None
) -> int:
    """Delete the workspace's events older than `days`, `batch_size` at a time, each batch in
    its own short transaction (rows locked by ingest or a merge are skipped and taken later)."""
    cutoff = (now or _now()) - timedelta(days=days)
    total = 0
    while True:
        async with standalone_session(db) as session:
            deleted = await repository.delete_expired_events(await raw_connection(session), workspace_id, cutoff,
                                                             batch_size)
        total += deleted
        if deleted < batch_size:
            return total


async def apply_all_retention(db: Database, *, batch_size: int, now: datetime | None = None) -> dict[str, int]:
    async with standalone_session(db) as session:
        workspaces = [(w.id, retention_days(w.settings)) for w in await workspace_service.list_workspaces(session)]
    done: dict[str, int] = {}
    for workspace_id, days in workspaces:
        if days:
            done[str(workspace_id)] = await apply_retention(
                db, workspace_id=workspace_id, days=days, batch_size=batch_size, now=now
            )
    return done
