"""Decisions: eligibility, validity, paused, caps, fallback, explain, the ledger, feedback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.decisions import router as decisions_router
from tests.conftest import WorkspaceKeys
from tests.decisions.helpers import decide, offer, person, placement, send


async def test_ranks_by_propensity_value_and_weight(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    await offer(client, workspace, "cheap", value=1, prior_propensity=0.2)  # 0.2
    best = await offer(client, workspace, "margin", value=5, prior_propensity=0.1)  # 0.5
    await offer(client, workspace, "weighted", value=1, weight=3, prior_propensity=0.1)  # 0.3
    await placement(client, workspace, max_offers=3)
    body = await decide(client, workspace, pid)
    assert [o["name"] for o in body["offers"]] == ["margin", "weighted", "cheap"]
    assert body["offers"][0]["offer_id"] == best["id"]
    assert body["offers"][0]["score"] == 0.5
    assert all(o["probability"] == 1.0 for o in body["offers"])  # exploration off: deterministic
    assert body["control"] is False


async def test_explain_names_every_exclusion(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1", plan="free", country="FR")
    await offer(client, workspace, "paused", paused=True)
    await offer(client, workspace, "expired", valid_until="2020-01-01T00:00:00Z")
    await offer(client, workspace, "future", valid_from="2999-01-01T00:00:00Z")
    await offer(client, workspace, "pro-only", eligibility={"and": [
        {"trait": "country", "op": "eq", "value": "FR"}, {"trait": "plan", "op": "eq", "value": "pro"}]})
    ok = await offer(client, workspace, "french", eligibility={"trait": "country", "op": "in", "value": ["FR", "BE"]})
    await offer(client, workspace, "email-only", channels=["email"])  # another channel: not a candidate
    await placement(client, workspace, max_offers=5)
    body = await decide(client, workspace, pid, explain=True)
    assert [o["offer_id"] for o in body["offers"]] == [ok["id"]]
    reasons = {e["name"]: e for e in body["exclusions"]}
    assert set(reasons) == {"paused", "expired", "future", "pro-only"}
    assert reasons["paused"]["reason"] == "paused"
    assert reasons["expired"]["reason"] == reasons["future"]["reason"] == "outside_validity"
    assert reasons["pro-only"]["reason"] == "not_eligible"
    assert reasons["pro-only"]["rule_nodes"] == ["/and/1"]  # the country matched; the plan did not
    # Without explain the answer has no exclusions, but the ledger keeps them.
    plain = await decide(client, workspace, pid)
    assert plain["exclusions"] is None
    record = (await client.get(f"/v1/decisions/{plain['decision_id']}", headers=workspace.admin_headers)).json()
    assert {e["name"] for e in record["exclusions"]} == {"paused", "expired", "future", "pro-only"}


async def test_a_changed_rule_applies_to_the_next_decision(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    # Compiled rules and the profile read are reused between decisions; an edited rule is a new key.
    pid = await person(client, workspace, "u1", plan="free")
    o = await offer(client, workspace, "free-only", eligibility={"trait": "plan", "op": "eq", "value": "free"})
    await placement(client, workspace, max_offers=3)
    assert [x["name"] for x in (await decide(client, workspace, pid))["offers"]] == ["free-only"]
    resp = await client.patch(f"/v1/offers/{o['id']}", json={"eligibility": {"trait": "plan", "op": "eq", "value": "pro"}},
                              headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text
    assert (await decide(client, workspace, pid))["offers"] == []
    other = await person(client, workspace, "u2", plan="pro")
    assert [x["name"] for x in (await decide(client, workspace, other))["offers"]] == ["free-only"]


async def test_a_catalog_write_from_any_path_applies_to_the_next_decision(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, connection: AsyncConnection
) -> None:
    # The placement's offers and rules are kept between decisions (app/offers/catalog.py); the
    # database bumps the workspace's catalog_version on every write, even one the API never saw.
    pid = await person(client, workspace, "u1")
    await offer(client, workspace, "a", value=2)
    b = await offer(client, workspace, "b", value=1)
    await placement(client, workspace, max_offers=3)
    assert [x["name"] for x in (await decide(client, workspace, pid))["offers"]] == ["a", "b"]
    version = (await connection.execute(sa.text("SELECT catalog_version FROM workspace WHERE id = :id"),
                                        {"id": workspace.workspace_id})).scalar_one()

    await connection.execute(sa.text("UPDATE offer SET paused = true WHERE name = 'a' AND workspace_id = :id"),
                             {"id": workspace.workspace_id})
    assert [x["name"] for x in (await decide(client, workspace, pid))["offers"]] == ["b"]
    await connection.execute(sa.text("DELETE FROM offer WHERE id = :id"), {"id": b["id"]})
    assert (await decide(client, workspace, pid))["offers"] == []
    await connection.execute(sa.text("UPDATE placement SET max_offers = 1 WHERE workspace_id = :id"),
                             {"id": workspace.workspace_id})
    await connection.execute(sa.text("UPDATE offer SET paused = false WHERE workspace_id = :id"),
                             {"id": workspace.workspace_id})
    await offer(client, workspace, "c", value=9)
    assert [x["name"] for x in (await decide(client, workspace, pid))["offers"]] == ["c"], "max_offers is now 1"
    after = (await connection.execute(sa.text("SELECT catalog_version FROM workspace WHERE id = :id"),
                                      {"id": workspace.workspace_id})).scalar_one()
    assert after == version + 5, "one bump per written row"


async def test_computed_trait_rules_and_missing_traits(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    await offer(client, workspace, "big-spender", eligibility={"computed": "order_count", "op": "gte", "value": 2})
    await offer(client, workspace, "no-plan", eligibility={"not": {"trait": "plan", "op": "exists"}})
    await placement(client, workspace, max_offers=5)
    body = await decide(client, workspace, pid, explain=True)
    assert [o["name"] for o in body["offers"]] == ["no-plan"]
    await send(client, workspace, *[{"type": "track", "userId": "u1", "event": "Order Completed",
                                     "properties": {"revenue": 10}} for _ in range(2)])
    resp = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text
    body = await decide(client, workspace, pid)
    assert sorted(o["name"] for o in body["offers"]) == ["big-spender", "no-plan"]


async def test_bad_rule_names_its_pointer(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    resp = await client.post("/v1/offers", headers=workspace.admin_headers, json={
        "name": "x", "channels": ["web"],
        "eligibility": {"and": [{"trait": "plan", "op": "eq", "value": "pro"}, {"trait": "plan", "op": "like"}]}})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["errors"][0]["pointer"] == "/eligibility/and/1/op"


async def test_caps_per_day_week_total(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    a = await person(client, workspace, "a")
    b = await person(client, workspace, "b")
    await offer(client, workspace, "daily", caps={"per_profile_per_day": 1}, value=4)
    await offer(client, workspace, "weekly", caps={"per_profile_per_week": 2}, value=3)
    await offer(client, workspace, "lifetime", caps={"per_profile_total": 1}, value=2)
    await offer(client, workspace, "everyone", caps={"total": 1}, value=1.5)
    await offer(client, workspace, "always", value=1)
    await placement(client, workspace)
    seen = [(await decide(client, workspace, a, explain=True)) for _ in range(5)]
    assert [s["offers"][0]["name"] for s in seen] == ["daily", "weekly", "weekly", "lifetime", "everyone"]
    assert {e["name"]: e["cap"] for e in seen[4]["exclusions"]} == {
        "daily": "per_profile_per_day", "weekly": "per_profile_per_week", "lifetime": "per_profile_total"}
    other = await decide(client, workspace, b, explain=True)
    assert other["offers"][0]["name"] == "daily"  # per-person caps are per person
    caps = {e["name"]: e["cap"] for e in (await decide(client, workspace, a, explain=True))["exclusions"]}
    assert caps["everyone"] == "total"  # the total cap counts everyone


async def test_fallback_when_nothing_is_eligible(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    await offer(client, workspace, "vip", eligibility={"trait": "vip", "op": "eq", "value": True})
    fb = await offer(client, workspace, "newsletter", placements=["nowhere"])
    await placement(client, workspace, fallback_offer_id=fb["id"])
    body = await decide(client, workspace, pid)
    assert body["fallback"] is True
    assert [o["offer_id"] for o in body["offers"]] == [fb["id"]]
    assert body["offers"][0]["probability"] == 1.0
    # The fallback cannot be deleted while a placement uses it.
    resp = await client.delete(f"/v1/offers/{fb['id']}", headers=workspace.admin_headers)
    assert resp.status_code == 409


async def test_identifier_and_unknown_people(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1", email="Ann@Example.com")
    await offer(client, workspace, "hello")
    await placement(client, workspace)
    resp = await client.post("/v1/decisions", headers=workspace.admin_headers, json={
        "identifier": {"type": "email", "value": "ann@example.com"}, "placement": "banner"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["profile_id"] == pid
    resp = await client.post("/v1/decisions", headers=workspace.admin_headers, json={
        "identifier": {"type": "email", "value": "nobody@example.com"}, "placement": "banner"})
    assert resp.status_code == 404 and resp.json()["code"] == "profile_not_found"
    resp = await client.post("/v1/decisions", headers=workspace.admin_headers, json={
        "profile_id": pid, "placement": "nowhere"})
    assert resp.status_code == 404 and resp.json()["code"] == "placement_not_found"
    resp = await client.post("/v1/decisions", headers=workspace.admin_headers, json={"placement": "banner"})
    assert resp.status_code == 422


async def test_feedback_api_and_ledger(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    o = await offer(client, workspace, "hello")
    other = await offer(client, workspace, "other", channels=["email"])
    await placement(client, workspace)
    d = await decide(client, workspace, pid, context={"page": "/home"})
    url = f"/v1/decisions/{d['decision_id']}/feedback"
    resp = await client.post(url, json={"offer_id": o["id"], "type": "click"}, headers=workspace.admin_headers)
    assert resp.status_code == 201, resp.text
    resp = await client.post(url, json={"offer_id": other["id"], "type": "click"}, headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.json()["code"] == "offer_not_in_decision"
    resp = await client.post(url, json={"offer_id": o["id"], "type": "love"}, headers=workspace.admin_headers)
    assert resp.status_code == 422
    resp = await client.post("/v1/decisions/0191d3e4-0000-7000-8000-000000000000/feedback",
                             json={"offer_id": o["id"], "type": "click"}, headers=workspace.admin_headers)
    assert resp.status_code == 404
    record = (await client.get(f"/v1/decisions/{d['decision_id']}", headers=workspace.admin_headers)).json()
    assert record["context"] == {"page": "/home"}
    assert [(f["type"], f["source"]) for f in record["feedback"]] == [("click", "api")]
    page = (await client.get(f"/v1/profiles/{pid}/decisions", headers=workspace.admin_headers)).json()
    assert [r["decision_id"] for r in page["data"]] == [d["decision_id"]]


async def test_feedback_from_ingest(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    o = await offer(client, workspace, "hello")
    await placement(client, workspace)
    d = await decide(client, workspace, pid)
    props = {"decision_id": d["decision_id"], "offer_id": o["id"]}
    batch = [
        {"type": "track", "userId": "u1", "event": "Offer Viewed", "properties": props, "messageId": "m1"},
        {"type": "track", "userId": "u1", "event": "Offer Clicked", "properties": props, "messageId": "m2"},
        {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m3",
         "properties": {**props, "revenue": 42.5}},
        {"type": "track", "userId": "u1", "event": "Offer Clicked", "messageId": "m4",
         "properties": {"decision_id": "not-a-uuid", "offer_id": o["id"]}},
        {"type": "track", "userId": "u1", "event": "Page Viewed", "properties": props, "messageId": "m5"},
    ]
    await send(client, workspace, *batch)
    await send(client, workspace, *batch)  # a replay adds nothing
    record = (await client.get(f"/v1/decisions/{d['decision_id']}", headers=workspace.admin_headers)).json()
    got = sorted((f["type"], f["value"], f["source"], f["message_id"]) for f in record["feedback"])
    assert got == [("click", None, "event", "m2"), ("convert", 42.5, "event", "m3"), ("impression", None, "event", "m1")]


async def test_workspace_isolation(client: httpx.AsyncClient, workspace: WorkspaceKeys,
                                   other_workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    o = await offer(client, workspace, "hello")
    p = await placement(client, workspace)
    d = await decide(client, workspace, pid)
    h = other_workspace.admin_headers
    assert (await client.get(f"/v1/offers/{o['id']}", headers=h)).status_code == 404
    assert (await client.patch(f"/v1/offers/{o['id']}", json={"paused": True}, headers=h)).status_code == 404
    assert (await client.delete(f"/v1/offers/{o['id']}", headers=h)).status_code == 404
    assert (await client.get("/v1/offers", headers=h)).json() == []
    assert (await client.get(f"/v1/placements/{p['id']}", headers=h)).status_code == 404
    assert (await client.patch(f"/v1/placements/{p['id']}", json={"max_offers": 2}, headers=h)).status_code == 404
    assert (await client.delete(f"/v1/placements/{p['id']}", headers=h)).status_code == 404
    assert (await client.get("/v1/placements", headers=h)).json() == []
    assert (await client.get(f"/v1/decisions/{d['decision_id']}", headers=h)).status_code == 404
    assert (await client.post(f"/v1/decisions/{d['decision_id']}/feedback", headers=h,
                              json={"offer_id": o["id"], "type": "click"})).status_code == 404
    assert (await client.get(f"/v1/profiles/{pid}/decisions", headers=h)).status_code == 404
    assert (await client.get(f"/v1/profiles/{pid}/recommendations", headers=h)).status_code == 404
    assert (await client.post("/v1/decisions", headers=h, json={"profile_id": pid, "placement": "banner"})).status_code == 404
    await placement(client, other_workspace)
    resp = await client.post("/v1/decisions", headers=h, json={"profile_id": pid, "placement": "banner"})
    assert resp.status_code == 404 and resp.json()["code"] == "profile_not_found"
    assert (await client.get("/v1/models", headers=h)).json() == []
    # A fallback from another workspace is refused.
    resp = await client.post("/v1/placements", headers=h, json={"name": "b2", "channel": "web", "fallback_offer_id": o["id"]})
    assert resp.status_code == 422


async def test_served_directly_or_by_the_route_the_answer_is_the_same(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """POST /v1/decisions is served by its handler without FastAPI's router when the body is a
    valid request (core.middleware.DirectRoutes); anything else is left to the route. Both
    give the same decision, and the route still answers every bad body with its problem."""
    pid = await person(client, workspace, "u1", plan="pro")
    await offer(client, workspace, "a", value=2, eligibility={"trait": "plan", "op": "eq", "value": "pro"})
    await offer(client, workspace, "b", value=1)
    await placement(client, workspace, max_offers=2)
    body = {"profile_id": pid, "placement": "banner", "explain": True, "explore": False}
    served_directly = []
    authorize = decisions_router.authorize  # the direct handler's; the route's goes through a dependency

    async def counting(*args: Any, **kwargs: Any) -> Any:
        served_directly.append(1)
        return await authorize(*args, **kwargs)

    monkeypatch.setattr(decisions_router, "authorize", counting)
    direct = await client.post("/v1/decisions", json=body, headers=workspace.admin_headers)
    assert served_directly == [1]
    routed = await client.post("/v1/decisions", params={"via": "route"}, json=body, headers=workspace.admin_headers)
    assert served_directly == [1]
    assert direct.status_code == routed.status_code == 200, (direct.text, routed.text)
    assert direct.headers["content-type"] == routed.headers["content-type"] == "application/json"
    a, b = direct.json(), routed.json()
    assert a["decision_id"] != b["decision_id"]
    for volatile in ("decision_id", "created_at"):
        a.pop(volatile), b.pop(volatile)
    assert a == b and [o["name"] for o in a["offers"]] == ["a", "b"]

    bad = [
        ({"placement": "banner"}, 422, "give exactly one of profile_id and identifier"),
        ({"profile_id": pid, "placement": "banner", "count": 0}, 422, "count"),
        ({"profile_id": pid, "placement": "banner", "colour": "red"}, 422, "colour"),
        ({"profile_id": pid, "placement": "banner", "context": {"x": "a\u0000b"}}, 400, "NUL"),
        ({"profile_id": "not-a-uuid", "placement": "banner"}, 422, "profile_id"),
    ]
    for payload, status, words in bad:
        resp = await client.post("/v1/decisions", json=payload, headers=workspace.admin_headers)
        assert resp.status_code == status, (payload, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert words in resp.text, (words, resp.text)
    resp = await client.post("/v1/decisions", content=b'{"placement": ', headers={
        **workspace.admin_headers, "content-type": "application/json"})
    assert resp.status_code in (400, 422) and resp.headers["content-type"].startswith("application/problem+json")
    # The key is checked either way: none, a write key, an unknown one.
    for headers in ({}, {"Authorization": f"Bearer {workspace.write_key}"}, {"Authorization": "Bearer cl_sk_nope"}):
        resp = await client.post("/v1/decisions", json=body, headers=headers)
        assert resp.status_code in (401, 403), resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
