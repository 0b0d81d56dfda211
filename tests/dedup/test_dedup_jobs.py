"""Large runs in the background: 202 with a queued run, the worker's job carries it out, a
poller sees queued -> running -> completed (or failed, with the reason).

The size limits are lowered for the test (a 100,001-profile workspace would take minutes to
build); what is checked is the path a workspace over the limit takes, against the real
database, with the job run as the worker runs it.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.dedup import jobs as dedup_jobs
from app.dedup import service
from app.jobs.registry import JobContext
from tests.conftest import WorkspaceKeys
from tests.dedup.test_dedup_api import JON, JON_TYPO, MARIA, MARIA_AGAIN, NEIL, all_candidates, person, send


async def queue_run(client: httpx.AsyncClient, ws: WorkspaceKeys, **body: Any) -> dict:
    resp = await client.post("/v1/dedup/runs", json=body, headers=ws.admin_headers)
    assert resp.status_code == 202, resp.text
    return resp.json()


async def get_run(client: httpx.AsyncClient, ws: WorkspaceKeys, run_id: str) -> dict:
    resp = await client.get(f"/v1/dedup/runs/{run_id}", headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def payload(ws: WorkspaceKeys, run: dict) -> dict[str, Any]:
    # What service.request_run queued (job_service.submit adds workspace_id and job_id).
    return {"workspace_id": ws.workspace_id, "job_id": run["id"]}


async def test_a_workspace_over_the_sync_limit_is_queued_and_the_job_finds_the_same_pairs(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, db, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("neil", **NEIL),
               person("maria-1", **MARIA), person("maria-2", **MARIA_AGAIN))
    # The same workspace under the limit: the synchronous answer the job must reproduce.
    sync = await client.post("/v1/dedup/runs", json={"dry_run": True, "threshold": 0.8}, headers=workspace.admin_headers)
    assert sync.status_code == 201 and sync.json()["status"] == "completed", sync.text
    expected = {(c["profile_a_id"], c["profile_b_id"], round(c["score"], 9)) for c in await all_candidates(client, workspace)}
    assert len(expected) == 2

    monkeypatch.setattr(service, "MAX_SYNC_PROFILES", 4)  # the workspace has 5 matchable profiles
    run = await queue_run(client, workspace, dry_run=True, threshold=0.8)
    assert run["status"] == "queued" and run["finished_at"] is None and run["error"] is None
    assert run["counts"]["profiles_scanned"] == 0 and run["model"] is None
    assert run["threshold"] == 0.8 and run["dry_run"] is True
    assert (await get_run(client, workspace, run["id"]))["status"] == "queued"
    listed = (await client.get("/v1/dedup/runs", headers=workspace.admin_headers)).json()["data"]
    assert [r["status"] for r in listed] == ["queued", "completed"]

    result = await dedup_jobs.run_dedup(JobContext(db=db, settings=settings), payload(workspace, run))
    assert result["run_id"] == run["id"] and result["profiles_scanned"] == 5

    done = await get_run(client, workspace, run["id"])
    assert done["status"] == "completed" and done["finished_at"] is not None and done["error"] is None
    assert done["counts"]["profiles_scanned"] == 5 and done["counts"]["candidates"] == 2
    assert done["counts"]["auto_merged"] == 2 and done["model"]["iterations"] >= 1
    found = await all_candidates(client, workspace, run_id=run["id"])
    assert {(c["profile_a_id"], c["profile_b_id"], round(c["score"], 9)) for c in found} == expected
    assert all(c["reason"].startswith("dry run: would be merged") for c in found)

    # The queue delivers a job again when its worker died: a finished run stays as it is.
    assert await dedup_jobs.run_dedup(JobContext(db=db, settings=settings), payload(workspace, run)) is None
    assert (await get_run(client, workspace, run["id"]))["finished_at"] == done["finished_at"]


async def test_the_request_queues_the_job_in_its_own_transaction(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run and its queue entry commit together: the job row carries the run's id."""
    from app.jobs import service as job_service

    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO))
    monkeypatch.setattr(service, "MAX_SYNC_PROFILES", 1)
    run = await queue_run(client, workspace)
    async with db.session() as session:
        job = await job_service.get_job(session, workspace_id=uuid.UUID(workspace.workspace_id),
                                        job_id=uuid.UUID(run["id"]), task_prefix=service.TASK_RUN)
    assert job.status == "queued" and job.queue_job_id is not None


async def test_a_failed_background_run_says_why(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, db, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await send(client, workspace, person("jon-web", **JON), person("jon-shop", **JON_TYPO), person("neil", **NEIL))
    monkeypatch.setattr(service, "MAX_SYNC_PROFILES", 1)
    monkeypatch.setattr(service, "MAX_PROFILES", 2)  # more than a run may scan at all
    run = await queue_run(client, workspace)
    with pytest.raises(service.DedupTooLarge):
        await dedup_jobs.run_dedup(JobContext(db=db, settings=settings), payload(workspace, run))
    failed = await get_run(client, workspace, run["id"])
    assert failed["status"] == "failed" and failed["finished_at"] is not None
    assert "more than 2 profiles" in failed["error"]
    assert failed["counts"]["candidates"] == 0
    assert await all_candidates(client, workspace) == []  # the failed run's work rolled back
    listed = (await client.get("/v1/dedup/runs", headers=workspace.admin_headers)).json()["data"]
    assert listed[0]["error"] == failed["error"]
