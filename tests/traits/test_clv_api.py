"""CLV through the API, accepted against the published CDNOW figures.

The CDNOW 1/10 sample (2,357 customers, Jan 1997 - Jun 1998) goes in as `Order Completed`
events over the Segment batch API; fitting on the paper's 39-week calibration period must
reproduce Fader, Hardie & Lee (2005): r=0.243 alpha=4.414 a=0.793 b=2.426, LL=-9582.4.
"""

from __future__ import annotations

from datetime import date, datetime

import httpx
import numpy as np
import pytest

from app.traits import clv
from tests.conftest import WorkspaceKeys
from tests.datasets import dataset

CDNOW_SAMPLE = dataset("cdnow_sample.txt")
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
CLV_TRAITS = {"probability_alive", "expected_orders_90d", "expected_orders_365d", "expected_spend", "clv_365d"}


def _within(value: float, expected: float, rel: float = 0.02) -> bool:
    return abs(value - expected) <= rel * abs(expected)


def cdnow_rows() -> list[tuple[int, str, int, float]]:
    """(line number, sample id, CDs, dollars) per purchase."""
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample missing at {CDNOW_SAMPLE}: set CLIENTELE_DATASETS_DIR to ../shared/data")
    rows = []
    for n, line in enumerate(CDNOW_SAMPLE.read_text().splitlines()):
        if line.strip():
            _original_id, sample_id, day, cds, dollars = line.split()
            rows.append((n, str(int(sample_id)), day, int(cds), float(dollars)))
    assert len(rows) == 6919
    return rows


async def import_cdnow(client: httpx.AsyncClient, ws: WorkspaceKeys) -> list[tuple]:
    rows = cdnow_rows()
    messages = [
        {
            "type": "track", "userId": user, "event": "Order Completed",
            "messageId": f"cdnow-{n}",  # deterministic: a re-run is deduplicated
            "timestamp": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z",
            "properties": {"revenue": dollars, "quantity": cds},
        }
        for n, user, day, cds, dollars in rows
    ]
    for start in range(0, len(messages), 500):
        resp = await client.post("/v1/batch", json={"batch": messages[start:start + 500]}, auth=ws.write_auth)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["accepted"], body["rejected"]) == (len(messages[start:start + 500]), []), body
    return rows


async def test_cdnow_fit_reproduces_the_paper(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    rows = await import_cdnow(client, workspace)
    headers = workspace.admin_headers
    assert (await client.get("/v1/computed-traits/clv/model", headers=headers)).status_code == 404

    resp = await client.post(
        "/v1/computed-traits/clv/fit",
        json={"calibration_start": "1997-01-01", "calibration_end": "1997-09-30", "as_of": "1997-09-30T23:59:59Z"},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    model = resp.json()
    bg = model["bgnbd"]
    for name, expected in PAPER.items():
        assert _within(bg[name], expected), (name, bg[name], expected)
    assert (model["customer_count"], model["repeat_customer_count"]) == (2357, 946)
    gg = model["gamma_gamma"]
    assert _within(gg["p"], 6.25) and _within(gg["q"], 3.74) and _within(gg["v"], 15.44), gg
    assert (model["calibration_start"], model["calibration_end"]) == ("1997-01-01", "1997-09-30")
    assert (await client.get("/v1/computed-traits/clv/model", headers=headers)).json() == model

    # Customer 1 (Hardie's first row: x=2, t_x=30.43, T=38.86), scored as of the calibration end:
    # the database's summary must match app.traits.clv.summarize on the raw file.
    lookup: dict[str, str] = {}
    cursor = None
    while "1" not in lookup:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/events", params=params, headers=headers)).json()
        lookup |= {e["user_id"]: e["profile_id"] for e in page["data"]}
        cursor = page["next_cursor"]
        assert cursor or "1" in lookup
    pid = lookup["1"]
    traits = (await client.get(f"/v1/profiles/{pid}/computed-traits", headers=headers)).json()["computed_traits"]
    assert CLV_TRAITS <= set(traits)

    summary = clv.summarize(
        [(user, datetime.strptime(day, "%Y%m%d").date(), dollars) for _, user, day, _, dollars in rows],
        observation_end=date(1997, 9, 30),
    )
    i = summary.customer_ids.index("1")
    x, t_x, age, m = summary.frequency[i:i + 1], summary.recency[i:i + 1], summary.T[i:i + 1], summary.monetary_value[i:i + 1]
    assert (x[0], round(t_x[0], 2), round(age[0], 2)) == (2, 30.43, 38.86)
    params = clv.BGNBDParams(**{k: bg[k] for k in ("r", "alpha", "a", "b", "log_likelihood")})
    gg_params = clv.GammaGammaParams(**gg)
    assert traits["probability_alive"]["value"] == pytest.approx(clv.bgnbd_prob_alive(params, x, t_x, age)[0], abs=1e-6)
    assert traits["expected_orders_90d"]["value"] == pytest.approx(
        clv.bgnbd_expected_purchases(params, 90 / 7, x, t_x, age)[0], abs=1e-6)
    assert traits["expected_spend"]["value"] == pytest.approx(
        clv.gamma_gamma_expected_spend(gg_params, x, m)[0], abs=0.01)
    expected_clv = clv.customer_lifetime_value(params, gg_params, x, t_x, age, m, horizon_units=365 / 7)[0]
    assert traits["clv_365d"]["value"] == pytest.approx(expected_clv, abs=0.01)
    assert np.isfinite(traits["expected_orders_365d"]["value"])

    # The profile itself carries them too, next to the order built-ins of a later refresh.
    refreshed = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=headers)
    assert refreshed.status_code == 200 and refreshed.json()["result"]["clv"] == "scored", refreshed.text
    profile = (await client.get(f"/v1/profiles/{pid}", headers=headers)).json()
    assert CLV_TRAITS | {"order_count", "rfm_tier"} <= set(profile["computed_traits"])
    assert profile["computed_traits"]["order_count"]["value"] == 4  # three in calibration, one after


async def test_fit_needs_orders_and_repeat_buyers(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    fit = "/v1/computed-traits/clv/fit"
    empty = await client.post(fit, headers=workspace.admin_headers)
    assert empty.status_code == 422 and empty.json()["code"] == "clv_no_orders"
    batch = [{"type": "track", "userId": f"u{i}", "event": "Order Completed", "messageId": f"o{i}",
              "timestamp": "2024-01-0%dT10:00:00Z" % (i + 1), "properties": {"revenue": 10}} for i in range(3)]
    assert (await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)).status_code == 200
    too_small = await client.post(fit, json={}, headers=workspace.admin_headers)
    assert too_small.status_code == 422 and too_small.json()["code"] == "clv_not_enough_data"
    assert "3 customers, 0 with repeat purchases" in too_small.json()["detail"]


@pytest.mark.parametrize(
    "body,pointer",
    [
        ({"calibration_start": "1997-10-01", "calibration_end": "1997-09-30"}, "/calibration_end"),
        ({"calibration_end": "September"}, "/calibration_end"),
        ({"as_of": "1997-09-30T00:00:00"}, "/as_of"),
        ({"calibration_end": "1997-10-01", "as_of": "1997-09-30T23:00:00Z"}, "/calibration_end"),
        ({"window": 3}, "/window"),
    ],
)
async def test_fit_request_validation(client: httpx.AsyncClient, workspace: WorkspaceKeys, body: dict, pointer: str) -> None:
    resp = await client.post("/v1/computed-traits/clv/fit", json=body, headers=workspace.admin_headers)
    assert resp.status_code == 422, resp.text
    assert [e["pointer"] for e in resp.json()["errors"]] == [pointer]


async def test_models_are_per_workspace(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, other_workspace: WorkspaceKeys
) -> None:
    # The first 300 CDNOW customers are enough to fit; the other workspace has no orders.
    batch = [
        {"type": "track", "userId": user, "event": "Order Completed", "messageId": f"cdnow-{n}",
         "timestamp": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z", "properties": {"revenue": dollars}}
        for n, user, day, _, dollars in cdnow_rows() if int(user) <= 300
    ]
    for start in range(0, len(batch), 500):
        resp = await client.post("/v1/batch", json={"batch": batch[start:start + 500]}, auth=workspace.write_auth)
        assert resp.status_code == 200, resp.text
    fitted = await client.post("/v1/computed-traits/clv/fit", json={"calibration_end": "1997-09-30"},
                               headers=workspace.admin_headers)
    assert fitted.status_code == 200, fitted.text
    assert fitted.json()["customer_count"] == 300
    assert (await client.get("/v1/computed-traits/clv/model", headers=other_workspace.admin_headers)).status_code == 404
    theirs = await client.post("/v1/computed-traits/clv/fit", headers=other_workspace.admin_headers)
    assert theirs.status_code == 422 and theirs.json()["code"] == "clv_no_orders"
    assert (await client.get("/v1/computed-traits/clv/model", headers=workspace.admin_headers)).json() == fitted.json()
