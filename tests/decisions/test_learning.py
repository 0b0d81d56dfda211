"""Learning: imported history, retraining that changes the ranking, model metrics."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from tests.conftest import WorkspaceKeys
from tests.decisions.helpers import decide, grant, offer, placement, send

NDJSON = {"Content-Type": "application/x-ndjson"}


async def import_lines(client: httpx.AsyncClient, ws: WorkspaceKeys, lines: list) -> httpx.Response:
    body = b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines)
    return await client.post("/v1/decisions/import", content=body, headers={**ws.admin_headers, **NDJSON})


async def test_retraining_learns_the_known_best_offer(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Segment x responds to B (60%) far more than to A (10%); segment y the other way round.
    Before training both get A (a higher prior); after, each gets its own best offer."""
    rng = random.Random(11)
    people = [(f"p{i}", "x" if i % 2 else "y") for i in range(120)]
    await send(client, workspace, *[{"type": "identify", "userId": u, "traits": {"segment": s, "age": 20 + i % 30}}
                                    for i, (u, s) in enumerate(people)])
    a = await offer(client, workspace, "A", prior_propensity=0.3)
    b = await offer(client, workspace, "B", prior_propensity=0.2)
    await placement(client, workspace)
    rate = {("x", "A"): 0.1, ("x", "B"): 0.6, ("y", "A"): 0.6, ("y", "B"): 0.1}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    lines = []
    for k in range(1600):
        user, seg = people[k % len(people)]
        arm = "A" if rng.random() < 0.5 else "B"
        outcomes = [{"type": "accept"}] if rng.random() < rate[(seg, arm)] else []
        lines.append({"identifier": {"type": "user_id", "value": user}, "offer": arm, "probability": 0.5,
                      "decided_at": (start + timedelta(minutes=k)).isoformat(), "outcomes": outcomes,
                      "features": {"segment": seg, "age": 20 + (k % len(people)) % 30}})
    lines.append(b"{not json")
    lines.append({"identifier": {"type": "user_id", "value": "nobody"}, "offer": "A", "probability": 0.5,
                  "decided_at": start.isoformat()})
    lines.append({"identifier": {"type": "user_id", "value": "p1"}, "offer": "A", "probability": 1.5,
                  "decided_at": start.isoformat()})
    resp = await import_lines(client, workspace, lines)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["imported"] == 1600
    assert [(r["line"], r["code"]) for r in result["rejected"]] == [(1601, "malformed_json"), (1602, "not_found"),
                                                                    (1603, "invalid_line")]

    lookup = {}
    for user, seg in people[:2]:
        r = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": user}, headers=workspace.admin_headers)
        lookup[seg] = r.json()["id"]
        await grant(client, workspace, lookup[seg], "personalization")
    before = {seg: (await decide(client, workspace, pid, explore=False))["offers"][0]["name"] for seg, pid in lookup.items()}
    assert before == {"x": "A", "y": "A"}

    resp = await client.post("/v1/models/train", params={"wait": "true", "target": "accept"}, headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["status"] == "done" and job["result"]["version"] == 1

    after = {seg: await decide(client, workspace, pid, explore=False) for seg, pid in lookup.items()}
    assert {seg: d["offers"][0]["name"] for seg, d in after.items()} == {"x": "B", "y": "A"}
    assert after["x"]["model_version"] == 1
    assert 0.4 < after["x"]["offers"][0]["propensity"] < 0.8  # calibrated near the true 60%

    models = (await client.get("/v1/models", headers=workspace.admin_headers)).json()
    assert [m["version"] for m in models] == [1] and models[0]["active"]
    holdout = models[0]["metrics"]["holdout"]
    assert holdout["auc"] > 0.7
    assert holdout["log_loss"] < holdout["base_rate_log_loss"]
    assert holdout["calibration_error"] < 0.15
    assert {v["kind"] for v in models[0]["metrics"]["offers"].values()} == {"logistic"}
    assert set(models[0]["metrics"]["offers"]) == {a["id"], b["id"]}

    # Re-running the same import with decision ids is idempotent.
    again = [{**line, "decision_id": f"0191d3e4-0000-7000-8000-{i:012d}"} for i, line in enumerate(lines[:3])]
    first = (await import_lines(client, workspace, again)).json()
    second = (await import_lines(client, workspace, again)).json()
    assert (first["imported"], second["imported"], second["duplicates"]) == (3, 0, 3)
    assert second["feedback"] == 0


async def test_import_needs_ndjson_and_write_scope(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post("/v1/decisions/import", content=b"{}", headers={**workspace.admin_headers,
                                                                              "Content-Type": "text/csv"})
    assert resp.status_code == 415
    resp = await client.post("/v1/decisions/import", content=b"{}", auth=workspace.write_auth, headers=NDJSON)
    assert resp.status_code in (401, 403)


async def test_train_in_background_job(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post("/v1/models/train", headers=workspace.admin_headers)
    assert resp.status_code == 202
    job = (await client.get(f"/v1/models/jobs/{resp.json()['id']}", headers=workspace.admin_headers)).json()
    assert job["status"] == "queued"
