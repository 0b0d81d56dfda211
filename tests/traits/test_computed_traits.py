"""Computed traits over the API: definitions, windows and aggregations, built-ins, RFM, refresh
jobs (inline, queued, in the worker), incremental refresh, auth and workspace isolation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from app.core.db import Database
from app.jobs.registry import JobContext, JobRegistry
from app.jobs.worker import Worker, domain_jobs
from app.traits import jobs as trait_jobs
from app.traits import service as trait_service
from tests.conftest import ROOT, WorkspaceKeys, create_workspace_via_api, make_client

PROBLEM = "application/problem+json"
NOW = datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def track(user: str, event: str, days_ago: float, properties: dict[str, Any] | None = None, *, mid: str) -> dict:
    return {"type": "track", "userId": user, "event": event, "messageId": mid,
            "timestamp": iso(NOW - timedelta(days=days_ago)), "properties": properties or {}}


async def send(client: httpx.AsyncClient, ws: WorkspaceKeys, batch: list[dict]) -> None:
    resp = await client.post("/v1/batch", json={"batch": batch}, auth=ws.write_auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["rejected"] == [], resp.text


async def profile_ids(client: httpx.AsyncClient, ws: WorkspaceKeys) -> dict[str, str]:
    """userId -> profile id, from the workspace's events."""
    out: dict[str, str] = {}
    cursor = None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/events", params=params, headers=ws.admin_headers)).json()
        out |= {e["user_id"]: e["profile_id"] for e in page["data"] if e["user_id"]}
        if not (cursor := page["next_cursor"]):
            return out


async def define(client: httpx.AsyncClient, ws: WorkspaceKeys, **body: Any) -> dict:
    resp = await client.post("/v1/computed-traits", json=body, headers=ws.admin_headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def refresh_now(client: httpx.AsyncClient, ws: WorkspaceKeys) -> dict:
    resp = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["status"] == "done", job
    return job


async def traits_of(client: httpx.AsyncClient, ws: WorkspaceKeys, profile_id: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/profiles/{profile_id}/computed-traits", headers=ws.admin_headers)
    assert resp.status_code == 200, resp.text
    return {name: v["value"] for name, v in resp.json()["computed_traits"].items()}


# ----------------------------------------------------------------- windows, aggregations


WINDOWED = [
    # (name, aggregation, property, window_days)
    ("purchases", "count", None, None),
    ("purchases_30d", "count", None, 30),
    ("priced", "count", "price", None),
    ("spent", "sum", "price", None),
    ("spent_30d", "sum", "price", 30),
    ("avg_price", "avg", "price", None),
    ("min_price", "min", "price", None),
    ("min_price_30d", "min", "price", 30),
    ("max_price", "max", "price", None),
    ("max_price_30d", "max", "price", 30),
    ("first_price", "first", "price", None),
    ("first_price_30d", "first", "price", 30),
    ("last_price", "last", "price", None),
    ("top_category", "most_frequent", "category", None),
    ("top_category_30d", "most_frequent", "category", 30),
    ("categories", "distinct", "category", None),
    ("categories_30d", "distinct", "category", 30),
]


async def test_aggregations_over_windows(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, [
        track("alice", "Purchase", 400, {"price": 100, "category": "garden"}, mid="a1"),
        track("alice", "Purchase", 60, {"price": 40, "category": "books"}, mid="a2"),
        track("alice", "Purchase", 10, {"price": 10, "category": "books"}, mid="a3"),
        track("alice", "Purchase", 5, {"price": "25.5", "category": "music"}, mid="a4"),  # numeric string
        track("alice", "Purchase", 2, {"price": "n/a", "category": "books"}, mid="a5"),  # not a number
        track("alice", "Purchase", 1, {"category": None}, mid="a6"),  # no price, null category
        track("alice", "Viewed", 1, {"price": 999, "category": "other"}, mid="a7"),  # another event
        track("bob", "Purchase", 60, {"price": 7, "category": "toys"}, mid="b1"),
    ])
    for name, aggregation, prop, window in WINDOWED:
        await define(client, workspace, name=name, aggregation=aggregation, event="Purchase",
                     **({"property": prop} if prop else {}), window_days=window)
    job = await refresh_now(client, workspace)
    assert job["result"]["definitions"] == len(WINDOWED) and job["result"]["mode"] == "full"

    ids = await profile_ids(client, workspace)
    alice = await traits_of(client, workspace, ids["alice"])
    assert {k: alice[k] for k, *_ in WINDOWED} == {
        "purchases": 6, "purchases_30d": 4, "priced": 5,
        "spent": 175.5, "spent_30d": 35.5, "avg_price": 43.875,
        "min_price": 10, "min_price_30d": 10, "max_price": 100, "max_price_30d": 25.5,
        "first_price": 100, "first_price_30d": 10, "last_price": "n/a",
        "top_category": "books", "top_category_30d": "books", "categories": 3, "categories_30d": 2,
    }
    bob = await traits_of(client, workspace, ids["bob"])
    assert {k: bob.get(k) for k in ("purchases", "spent", "first_price", "categories")} == {
        "purchases": 1, "spent": 7, "first_price": 7, "categories": 1,
    }
    # Nothing in the last 30 days: no value rather than a made-up zero.
    assert not any(k in bob for k, *_ in WINDOWED if k.endswith("_30d"))


async def test_values_say_when_they_were_computed_and_follow_the_profile(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, [track("carol", "Order Completed", 3, {"revenue": 20}, mid="c1")])
    await define(client, workspace, name="orders_7d", aggregation="count", event="Order Completed", window_days=7)
    job = await refresh_now(client, workspace)
    pid = (await profile_ids(client, workspace))["carol"]
    profile = (await client.get(f"/v1/profiles/{pid}", headers=workspace.admin_headers)).json()
    computed = profile["computed_traits"]
    assert computed["orders_7d"]["value"] == 1 and computed["order_count"]["value"] == 1
    # One refresh, one stamp.
    stamps = {datetime.fromisoformat(v["computed_at"]) for v in computed.values()}
    assert stamps == {datetime.fromisoformat(job["result"]["computed_at"])}
    assert datetime.fromisoformat(job["started_at"]) <= datetime.fromisoformat(job["finished_at"])


# ------------------------------------------------------------------------ built-ins, RFM


async def test_order_built_ins_and_rfm_tiers(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    # Five customers, each a notch more recent, frequent and valuable than the last: one per quintile.
    plan = {  # customer: [(days ago, properties)]
        "c1": [(60, {"revenue": 10})],
        "c2": [(50, {"revenue": 20}), (40, {"total": 20})],  # `total` stands in for a missing revenue
        "c3": [(35, {"revenue": 30}), (25, {"revenue": 30}), (20, {"revenue": "30"})],
        "c4": [(19, {"revenue": 50})] * 3 + [(10, {"revenue": 50})],
        "c5": [(9, {"revenue": 100})] * 4 + [(1, {"revenue": 100})],
    }
    batch = [track(user, "Order Completed", days, props, mid=f"{user}-{i}")
             for user, orders in plan.items() for i, (days, props) in enumerate(orders)]
    batch.append(track("c1", "Order Refunded", 5, {"revenue": 999}, mid="noise"))
    await send(client, workspace, batch)
    await refresh_now(client, workspace)
    ids = await profile_ids(client, workspace)

    c2 = await traits_of(client, workspace, ids["c2"])
    assert (c2["order_count"], c2["total_revenue"], c2["average_order_value"]) == (2, 40, 20)
    assert c2["first_order_at"].endswith("Z")  # ISO 8601, UTC
    assert datetime.fromisoformat(c2["first_order_at"]) == NOW - timedelta(days=50)
    assert datetime.fromisoformat(c2["last_order_at"]) == NOW - timedelta(days=40)
    c3 = await traits_of(client, workspace, ids["c3"])
    assert (c3["order_count"], c3["total_revenue"], c3["average_order_value"]) == (3, 90, 30)

    expected = {
        "c1": ("111", "lost"),
        "c2": ("222", "hibernating"),
        "c3": ("333", "potential_loyalist"),
        "c4": ("444", "loyal"),
        "c5": ("555", "champions"),
    }
    for user, (code, tier) in expected.items():
        traits = await traits_of(client, workspace, ids[user])
        r, f, m = (int(c) for c in code)
        assert (traits["rfm_recency"], traits["rfm_frequency"], traits["rfm_monetary"]) == (r, f, m), user
        assert (traits["rfm_code"], traits["rfm_tier"]) == (code, tier), user


async def test_rfm_ties_share_a_score(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    # Ten one-order customers: ntile alone would spread them over F = 1..5.
    await send(client, workspace, [
        track(f"t{i}", "Order Completed", 1 + i, {"revenue": 10 * (i + 1)}, mid=f"t{i}") for i in range(10)
    ])
    await refresh_now(client, workspace)
    ids = await profile_ids(client, workspace)
    scores = [await traits_of(client, workspace, ids[f"t{i}"]) for i in range(10)]
    assert {s["rfm_frequency"] for s in scores} == {1}
    # Distinct values still use every quintile: t0 is the most recent and the cheapest.
    assert [s["rfm_recency"] for s in scores] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [s["rfm_monetary"] for s in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores[0]["rfm_tier"] == "new" and scores[9]["rfm_tier"] == "lost"


async def test_refresh_drops_values_that_no_longer_hold(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    await send(client, workspace, [track("dan", "Purchase", 1, {"price": 5}, mid="d1")])
    trait = await define(client, workspace, name="spent", aggregation="sum", event="Purchase", property="price")
    await refresh_now(client, workspace)
    pid = (await profile_ids(client, workspace))["dan"]
    assert (await traits_of(client, workspace, pid))["spent"] == 5
    # Redefining drops the old values at once; the next refresh computes the new definition.
    patched = await client.patch(f"/v1/computed-traits/{trait['id']}", json={"window_days": 2, "name": "spent_2d"},
                                 headers=workspace.admin_headers)
    assert patched.status_code == 200, patched.text
    assert "spent" not in await traits_of(client, workspace, pid)
    await refresh_now(client, workspace)
    assert (await traits_of(client, workspace, pid))["spent_2d"] == 5
    # Deleting the definition deletes its values.
    assert (await client.delete(f"/v1/computed-traits/{trait['id']}", headers=workspace.admin_headers)).status_code == 204
    assert "spent_2d" not in await traits_of(client, workspace, pid)


# ---------------------------------------------------------------------------- definitions


async def test_definition_crud(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    created = await define(client, workspace, name="orders_90d", aggregation="count", event="Order Completed", window_days=90)
    assert created | {"id": None, "created_at": None, "updated_at": None} == {
        "id": None, "name": "orders_90d", "aggregation": "count", "event": "Order Completed", "property": None,
        "window_days": 90, "created_at": None, "updated_at": None,
    }
    listed = (await client.get("/v1/computed-traits", headers=workspace.admin_headers)).json()
    assert [t["id"] for t in listed] == [created["id"]]
    one = await client.get(f"/v1/computed-traits/{created['id']}", headers=workspace.admin_headers)
    assert one.json() == created
    patched = await client.patch(f"/v1/computed-traits/{created['id']}",
                                 json={"aggregation": "sum", "property": "revenue", "window_days": None},
                                 headers=workspace.admin_headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["aggregation"], patched.json()["property"], patched.json()["window_days"]) == ("sum", "revenue", None)
    assert (await client.delete(f"/v1/computed-traits/{created['id']}", headers=workspace.admin_headers)).status_code == 204
    gone = await client.get(f"/v1/computed-traits/{created['id']}", headers=workspace.admin_headers)
    assert gone.status_code == 404 and gone.headers["content-type"] == PROBLEM


async def test_duplicate_name_is_409(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    first = await define(client, workspace, name="orders", aggregation="count", event="Order Completed")
    again = await client.post("/v1/computed-traits", json={"name": "orders", "aggregation": "count", "event": "X"},
                              headers=workspace.admin_headers)
    assert again.status_code == 409 and again.json()["code"] == "duplicate_name"
    other = await define(client, workspace, name="other", aggregation="count", event="X")
    renamed = await client.patch(f"/v1/computed-traits/{other['id']}", json={"name": first["name"]},
                                 headers=workspace.admin_headers)
    assert renamed.status_code == 409


@pytest.mark.parametrize(
    "body,pointer",
    [
        ({"name": "Orders90", "aggregation": "count", "event": "E"}, "/name"),
        ({"name": "orders__90", "aggregation": "count", "event": "E"}, "/name"),
        ({"name": "order_count", "aggregation": "count", "event": "E"}, "/name"),  # built-in
        ({"name": "x", "aggregation": "median", "event": "E"}, "/aggregation"),
        ({"name": "x", "aggregation": "sum", "event": "E"}, "/property"),
        ({"name": "x", "aggregation": "count", "event": ""}, "/event"),
        ({"name": "x", "aggregation": "count", "event": "E", "window_days": 0}, "/window_days"),
        ({"name": "x", "aggregation": "count", "event": "E", "window_days": "soon"}, "/window_days"),
        ({"name": "x", "aggregation": "count", "event": "E", "extra": 1}, "/extra"),
        ({"aggregation": "count", "event": "E"}, "/name"),
    ],
)
async def test_invalid_definitions_are_422_with_pointers(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, body: dict, pointer: str
) -> None:
    resp = await client.post("/v1/computed-traits", json=body, headers=workspace.admin_headers)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert [e["pointer"] for e in resp.json()["errors"]] == [pointer]


async def test_invalid_update_is_422_with_pointer(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    trait = await define(client, workspace, name="n", aggregation="count", event="E")
    for body, pointer in [({"aggregation": "avg"}, "/property"), ({"event": None}, "/event"), ({"name": "rfm_tier"}, "/name")]:
        resp = await client.patch(f"/v1/computed-traits/{trait['id']}", json=body, headers=workspace.admin_headers)
        assert resp.status_code == 422, resp.text
        assert [e["pointer"] for e in resp.json()["errors"]] == [pointer]


async def test_auth_and_scopes(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    body = {"name": "n", "aggregation": "count", "event": "E"}
    assert (await client.get("/v1/computed-traits")).status_code == 401
    write_key = {"Authorization": f"Bearer {workspace.write_key}"}
    assert (await client.get("/v1/computed-traits", headers=write_key)).status_code == 403
    key = (await client.post("/v1/keys", json={"name": "ro", "scopes": ["read"]}, headers=workspace.admin_headers)).json()
    reader = {"Authorization": f"Bearer {key['key']}"}
    assert (await client.get("/v1/computed-traits", headers=reader)).status_code == 200
    for method, path in [("POST", "/v1/computed-traits"), ("POST", "/v1/computed-traits/refresh"),
                         ("POST", "/v1/computed-traits/clv/fit")]:
        resp = await client.request(method, path, json=body if path == "/v1/computed-traits" else None, headers=reader)
        assert resp.status_code == 403, (path, resp.text)
    trait = await define(client, workspace, **body)
    assert (await client.delete(f"/v1/computed-traits/{trait['id']}", headers=reader)).status_code == 403
    assert (await client.get(f"/v1/computed-traits/{trait['id']}", headers=reader)).status_code == 200
    assert (await client.get("/v1/computed-traits/not-a-uuid", headers=reader)).status_code == 422
    assert (await client.get(f"/v1/computed-traits/jobs/{uuid.uuid4()}", headers=reader)).status_code == 404
    assert (await client.get(f"/v1/profiles/{uuid.uuid4()}/computed-traits", headers=reader)).status_code == 404


# ------------------------------------------------------------------------------ isolation


async def test_workspaces_never_see_each_other(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, [track("u1", "Order Completed", 1, {"revenue": 10}, mid="m1")])
    await send(client, other_workspace, [track("u1", "Order Completed", 1, {"revenue": 99}, mid="m1")])
    mine = await define(client, workspace, name="orders", aggregation="count", event="Order Completed")
    assert (await client.get("/v1/computed-traits", headers=other_workspace.admin_headers)).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(method, f"/v1/computed-traits/{mine['id']}", json={} if method == "PATCH" else None,
                                    headers=other_workspace.admin_headers)
        assert resp.status_code == 404, (method, resp.text)
    # The other workspace may reuse the name.
    await define(client, other_workspace, name="orders", aggregation="sum", event="Order Completed", property="revenue")

    job = await refresh_now(client, other_workspace)
    their_pid = (await profile_ids(client, other_workspace))["u1"]
    my_pid = (await profile_ids(client, workspace))["u1"]
    assert (await traits_of(client, other_workspace, their_pid))["orders"] == 99
    # Refreshing the other workspace computed nothing here.
    assert await traits_of(client, workspace, my_pid) == {}
    assert (await client.get(f"/v1/profiles/{their_pid}/computed-traits", headers=workspace.admin_headers)).status_code == 404
    assert (await client.get(f"/v1/computed-traits/jobs/{job['id']}", headers=workspace.admin_headers)).status_code == 404
    await refresh_now(client, workspace)
    assert (await traits_of(client, workspace, my_pid))["orders"] == 1
    assert (await traits_of(client, other_workspace, their_pid))["orders"] == 99


# ----------------------------------------------------------------------------------- jobs


async def test_queued_refresh_runs_as_a_job(app, client: httpx.AsyncClient, workspace: WorkspaceKeys, session) -> None:
    await send(client, workspace, [track("q", "Order Completed", 1, {"revenue": 12}, mid="q1")])
    resp = await client.post("/v1/computed-traits/refresh", headers=workspace.admin_headers)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] == "queued" and job["result"] is None
    # A second request while it waits is the same job.
    again = await client.post("/v1/computed-traits/refresh", headers=workspace.admin_headers)
    assert again.status_code == 202 and again.json()["id"] == job["id"]

    # The queue holds the job (pgqueuer's table, in this test's transaction); run it as the worker would.
    row = (await session.execute(sa.text(
        "SELECT entrypoint, payload FROM pgqueuer WHERE payload IS NOT NULL AND convert_from(payload, 'UTF8')::jsonb ->> 'job_id' = :id"
    ), {"id": job["id"]})).one()
    assert row.entrypoint == "traits.refresh"
    await trait_jobs.run_refresh(JobContext(db=app.state.db, settings=app.state.settings), orjson.loads(row.payload))

    done = (await client.get(f"/v1/computed-traits/jobs/{job['id']}", headers=workspace.admin_headers)).json()
    assert done["status"] == "done", done
    assert done["result"]["values_written"] > 0 and done["error"] is None
    pid = (await profile_ids(client, workspace))["q"]
    assert (await traits_of(client, workspace, pid))["total_revenue"] == 12
    # A re-delivered job (its worker died after finishing) does not run twice.
    assert await trait_jobs.run_refresh(JobContext(db=app.state.db, settings=app.state.settings),
                                        orjson.loads(row.payload)) is None


async def test_failed_job_reports_why(app, client: httpx.AsyncClient, workspace: WorkspaceKeys, monkeypatch) -> None:
    job = (await client.post("/v1/computed-traits/refresh", headers=workspace.admin_headers)).json()

    async def broken(*args: Any, **kwargs: Any) -> dict:
        raise RuntimeError("password=hunter2")  # internals must not reach the API

    monkeypatch.setattr(trait_service, "refresh", broken)
    ctx = JobContext(db=app.state.db, settings=app.state.settings)
    with pytest.raises(RuntimeError):
        await trait_jobs.run_refresh(ctx, {"workspace_id": workspace.workspace_id, "job_id": job["id"]})
    failed = (await client.get(f"/v1/computed-traits/jobs/{job['id']}", headers=workspace.admin_headers)).json()
    assert failed["status"] == "failed" and "RuntimeError" in failed["error"] and "hunter2" not in failed["error"]


async def test_incremental_refresh_is_coalesced(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session
) -> None:
    await send(client, workspace, [
        track("i1", "Order Completed", 1, {"revenue": 5}, mid="i1"),
        track("i2", "Order Completed", 2, {"revenue": 7}, mid="i2"),
    ])
    ids = await profile_ids(client, workspace)
    ws = uuid.UUID(workspace.workspace_id)
    # Ingest already marked them and queued the window's job; a storm of further batches
    # touching the same people adds no job.
    for n in range(5):
        await send(client, workspace, [track("i1", "Viewed", 3, mid=f"v1-{n}"), track("i2", "Viewed", 3, mid=f"v2-{n}")])
        await trait_service.enqueue_incremental_refresh(
            session, workspace_id=ws, profile_ids=[uuid.UUID(ids["i1"]), uuid.UUID(ids["i2"])]
        )
    jobs = (await session.execute(sa.text(
        "SELECT dedupe_key, payload FROM pgqueuer WHERE entrypoint = 'traits.incremental' AND dedupe_key LIKE :k"
    ), {"k": f"traits.incremental:{ws}:%"})).all()
    assert len(jobs) == 1
    dirty = (await session.execute(sa.text(
        "SELECT count(DISTINCT p) FROM computed_trait_dirty, unnest(profile_ids) AS p WHERE workspace_id = :ws"),
        {"ws": ws})).scalar()
    assert dirty == 2

    bucket = orjson.loads(jobs[0].payload)["bucket"]
    result = await trait_service.run_incremental_refresh(session, workspace_id=ws, up_to_bucket=bucket)
    assert (result["mode"], result["profiles"]) == ("incremental", 2)
    assert (await traits_of(client, workspace, ids["i1"]))["total_revenue"] == 5
    assert (await traits_of(client, workspace, ids["i2"]))["rfm_code"]
    # The backlog is consumed; running again is a no-op.
    assert (await trait_service.run_incremental_refresh(session, workspace_id=ws, up_to_bucket=bucket))["profiles"] == 0


async def dirty_profiles(session, ws: uuid.UUID) -> set[str]:
    rows = await session.execute(sa.text(
        "SELECT DISTINCT p FROM computed_trait_dirty, unnest(profile_ids) AS p WHERE workspace_id = :ws"), {"ws": ws})
    return {str(p) for p in rows.scalars()}


async def test_only_events_that_change_a_value_mark_their_profile(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session
) -> None:
    ws = uuid.UUID(workspace.workspace_id)
    await define(client, workspace, name="searches", aggregation="count", event="Products Searched")
    await send(client, workspace, [
        track("viewer", "Product Viewed", 1, mid="m1"),
        {"type": "page", "userId": "viewer", "name": "Home", "messageId": "m2"},
        track("buyer", "Order Completed", 1, {"revenue": 9}, mid="m3"),
        track("seeker", "Products Searched", 1, mid="m4"),
    ])
    ids = await profile_ids(client, workspace)
    # A view or a page view changes no computed value: no refresh for the viewer.
    assert await dirty_profiles(session, ws) == {ids["buyer"], ids["seeker"]}
    await session.execute(sa.text("DELETE FROM computed_trait_dirty WHERE workspace_id = :ws"), {"ws": ws})
    # A replayed order is a duplicate: nothing new, nothing marked.
    await send(client, workspace, [track("buyer", "Order Completed", 1, {"revenue": 9}, mid="m3"),
                                   track("viewer", "Product Viewed", 1, mid="m5")])
    assert await dirty_profiles(session, ws) == set()


async def value_rows(session, ws: uuid.UUID, profile_id: str) -> dict[str, tuple[Any, datetime]]:
    rows = await session.execute(sa.text(
        "SELECT name, value, computed_at FROM computed_trait_value WHERE workspace_id = :ws AND profile_id = :p"),
        {"ws": ws, "p": uuid.UUID(profile_id)})
    return {r.name: (r.value, r.computed_at) for r in rows}


async def test_refresh_writes_only_what_changed_and_drops_what_no_longer_holds(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session
) -> None:
    ws = uuid.UUID(workspace.workspace_id)
    await send(client, workspace, [track("erin", "Order Completed", 3, {"revenue": 10}, mid="e1")])
    pid = (await profile_ids(client, workspace))["erin"]
    first = await trait_service.refresh(session, workspace_id=ws, profile_ids=[uuid.UUID(pid)])
    before = await value_rows(session, ws, pid)
    assert first["values_written"] == len(before) == 10  # 5 order built-ins, 5 RFM scores

    # Nothing new: nothing rewritten, every value keeps the stamp of the refresh that computed it.
    again = await trait_service.refresh(session, workspace_id=ws, profile_ids=[uuid.UUID(pid)])
    assert (again["values_written"], again["values_removed"]) == (0, 0)
    assert await value_rows(session, ws, pid) == before

    # A second order changes the count, the revenue, the average and the last order; the first
    # order and the scores (erin is still the only customer) stay as they were.
    await send(client, workspace, [track("erin", "Order Completed", 1, {"revenue": 30}, mid="e2")])
    third = await trait_service.refresh(session, workspace_id=ws, profile_ids=[uuid.UUID(pid)])
    after = await value_rows(session, ws, pid)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"order_count", "total_revenue", "average_order_value", "last_order_at"}
    assert third["values_written"] == 4
    assert {after[n][1] for n in changed} == {datetime.fromisoformat(third["computed_at"])}
    assert after["total_revenue"][0] == 40

    # Scores of a model that no longer exists, and (in a full refresh) values no family owns,
    # no longer hold.
    await session.execute(sa.text(
        "INSERT INTO computed_trait_value (workspace_id, profile_id, name, value, computed_at) VALUES "
        "(:ws, :p, 'clv_365d', '12.5', now()), (:ws, :p, 'gone_definition', '1', now())"),
        {"ws": ws, "p": uuid.UUID(pid)})
    incremental = await trait_service.refresh(session, workspace_id=ws, profile_ids=[uuid.UUID(pid)])
    assert incremental["values_removed"] == 1
    assert set(await value_rows(session, ws, pid)) == set(before) | {"gone_definition"}
    full = await trait_service.refresh(session, workspace_id=ws)
    assert (full["values_written"], full["values_removed"]) == (0, 1)
    assert set(await value_rows(session, ws, pid)) == set(before)


async def test_a_merge_refreshes_both_profiles(client: httpx.AsyncClient, workspace: WorkspaceKeys, session) -> None:
    ws = uuid.UUID(workspace.workspace_id)
    anonymous_order = track("x", "Order Completed", 2, {"revenue": 10}, mid="mo1")
    del anonymous_order["userId"]
    anonymous_order["anonymousId"] = "anon-m"
    await send(client, workspace, [anonymous_order, track("merger", "Order Completed", 1, {"revenue": 5}, mid="mo2")])

    async def profile_of(type_: str, value: str) -> str:
        resp = await client.get("/v1/profiles/lookup", params={"type": type_, "value": value},
                                headers=workspace.admin_headers)
        assert resp.status_code == 200, resp.text
        return resp.json()["id"]

    revenue = {await profile_of("anonymous_id", "anon-m"): 10, await profile_of("user_id", "merger"): 5}
    before = set(revenue)
    assert len(before) == 2
    await trait_service.refresh(session, workspace_id=ws)
    assert [(await value_rows(session, ws, p))["order_count"][0] for p in before] == [1, 1]
    await session.execute(sa.text("DELETE FROM computed_trait_dirty WHERE workspace_id = :ws"), {"ws": ws})

    # The visitor identifies: one profile absorbs the other, and both are due a refresh.
    await send(client, workspace, [{"type": "identify", "userId": "merger", "anonymousId": "anon-m", "messageId": "mi"}])
    survivor = await profile_of("user_id", "merger")
    (absorbed,) = before - {survivor}
    assert await dirty_profiles(session, ws) == before
    bucket = (await session.execute(sa.text(
        "SELECT max(bucket) FROM computed_trait_dirty WHERE workspace_id = :ws"), {"ws": ws})).scalar()
    await trait_service.run_incremental_refresh(session, workspace_id=ws, up_to_bucket=bucket)
    assert (await value_rows(session, ws, survivor))["order_count"][0] == 2
    assert (await value_rows(session, ws, survivor))["total_revenue"][0] == 15
    assert await value_rows(session, ws, absorbed) == {}

    # Splitting the merge gives each profile its own order back, at the next refresh.
    split = await client.post(f"/v1/profiles/{absorbed}/split", headers=workspace.admin_headers)
    assert split.status_code == 200, split.text
    assert await dirty_profiles(session, ws) == before
    bucket = (await session.execute(sa.text(
        "SELECT max(bucket) FROM computed_trait_dirty WHERE workspace_id = :ws"), {"ws": ws})).scalar()
    await trait_service.run_incremental_refresh(session, workspace_id=ws, up_to_bucket=bucket)
    assert {p: (await value_rows(session, ws, p))["total_revenue"][0] for p in before} == revenue


async def test_a_job_lost_from_the_queue_is_not_reused(client: httpx.AsyncClient, workspace: WorkspaceKeys, session) -> None:
    first = (await client.post("/v1/computed-traits/refresh", headers=workspace.admin_headers)).json()
    await session.execute(sa.text("DELETE FROM pgqueuer WHERE entrypoint = 'traits.refresh'"))  # purged by hand
    second = (await client.post("/v1/computed-traits/refresh", headers=workspace.admin_headers)).json()
    assert second["id"] != first["id"] and second["status"] == "queued"
    lost = (await client.get(f"/v1/computed-traits/jobs/{first['id']}", headers=workspace.admin_headers)).json()
    assert lost["status"] == "failed" and "removed from the queue" in lost["error"]


def trait_schedules(settings):
    jobs = JobRegistry(settings)
    trait_jobs.register(jobs)
    return jobs.schedules


async def test_hourly_schedule_queues_each_workspace_once(
    app, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys, session
) -> None:
    (hourly,) = trait_schedules(app.state.settings)
    assert hourly.cron == "0 * * * *"
    ctx = JobContext(db=app.state.db, settings=app.state.settings)
    await hourly.run(ctx)
    await hourly.run(ctx)  # the next tick, while those still wait: nothing doubles
    keys = [f"traits.refresh_all:{w.workspace_id}" for w in (workspace, other_workspace)]
    queued = (await session.execute(sa.text(
        "SELECT convert_from(payload, 'UTF8')::jsonb ->> 'workspace_id' FROM pgqueuer "
        "WHERE entrypoint = 'traits.refresh' AND dedupe_key = ANY(:keys)"), {"keys": keys})).scalars().all()
    assert sorted(queued) == sorted([workspace.workspace_id, other_workspace.workspace_id])
    assert trait_schedules(app.state.settings.model_copy(update={"traits_refresh_cron": " "})) == []


async def test_old_job_history_is_pruned(app, workspace: WorkspaceKeys, session) -> None:
    old_job, fresh_job = uuid.uuid4(), uuid.uuid4()
    await session.execute(sa.text(
        "INSERT INTO job (workspace_id, id, task, status, created_at, finished_at) VALUES "
        "(:ws, :old, 'traits.refresh', 'done', now() - interval '40 days', now() - interval '40 days'), "
        "(:ws, :fresh, 'traits.refresh', 'done', now() - interval '2 days', now() - interval '2 days')"
    ), {"ws": workspace.workspace_id, "old": old_job, "fresh": fresh_job})
    await session.execute(sa.text(
        "INSERT INTO pgqueuer_log (job_id, status, priority, entrypoint, aggregated, created) "
        "VALUES (-1, 'successful', 0, 'test.prune', true, now() - interval '8 days')"
    ))
    await session.execute(sa.text(
        "INSERT INTO identity_change (workspace_id, profile_id, changed_at) VALUES "
        "(:ws, :old, now() - interval '2 hours'), (:ws, :fresh, now() - interval '5 minutes')"
    ), {"ws": workspace.workspace_id, "old": old_job, "fresh": fresh_job})
    ctx = JobContext(db=app.state.db, settings=app.state.settings)
    for prune in [s for s in domain_jobs(app.state.settings)[1] if s.name in ("jobs.prune", "identity.prune_log")]:
        await prune.run(ctx)
    changes = (await session.execute(sa.text("SELECT profile_id FROM identity_change WHERE workspace_id = :ws"),
                                     {"ws": workspace.workspace_id})).scalars().all()
    assert changes == [fresh_job]
    left = (await session.execute(sa.text("SELECT id FROM job WHERE workspace_id = :ws"),
                                  {"ws": workspace.workspace_id})).scalars().all()
    assert left == [fresh_job]
    assert (await session.execute(sa.text("SELECT count(*) FROM pgqueuer_log WHERE entrypoint = 'test.prune'"))).scalar() == 0


async def test_worker_runs_a_queued_refresh(committed_app, settings, engine) -> None:
    """The real thing: committed requests, pgqueuer's worker on its own connection."""
    worker = Worker(Database(engine), settings, schedules=[])
    await worker.start()
    try:
        async with make_client(committed_app) as client:
            ws = await create_workspace_via_api(client, "worker-co")
            await send(client, ws, [track("w", "Order Completed", 1, {"revenue": 3}, mid="w1")])
            resp = await client.post("/v1/computed-traits/refresh", headers=ws.admin_headers)
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            status = "queued"
            for _ in range(600):  # a bound, not a timing assertion
                status = (await client.get(f"/v1/computed-traits/jobs/{job_id}", headers=ws.admin_headers)).json()["status"]
                if status in ("done", "failed"):
                    break
                await asyncio.sleep(0.1)
            assert status == "done"
            pid = (await profile_ids(client, ws))["w"]
            assert (await traits_of(client, ws, pid))["order_count"] == 1
    finally:
        await worker.stop()
    assert not worker.running


# ------------------------------------------------------------------------------------ CLI


async def clientele(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "CLIENTELE_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "clientele"), *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_refresh_and_worker(committed_app, database_url: str) -> None:
    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "cli-traits")
        await send(client, ws, [track("k", "Order Completed", 1, {"revenue": 8}, mid="k1")])

        code, out, err = await clientele(database_url, "traits", "refresh", "-w", ws.workspace_id, "--json")
        assert code == 0, err
        done = json.loads(out)
        assert done["status"] == "done" and done["result"]["mode"] == "full"
        pid = (await profile_ids(client, ws))["k"]
        assert (await traits_of(client, ws, pid))["total_revenue"] == 8

        code, out, err = await clientele(database_url, "traits", "refresh", "-w", ws.workspace_id, "--background", "--json")
        assert code == 0, err
        queued = json.loads(out)
        assert queued["status"] == "queued"

        env = {**os.environ, "DATABASE_URL": database_url, "CLIENTELE_LOG_LEVEL": "WARNING",
               "CLIENTELE_TRAITS_REFRESH_CRON": ""}
        worker = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "clientele"), "worker", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            status = "queued"
            for _ in range(600):  # a bound, not a timing assertion
                status = (await client.get(f"/v1/computed-traits/jobs/{queued['job_id']}", headers=ws.admin_headers)).json()["status"]
                if status in ("done", "failed") or worker.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert status == "done"
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
            _, worker_err = await asyncio.wait_for(worker.communicate(), 60)
        assert worker.returncode == 0, worker_err.decode()

    code, _, err = await clientele(database_url, "traits", "refresh", "-w", str(uuid.uuid4()))
    assert code == 1 and "No workspace" in err
