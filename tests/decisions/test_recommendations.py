"""Complementary items on a small basket set with known answers."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys
from tests.decisions.helpers import decide, offer, person, placement, send


def order(user: str, *items: str, ts: str) -> dict:
    return {"type": "track", "userId": user, "event": "Order Completed", "timestamp": ts,
            "properties": {"revenue": 10, "products": [{"product_id": i} for i in items]}}


async def test_recommendations_and_the_complementary_offer(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    # Co-buyers: socks with shoes (4 people), socks with hats (2), shoes with laces (3), hats with scarves (2).
    batch = []
    for u in ("c1", "c2", "c3", "c4"):
        batch.append(order(u, "socks", "shoes", ts="2026-11-01T10:00:00Z"))
    for u in ("c5", "c6"):
        batch.append(order(u, "socks", "hats", ts="2026-11-01T10:00:00Z"))
    for u in ("c1", "c2", "c7"):
        batch.append(order(u, "shoes", "laces", ts="2026-11-02T10:00:00Z"))
    for u in ("c5", "c6"):
        batch.append(order(u, "hats", "scarves", ts="2026-11-02T10:00:00Z"))
    await send(client, workspace, *batch)
    pid = await person(client, workspace, "me")
    await send(client, workspace, order("me", "socks", ts="2026-11-20T10:00:00Z"))
    resp = await client.post("/v1/models/train", params={"wait": "true"}, headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text

    recs = (await client.get(f"/v1/profiles/{pid}/recommendations", params={"count": 3},
                             headers=workspace.admin_headers)).json()
    assert [r["item_id"] for r in recs["items"]][:2] == ["shoes", "hats"]
    assert "socks" not in [r["item_id"] for r in recs["items"]]
    with_owned = (await client.get(f"/v1/profiles/{pid}/recommendations",
                                   params={"count": 3, "exclude_purchased": "false"},
                                   headers=workspace.admin_headers)).json()
    assert "socks" in [r["item_id"] for r in with_owned["items"]]

    # The offer type "complementary item to the last purchase".
    await offer(client, workspace, "complete-the-look", kind="complementary_item", content={"discount": "10%"})
    await placement(client, workspace)
    body = await decide(client, workspace, pid)
    assert body["offers"][0]["content"] == {"discount": "10%", "item_id": "shoes"}
    # Someone who never bought anything is not eligible for it.
    newbie = await person(client, workspace, "newbie")
    body = await decide(client, workspace, newbie, explain=True)
    assert body["offers"] == [] and body["exclusions"][0]["reason"] == "no_purchase_to_complement"


async def test_recommendations_for_someone_without_history_are_popular_items(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    await send(client, workspace, *[order(f"c{i}", "mug", ts="2026-11-01T10:00:00Z") for i in range(3)],
               order("c9", "plate", ts="2026-11-01T10:00:00Z"))
    pid = await person(client, workspace, "me")
    await client.post("/v1/models/train", params={"wait": "true"}, headers=workspace.admin_headers)
    recs = (await client.get(f"/v1/profiles/{pid}/recommendations", headers=workspace.admin_headers)).json()
    assert [r["item_id"] for r in recs["items"]] == ["mug", "plate"]
    resp = await client.get(f"/v1/profiles/{pid}/recommendations", params={"count": 0}, headers=workspace.admin_headers)
    assert resp.status_code == 422
