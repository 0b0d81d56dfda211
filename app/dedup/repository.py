"""Every query of the dedup domain.

Single rows go through the ORM session; the bulk paths of a run (loading a workspace's
profiles, recording thousands of candidates and decisions) use the session's asyncpg
connection with array parameters, one statement each, like ingest does.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.dedup.models import DedupCandidate, DedupRun
from app.identity.models import IDENTIFIERS_OF_PROFILES

# Distinguishes the dedup advisory lock from identity's (app.identity.service.LOCK_NAMESPACE).
RUN_LOCK_NAMESPACE = 7_310_002


async def lock_runs(conn: Any, workspace_id: uuid.UUID) -> None:
    """One run at a time per workspace, until the transaction ends.

    Two overlapping runs would propose and merge the same pairs; serialising them is simpler
    than reconciling. Ingest never takes this lock, so a run does not hold up data intake.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2::text))", RUN_LOCK_NAMESPACE, str(workspace_id))


async def insert_run(
    session: AsyncSession, *, workspace_id: uuid.UUID, run_id: uuid.UUID, values: Mapping[str, Any]
) -> DedupRun:
    stmt = sa.insert(DedupRun).values(workspace_id=workspace_id, id=run_id, **values).returning(DedupRun)
    return (await session.execute(stmt, execution_options={"populate_existing": True})).scalar_one()


async def set_run_status(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    run_id: uuid.UUID,
    status: str,
    only_if: Sequence[str],
    finish: bool = False,
) -> DedupRun | None:
    """Move a run to ``status`` if it is in one of ``only_if``; None when it is not (or gone)."""
    values: dict[str, Any] = {"status": status}
    if finish:
        values["finished_at"] = sa.func.clock_timestamp()
    stmt = (
        sa.update(DedupRun)
        .where(DedupRun.workspace_id == workspace_id, DedupRun.id == run_id, DedupRun.status.in_(list(only_if)))
        .values(**values)
        .returning(DedupRun)
    )
    return (await session.execute(stmt, execution_options={"populate_existing": True})).scalar_one_or_none()


async def reviewed_evidence(
    conn: Any, *, workspace_id: uuid.UUID, reasons: Sequence[str], limit: int
) -> list[tuple[dict[str, Any], bool]]:
    """Evidence of the newest pairs people decided on (``reasons``), and whether they were one person."""
    rows = await conn.fetch(
        """SELECT evidence, status FROM dedup_candidate
           WHERE workspace_id = $1 AND status IN ('merged', 'rejected') AND reason = ANY($2::text[])
           ORDER BY decided_at DESC NULLS LAST LIMIT $3""",
        workspace_id, list(reasons), limit,
    )
    return [(_json(r["evidence"]), r["status"] == "merged") for r in rows]


async def finish_run(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    run_id: uuid.UUID,
    counts: Mapping[str, int],
    model: Mapping[str, Any] | None,
    unreadable: Mapping[str, Any],
) -> DedupRun:
    # clock_timestamp(), not now(): now() is the transaction's start, i.e. the run's created_at.
    stmt = (
        sa.update(DedupRun)
        .where(DedupRun.workspace_id == workspace_id, DedupRun.id == run_id)
        .values(status="completed", finished_at=sa.func.clock_timestamp(), model=model, unreadable=unreadable, **counts)
        .returning(DedupRun)
    )
    return (await session.execute(stmt, execution_options={"populate_existing": True})).scalar_one()


async def get_run(session: AsyncSession, *, workspace_id: uuid.UUID, run_id: uuid.UUID) -> DedupRun | None:
    return await session.get(DedupRun, (workspace_id, run_id), populate_existing=True)


async def list_runs(
    session: AsyncSession, *, workspace_id: uuid.UUID, before: uuid.UUID | None, limit: int
) -> list[DedupRun]:
    """Newest first; ids are uuid7, so the primary key index serves both order and cursor."""
    stmt = sa.select(DedupRun).where(DedupRun.workspace_id == workspace_id)
    if before is not None:
        stmt = stmt.where(DedupRun.id < before)
    stmt = stmt.order_by(DedupRun.id.desc()).limit(limit)
    return list((await session.execute(stmt, execution_options={"populate_existing": True})).scalars())


async def load_profiles(
    conn: Any, *, workspace_id: uuid.UUID, trait_keys: Sequence[str], limit: int
) -> list[tuple[uuid.UUID, Any]]:
    """Live profiles holding at least one of ``trait_keys``, in id order, at most ``limit``,
    with their traits as the driver returns them (:func:`parse_traits` reads them: a run
    does that off the event loop).

    Merged-away profiles are skipped: their traits already live on the survivor.
    """
    rows = await conn.fetch(
        """SELECT id, traits FROM profile
           WHERE workspace_id = $1 AND merged_into IS NULL AND traits ?| $2::text[]
           ORDER BY id LIMIT $3""",
        workspace_id, list(trait_keys), limit,
    )
    return [(r["id"], r["traits"]) for r in rows]


def parse_traits(raw: Any) -> dict[str, Any]:
    """A profile's traits as :func:`load_profiles` returned them, as a dict."""
    return _json(raw)


async def count_profiles(conn: Any, *, workspace_id: uuid.UUID, trait_keys: Sequence[str], limit: int) -> int:
    """How many profiles :func:`load_profiles` would load, counting no further than ``limit``."""
    return await conn.fetchval(
        """SELECT count(*) FROM (
               SELECT 1 FROM profile
               WHERE workspace_id = $1 AND merged_into IS NULL AND traits ?| $2::text[]
               LIMIT $3) AS matchable""",
        workspace_id, list(trait_keys), limit,
    )


async def identifiers_of(
    conn: Any, *, workspace_id: uuid.UUID, profile_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, set[tuple[str, str]]]:
    """The normalised identifiers (type, value) of each profile."""
    out: dict[uuid.UUID, set[tuple[str, str]]] = defaultdict(set)
    ids = list(profile_ids)
    if not ids:
        return out
    for r in await conn.fetch(
        IDENTIFIERS_OF_PROFILES, workspace_id, ids,
    ):
        out[r["profile_id"]].add((r["type"], r["value"]))
    return out


async def upsert_candidates(
    conn: Any,
    *,
    workspace_id: uuid.UUID,
    run_id: uuid.UUID,
    rows: Sequence[tuple[uuid.UUID, uuid.UUID, uuid.UUID, float, dict[str, Any]]],
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """Record ``(new_id, profile_a, profile_b, score, evidence)`` pairs for a run, in one statement.

    A pair already pending is refreshed and moves to this run; a pair already merged or
    rejected is left alone and not returned (that is how decisions are remembered).
    Returns the candidate id of every pair that is pending for this run.
    """
    if not rows:
        return {}
    ordered = sorted(rows, key=lambda r: (r[1], r[2]))  # a fixed order: concurrent writers cannot deadlock
    returned = await conn.fetch(
        """
        INSERT INTO dedup_candidate AS c (workspace_id, id, run_id, profile_a_id, profile_b_id, score, evidence)
        SELECT $1, v.id, $2, v.a, v.b, v.score, v.evidence::jsonb
        FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::float8[], $7::text[]) AS v(id, a, b, score, evidence)
        ON CONFLICT (workspace_id, profile_a_id, profile_b_id) DO UPDATE
            SET run_id = EXCLUDED.run_id, score = EXCLUDED.score, evidence = EXCLUDED.evidence, reason = NULL
            WHERE c.status = 'pending'
        RETURNING c.id, c.profile_a_id, c.profile_b_id
        """,
        workspace_id, run_id,
        [r[0] for r in ordered], [r[1] for r in ordered], [r[2] for r in ordered], [r[3] for r in ordered],
        [orjson.dumps(r[4]).decode() for r in ordered],
    )
    return {(r["profile_a_id"], r["profile_b_id"]): r["id"] for r in returned}


async def record_decisions(
    conn: Any,
    *,
    workspace_id: uuid.UUID,
    decisions: Sequence[tuple[uuid.UUID, str, str | None, uuid.UUID | None]],
) -> None:
    """Set ``(candidate_id, status, reason, merge_id)`` on pending candidates, in one statement."""
    if not decisions:
        return
    await conn.execute(
        """
        UPDATE dedup_candidate AS c
        SET status = v.status, reason = v.reason, merge_id = v.merge_id,
            decided_at = CASE WHEN v.status = 'pending' THEN NULL ELSE now() END
        FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[]) AS v(id, status, reason, merge_id)
        WHERE c.workspace_id = $1 AND c.id = v.id AND c.status = 'pending'
        """,
        workspace_id,
        [d[0] for d in decisions], [d[1] for d in decisions], [d[2] for d in decisions], [d[3] for d in decisions],
    )


async def get_candidate(
    session: AsyncSession, *, workspace_id: uuid.UUID, candidate_id: uuid.UUID, for_update: bool = False
) -> DedupCandidate | None:
    stmt = sa.select(DedupCandidate).where(DedupCandidate.workspace_id == workspace_id, DedupCandidate.id == candidate_id)
    if for_update:
        stmt = stmt.with_for_update()  # two reviewers deciding one pair: the second waits, then sees the decision
    return (await session.execute(stmt, execution_options={"populate_existing": True})).scalar_one_or_none()


async def decide_candidate(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    candidate_id: uuid.UUID,
    status: str,
    reason: str | None,
    merge_id: uuid.UUID | None = None,
) -> DedupCandidate:
    stmt = (
        sa.update(DedupCandidate)
        .where(DedupCandidate.workspace_id == workspace_id, DedupCandidate.id == candidate_id)
        .values(status=status, reason=reason, merge_id=merge_id, decided_at=sa.func.now())
        .returning(DedupCandidate)
    )
    return (await session.execute(stmt, execution_options={"populate_existing": True})).scalar_one()


async def list_candidates(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID,
    run_id: uuid.UUID | None,
    status: str | None,
    after: tuple[float, uuid.UUID] | None,
    limit: int,
) -> list[DedupCandidate]:
    """Highest score first, keyset on (score, id)."""
    stmt = sa.select(DedupCandidate).where(DedupCandidate.workspace_id == workspace_id)
    if run_id is not None:
        stmt = stmt.where(DedupCandidate.run_id == run_id)
    if status is not None:
        stmt = stmt.where(DedupCandidate.status == status)
    if after is not None:
        bound = sa.tuple_(sa.literal(after[0], sa.Double), sa.literal(after[1]))
        stmt = stmt.where(sa.tuple_(DedupCandidate.score, DedupCandidate.id) < bound)
    stmt = stmt.order_by(DedupCandidate.score.desc(), DedupCandidate.id.desc()).limit(limit)
    return list((await session.execute(stmt, execution_options={"populate_existing": True})).scalars())


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return dict(value or {})
