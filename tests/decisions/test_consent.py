"""No offer on a channel without consent, ever: and the consent record relied on is kept."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys
from tests.decisions.helpers import decide, grant, offer, person, placement


async def test_no_consent_no_offer_not_even_the_fallback(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1", consent=False)
    await offer(client, workspace, "hello")
    fb = await offer(client, workspace, "fallback", placements=["nowhere"])
    await placement(client, workspace, fallback_offer_id=fb["id"])
    body = await decide(client, workspace, pid, explain=True)
    assert body["offers"] == [] and body["fallback"] is False
    [excluded] = body["exclusions"]
    assert excluded["reason"] == "no_consent"
    assert excluded["consent"]["purpose"] == "personalization"
    assert excluded["consent"]["status"] == "default_denied"
    assert excluded["consent"]["allowed"] is False


async def test_the_record_relied_on_is_stored(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1", consent=False)
    o = await offer(client, workspace, "hello")
    await placement(client, workspace)
    granted = await grant(client, workspace, pid, "personalization")
    body = await decide(client, workspace, pid)
    assert [x["offer_id"] for x in body["offers"]] == [o["id"]]
    assert body["consent"][0]["record_id"] == granted["id"]
    assert body["consent"][0]["allowed"] is True
    record = (await client.get(f"/v1/decisions/{body['decision_id']}", headers=workspace.admin_headers)).json()
    assert record["consent"][0]["record_id"] == granted["id"]
    # Withdrawn: nothing again, and the withdrawal is the record relied on.
    withdrawn = await grant(client, workspace, pid, "personalization", status="withdrawn")
    body = await decide(client, workspace, pid, explain=True)
    assert body["offers"] == []
    assert body["exclusions"][0]["consent"]["record_id"] == withdrawn["id"]


async def test_consent_is_per_channel(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")  # personalisation (web) granted, e-mail not
    await offer(client, workspace, "mail", channels=["email", "web"])
    await placement(client, workspace, name="newsletter", channel="email")
    await placement(client, workspace, name="banner", channel="web")
    assert (await decide(client, workspace, pid, placement="newsletter"))["offers"] == []
    assert [o["name"] for o in (await decide(client, workspace, pid, placement="banner"))["offers"]] == ["mail"]
    await grant(client, workspace, pid, "email_marketing", channel="email")
    assert [o["name"] for o in (await decide(client, workspace, pid, placement="newsletter"))["offers"]] == ["mail"]


async def test_segment_rules_and_segment_references(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1", plan="pro")
    other = await person(client, workspace, "u2", plan="free")
    resp = await client.post("/v1/segments", headers=workspace.admin_headers,
                             json={"name": "pros", "rule": {"trait": "plan", "op": "eq", "value": "pro"}})
    assert resp.status_code == 201, resp.text
    seg = resp.json()["id"]
    await offer(client, workspace, "for-pros", eligibility={"segment": seg})
    await placement(client, workspace)
    assert [o["name"] for o in (await decide(client, workspace, pid))["offers"]] == ["for-pros"]
    body = await decide(client, workspace, other, explain=True)
    assert body["offers"] == [] and body["exclusions"][0]["reason"] == "not_eligible"
    resp = await client.post("/v1/offers", headers=workspace.admin_headers, json={
        "name": "bad", "channels": ["web"], "eligibility": {"segment": "0191d3e4-0000-7000-8000-000000000000"}})
    assert resp.status_code == 422 and resp.json()["errors"][0]["pointer"].startswith("/eligibility")
