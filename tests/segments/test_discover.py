"""k-means proposed segments: deterministic for a seed, k by silhouette, plain-unit centres,
descriptive names, a cluster saved as a segment of fixed members."""

from __future__ import annotations

import pytest

from tests.datasets import dataset
from tests.segments.helpers import refresh

CDNOW_SAMPLE = dataset("cdnow_sample.txt")


async def import_cdnow_sample(client, ws) -> dict[str, list[tuple[str, float]]]:
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample missing at {CDNOW_SAMPLE}: set CLIENTELE_DATASETS_DIR to ../shared/data")
    orders: dict[str, list[tuple[str, float]]] = {}
    messages = []
    for n, line in enumerate(CDNOW_SAMPLE.read_text().splitlines()):
        if not line.strip():
            continue
        _original, sample_id, day, _cds, dollars = line.split()
        user = f"cdnow-{int(sample_id)}"
        orders.setdefault(user, []).append((day, float(dollars)))
        messages.append({"type": "track", "userId": user, "event": "Order Completed", "messageId": f"cdnow-{n}",
                         "timestamp": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z", "properties": {"revenue": float(dollars)}})
    for start in range(0, len(messages), 2000):
        resp = await client.post("/v1/batch", json={"batch": messages[start:start + 2000]}, auth=ws.write_auth)
        assert resp.status_code == 200 and resp.json()["rejected"] == [], resp.text
    return orders


async def test_discover_on_cdnow_is_deterministic_and_saves_a_cluster(client, workspace):
    h = workspace.admin_headers
    orders = await import_cdnow_sample(client, workspace)
    body = {"features": ["recency_days", "frequency", "monetary"], "seed": 0}
    first = await client.post("/v1/segments/discover", json=body, headers=h)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["customers"] == len(orders) == 2357
    assert result["as_of"].startswith("1998-06-30")
    assert 2 <= result["k"] <= 8 and str(result["k"]) in result["silhouette_by_k"]
    assert result["silhouette"] == max(result["silhouette_by_k"].values())
    assert sum(c["size"] for c in result["clusters"]) == 2357
    assert len({c["name"] for c in result["clusters"]}) == result["k"]
    # plain units: frequency in orders (at least one), recency in days within the 18 months
    for c in result["clusters"]:
        assert c["centre"]["frequency"] >= 1 and 0 <= c["centre"]["recency_days"] <= 550 and c["centre"]["monetary"] > 0
    again = await client.post("/v1/segments/discover", json=body, headers=h)
    assert again.json() == result  # same data, same seed: same answer

    fixed_k = (await client.post("/v1/segments/discover", json=body | {"k": 4}, headers=h)).json()
    assert fixed_k["k"] == 4 and fixed_k["silhouette_by_k"] == {}
    one_time = min(fixed_k["clusters"], key=lambda c: c["centre"]["frequency"])
    assert "one-time" in one_time["name"]

    saved = await client.post("/v1/segments/discover", json=body | {"k": 4, "save": {"cluster": one_time["index"], "name": "Proposed"}},
                              headers=h)
    assert saved.status_code == 200, saved.text
    segment = saved.json()["saved_segment"]
    assert segment["kind"] == "fixed" and segment["rule"] is None and segment["member_count"] == one_time["size"]
    assert segment["source"]["method"] == "kmeans" and segment["source"]["cluster"] == one_time["index"]
    members = (await client.get(f"/v1/segments/{segment['id']}/members", params={"limit": 1000, "fields": "computed.order_count"},
                                headers=h)).json()
    assert len(members["data"]) == min(1000, one_time["size"])
    changes = (await client.get(f"/v1/segments/{segment['id']}/changes", params={"limit": 1000}, headers=h)).json()
    assert all(c["change"] == "entered" for c in changes["data"])
    result = await refresh(client, workspace, segment["id"])  # a fixed segment keeps its members
    assert (result["entered"], result["exited"], result["member_count"]) == (0, 0, one_time["size"])
    # A rule can build on it
    resp = await client.post("/v1/segments/preview", json={"rule": {"segment": segment["id"]}, "sample": 0}, headers=h)
    assert resp.json()["count"] == one_time["size"]
    # Saving under a taken name, or a cluster that does not exist
    dup = await client.post("/v1/segments/discover", json=body | {"k": 4, "save": {"cluster": 0, "name": "Proposed"}}, headers=h)
    assert dup.status_code == 409
    missing = await client.post("/v1/segments/discover", json=body | {"k": 4, "save": {"cluster": 9, "name": "x"}}, headers=h)
    assert missing.status_code == 422


async def test_discover_needs_customers(client, workspace):
    resp = await client.post("/v1/segments/discover", json={}, headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.json()["code"] == "not_enough_customers"
    resp = await client.post("/v1/segments/discover", json={"k": 1}, headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.json()["errors"][0]["pointer"] == "/k"
