"""CLV through the API, accepted against the published CDNOW figures and the `lifetimes` library.

The CDNOW 1/10 sample (2,357 customers, Jan 1997 - Jun 1998) goes in as `Order Completed`
events, through the orders import (CSV) or the Segment batch API. Fitting on the paper's 39-week
calibration period must reproduce Fader, Hardie & Lee (2005): BG/NBD r=0.243 alpha=4.414 a=0.793
b=2.426, LL=-9582.4; Pareto/NBD r=0.553 alpha=10.578 s=0.606 beta=11.669, LL=-9595.0. A plain
refresh of the imported history fits its whole 78 weeks as `lifetimes` 0.11.3 does
(`summary_data_from_transaction_data(..., freq="D", freq_multiplier=7)`, observation end
1998-06-30): BG/NBD r=0.2536 alpha=5.447 a=0.607 b=2.647.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from app.traits import clv
from tests.conftest import WorkspaceKeys
from tests.datasets import dataset

CDNOW_SAMPLE = dataset("cdnow_sample.txt")
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}
# Fader & Hardie, "A note on implementing the Pareto/NBD model in MATLAB" (2005), same data.
PAPER_PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
# lifetimes 0.11.3 on the same data (ModifiedBetaGeoFitter has no published CDNOW figures).
LIFETIMES_39 = {"mbgnbd": {"r": 0.5248, "alpha": 6.1831, "a": 0.8914, "b": 1.6140}}
LIFETIMES_78 = {
    "bgnbd": {"r": 0.2536, "alpha": 5.4473, "a": 0.6074, "b": 2.6472},
    "mbgnbd": {"r": 0.6178, "alpha": 8.6570, "a": 0.5515, "b": 1.0091},
    "pareto_nbd": {"r": 0.5630, "alpha": 12.5593, "s": 0.4081, "beta": 10.5121},
}
CLV_TRAITS = {"probability_alive", "expected_orders_90d", "expected_orders_365d", "expected_spend", "clv_90d",
              "clv_365d"}
HOLDOUT_REPEAT_DAYS = 1882  # repeat purchase days of the 2,357 customers in weeks 40-78


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


async def import_cdnow_csv(client: httpx.AsyncClient, ws: WorkspaceKeys) -> list[tuple]:
    """The sample through the orders import: one CSV row per purchase."""
    rows = cdnow_rows()
    lines = ["user_id,event,timestamp,revenue,quantity"] + [
        f"{user},Order Completed,{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z,{dollars},{cds}"
        for _n, user, day, cds, dollars in rows
    ]
    resp = await client.post("/v1/imports/events", content="\n".join(lines).encode(),
                             headers={**ws.admin_headers, "Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(rows), resp.json()
    return rows


def _close(params: dict, expected: dict, rel: float = 0.02) -> bool:
    return all(_within(params[k], v, rel) for k, v in expected.items())


async def profile_of(client: httpx.AsyncClient, ws: WorkspaceKeys, user: str) -> str:
    lookup: dict[str, str] = {}
    cursor = None
    while user not in lookup:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/events", params=params, headers=ws.admin_headers)).json()
        lookup |= {e["user_id"]: e["profile_id"] for e in page["data"]}
        cursor = page["next_cursor"]
        assert cursor or user in lookup
    return lookup[user]


def cdnow_summary(rows: list[tuple], end: date) -> clv.RFMSummary:
    return clv.summarize(
        [(user, datetime.strptime(day, "%Y%m%d").date(), dollars) for _, user, day, _, dollars in rows],
        observation_end=end,
    )


async def test_imported_history_refreshed_fits_its_whole_78_weeks(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    """No fit call, no dates: the observation end is the latest order's day (1998-06-30), not
    today, and the models are chosen on the later half of the history held out."""
    rows = await import_cdnow_csv(client, workspace)
    headers = workspace.admin_headers
    refreshed = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=headers)
    assert refreshed.status_code == 200 and refreshed.json()["result"]["clv"] == "fitted", refreshed.text
    model = (await client.get("/v1/computed-traits/clv/model", headers=headers)).json()

    assert model["observation_end"].startswith("1998-06-30T23:59:59")
    assert (model["calibration_start"], model["calibration_end"]) == (None, "1998-06-30")
    assert (model["customer_count"], model["repeat_customer_count"]) == (2357, 1139)
    assert model["settings"] == {"calibration_start": None, "calibration_end": None, "as_of": None,
                                 "model": "auto", "horizons_days": [90, 365]}

    comparison = model["comparison"]
    # The later half held out: weeks 1-39 against 40-78, the paper's own split.
    assert (comparison["method"], comparison["calibration_end"], comparison["holdout_end"]) == (
        "split", "1997-09-30", "1998-06-30")
    assert (comparison["holdout_days"], comparison["customers"]) == (273, 2357)
    candidates = {c["model"]: c for c in comparison["candidates"]}
    assert set(candidates) == {"bgnbd", "mbgnbd", "pareto_nbd"}
    # Fitted on the first half: the published 39-week figures.
    assert _close(candidates["bgnbd"]["params"], {k: PAPER[k] for k in ("r", "alpha", "a", "b")})
    assert _close(candidates["pareto_nbd"]["params"], PAPER_PARETO)
    assert _close(candidates["mbgnbd"]["params"], LIFETIMES_39["mbgnbd"])
    # Refitted on all 78 weeks: as lifetimes fits them.
    for key, expected in LIFETIMES_78.items():
        assert _close(candidates[key]["whole_period_params"], expected), (key, candidates[key])
    for c in candidates.values():
        assert c["actual"] == HOLDOUT_REPEAT_DAYS
        assert sum(g["customers"] for g in c["groups"]) == 2357
        assert [g["frequency"] for g in c["groups"]] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
        assert 0 < c["rmse"] and 0 < c["mae"] and -0.2 < c["total_error"] < 0
    best = min(candidates.values(), key=lambda c: c["rmse"])
    assert model["model"] == comparison["chosen"] == best["model"]
    assert model["params"] == candidates[best["model"]]["whole_period_params"]
    assert "lowest holdout RMSE" in comparison["reason"]

    # Customer 1 (purchases 1997-01-01, 01-18, 08-02, 12-12) is scored as of 1998-06-30.
    pid = await profile_of(client, workspace, "1")
    traits = (await client.get(f"/v1/profiles/{pid}/computed-traits", headers=headers)).json()["computed_traits"]
    assert CLV_TRAITS <= set(traits)
    summary = cdnow_summary(rows, date(1998, 6, 30))
    i = summary.customer_ids.index("1")
    x, t_x, age = summary.frequency[i:i + 1], summary.recency[i:i + 1], summary.T[i:i + 1]
    assert (x[0], round(age[0], 2)) == (3, 77.86)
    params = clv.params_of(model["model"], model["params"], model["log_likelihood"])
    assert traits["probability_alive"]["value"] == pytest.approx(clv.prob_alive(params, x, t_x, age)[0], abs=1e-6)
    assert traits["expected_orders_90d"]["value"] == pytest.approx(
        clv.expected_purchases(params, 90 / 7, x, t_x, age)[0], abs=1e-6)
    # Not "lost because it is 2026 now": lifetimes gives customer 1 P(alive) 0.66-0.73 under the three models.
    assert 0.6 < traits["probability_alive"]["value"] < 0.8


async def test_cdnow_fit_reproduces_the_paper(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    rows = await import_cdnow(client, workspace)
    headers = workspace.admin_headers
    assert (await client.get("/v1/computed-traits/clv/model", headers=headers)).status_code == 404

    resp = await client.post(
        "/v1/computed-traits/clv/fit",
        json={"calibration_start": "1997-01-01", "calibration_end": "1997-09-30", "as_of": "1997-09-30T23:59:59Z",
              "model": "bgnbd"},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    model = resp.json()
    assert model["model"] == "bgnbd"
    bg = model["params"] | {"log_likelihood": model["log_likelihood"]}
    for name, expected in PAPER.items():
        assert _within(bg[name], expected), (name, bg[name], expected)
    assert (model["customer_count"], model["repeat_customer_count"]) == (2357, 946)
    gg = model["gamma_gamma"]
    assert _within(gg["p"], 6.25) and _within(gg["q"], 3.74) and _within(gg["v"], 15.44), gg
    assert (model["calibration_start"], model["calibration_end"]) == ("1997-01-01", "1997-09-30")
    assert (await client.get("/v1/computed-traits/clv/model", headers=headers)).json() == model

    # Customer 1 (Hardie's first row: x=2, t_x=30.43, T=38.86), scored as of the calibration end:
    # the database's summary must match app.traits.clv.summarize on the raw file.
    pid = await profile_of(client, workspace, "1")
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
    assert model["comparison"]["method"] == "split" and model["comparison"]["chosen"] == "bgnbd"
    assert [c["model"] for c in model["comparison"]["candidates"]] == ["bgnbd"]
    gg_params = clv.GammaGammaParams(**gg)
    assert traits["probability_alive"]["value"] == pytest.approx(clv.bgnbd_prob_alive(params, x, t_x, age)[0], abs=1e-6)
    assert traits["expected_orders_90d"]["value"] == pytest.approx(
        clv.bgnbd_expected_purchases(params, 90 / 7, x, t_x, age)[0], abs=1e-6)
    assert traits["expected_spend"]["value"] == pytest.approx(
        clv.gamma_gamma_expected_spend(gg_params, x, m)[0], abs=0.01)
    expected_clv = clv.customer_lifetime_value(params, gg_params, x, t_x, age, m, horizon_units=365 / 7)[0]
    assert traits["clv_365d"]["value"] == pytest.approx(expected_clv, abs=0.01)
    assert np.isfinite(traits["expected_orders_365d"]["value"])

    # The profile itself carries them too, next to the order built-ins of a later refresh, which
    # scores as of the model's own as_of (not now).
    refreshed = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=headers)
    assert refreshed.status_code == 200 and refreshed.json()["result"]["clv"] == "scored", refreshed.text
    again = (await client.get(f"/v1/profiles/{pid}/computed-traits", headers=headers)).json()["computed_traits"]
    assert again["probability_alive"]["value"] == traits["probability_alive"]["value"]
    profile = (await client.get(f"/v1/profiles/{pid}", headers=headers)).json()
    assert CLV_TRAITS | {"order_count", "rfm_tier"} <= set(profile["computed_traits"])
    assert profile["computed_traits"]["order_count"]["value"] == 4  # three in calibration, one after


async def test_calibration_end_compares_the_models_on_the_holdout(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    """The paper's set-up in one call: calibrate on weeks 1-39, predict weeks 40-78 (the
    observation end defaults to the latest order), choose the model that predicted them best."""
    await import_cdnow_csv(client, workspace)
    resp = await client.post("/v1/computed-traits/clv/fit", json={"calibration_end": "1997-09-30"},
                             headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text
    model = resp.json()
    assert model["calibration_end"] == "1997-09-30" and model["observation_end"].startswith("1998-06-30T23:59:59")
    comparison = model["comparison"]
    assert (comparison["method"], comparison["calibration_end"], comparison["holdout_end"],
            comparison["holdout_days"]) == ("holdout", "1997-09-30", "1998-06-30", 273)
    candidates = {c["model"]: c for c in comparison["candidates"]}
    assert _close(candidates["bgnbd"]["params"], {k: PAPER[k] for k in ("r", "alpha", "a", "b")})
    assert _within(candidates["bgnbd"]["log_likelihood"], PAPER["log_likelihood"])
    assert _close(candidates["pareto_nbd"]["params"], PAPER_PARETO)
    assert _within(candidates["pareto_nbd"]["log_likelihood"], -9595.0)
    assert _close(candidates["mbgnbd"]["params"], LIFETIMES_39["mbgnbd"])
    # The paper's summed conditional expectation for weeks 40-78 (BG/NBD): 1,653 against 1,882 bought.
    assert candidates["bgnbd"]["predicted"] == pytest.approx(1653.4, abs=0.5)
    assert candidates["bgnbd"]["actual"] == HOLDOUT_REPEAT_DAYS
    groups = {g["frequency"]: g for g in candidates["bgnbd"]["groups"]}
    assert groups["0"]["customers"] == 2357 - 946
    assert groups["0"]["actual_mean"] == pytest.approx(0.237, abs=0.001)
    # The chosen model is the calibration fit itself (no refit), with the lowest RMSE.
    best = min(candidates.values(), key=lambda c: c["rmse"])
    assert model["model"] == best["model"] and model["params"] == best["params"]
    assert all(c["whole_period_params"] is None for c in candidates.values())
    assert (await client.get("/v1/computed-traits/clv/model", headers=workspace.admin_headers)).json() == model


async def test_automatic_refits_keep_their_settings(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, session
) -> None:
    rows = await import_cdnow_csv(client, workspace)
    headers = workspace.admin_headers
    # A 39-week horizon (273 days) as well as the default ones' replacement.
    request = {"calibration_end": "1997-09-30", "model": "bgnbd", "horizons_days": [273, 30]}
    fitted = await client.post("/v1/computed-traits/clv/fit", json=request, headers=headers)
    assert fitted.status_code == 200, fitted.text
    first = fitted.json()
    assert first["settings"] == {"calibration_start": None, "calibration_end": "1997-09-30", "as_of": None,
                                 "model": "bgnbd", "horizons_days": [30, 273]}
    assert first["traits"] == ["probability_alive", "expected_spend", "expected_orders_30d", "clv_30d",
                               "expected_orders_273d", "clv_273d"]

    # A day later the hourly refresh finds the model due (CLIENTELE_CLV_REFIT_HOURS=24).
    await session.execute(sa.text("UPDATE clv_model SET fitted_at = fitted_at - interval '2 days' WHERE workspace_id = :ws"),
                          {"ws": uuid.UUID(workspace.workspace_id)})
    refreshed = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=headers)
    assert refreshed.status_code == 200 and refreshed.json()["result"]["clv"] == "fitted", refreshed.text
    refit = (await client.get("/v1/computed-traits/clv/model", headers=headers)).json()
    assert refit["fitted_at"] > first["fitted_at"]
    assert {k: refit[k] for k in ("settings", "model", "calibration_end", "observation_end", "traits")} == {
        k: first[k] for k in ("settings", "model", "calibration_end", "observation_end", "traits")}
    assert _close(refit["params"], {k: PAPER[k] for k in ("r", "alpha", "a", "b")})
    assert refit["comparison"]["method"] == "holdout"

    # The 39-week expectation, on each profile; the default horizons' traits are gone.
    pid = await profile_of(client, workspace, "1")
    traits = (await client.get(f"/v1/profiles/{pid}/computed-traits", headers=headers)).json()["computed_traits"]
    assert {"expected_orders_273d", "clv_273d", "expected_orders_30d", "clv_30d"} <= set(traits)
    assert not {"expected_orders_90d", "expected_orders_365d", "clv_365d"} & set(traits)
    summary = cdnow_summary(rows, date(1998, 6, 30))
    i = summary.customer_ids.index("1")
    params = clv.params_of("bgnbd", refit["params"], refit["log_likelihood"])
    expected = clv.expected_purchases(params, 39.0, summary.frequency[i:i + 1], summary.recency[i:i + 1],
                                      summary.T[i:i + 1])[0]
    assert traits["expected_orders_273d"]["value"] == pytest.approx(expected, abs=1e-6)


async def test_degenerate_history_fails_fast_with_a_clear_problem(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    # 40 customers with exactly the same two orders: nothing separates purchase rate from dropout.
    batch = [
        {"type": "track", "userId": f"twin{i}", "event": "Order Completed", "messageId": f"twin{i}-{day}",
         "timestamp": f"2024-03-{day:02d}T10:00:00Z", "properties": {"revenue": 20}}
        for i in range(40) for day in (1, 15)
    ]
    assert (await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)).status_code == 200
    resp = await client.post("/v1/computed-traits/clv/fit", json={"calibration_end": "2024-03-31",
                                                                  "as_of": "2024-03-31T23:59:59Z"},
                             headers=workspace.admin_headers)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert problem["code"] == "clv_fit_failed"
    assert "all 40 customers have the same history" in problem["detail"]
    assert (await client.get("/v1/computed-traits/clv/model", headers=workspace.admin_headers)).status_code == 404


async def test_live_workspace_observes_up_to_now(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """With orders up to today, the observation end is now (silence since the last order counts)."""
    today = datetime.now().astimezone().replace(microsecond=0)
    rng = np.random.default_rng(3)
    batch = []
    for i in range(60):
        days = sorted(set(int(d) for d in rng.integers(0, 200, size=1 + i % 5)))
        batch += [{"type": "track", "userId": f"c{i}", "event": "Order Completed", "messageId": f"c{i}-{d}",
                   "timestamp": (today - timedelta(days=d, hours=1)).isoformat(), "properties": {"revenue": 10 + d % 7}}
                  for d in days]
    batch.append({"type": "track", "userId": "c0", "event": "Order Completed", "messageId": "c0-now",
                  "timestamp": (today - timedelta(minutes=5)).isoformat(), "properties": {"revenue": 12}})
    assert (await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)).status_code == 200
    resp = await client.post("/v1/computed-traits/clv/fit", json={"model": "bgnbd"}, headers=workspace.admin_headers)
    assert resp.status_code == 200, resp.text
    model = resp.json()
    observed = datetime.fromisoformat(model["observation_end"])
    assert abs(observed - datetime.now(observed.tzinfo)) < timedelta(minutes=5)
    assert model["settings"]["as_of"] is None


async def test_fit_needs_orders_and_repeat_buyers(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    fit = "/v1/computed-traits/clv/fit"
    empty = await client.post(fit, headers=workspace.admin_headers)
    assert empty.status_code == 422 and empty.json()["code"] == "clv_no_orders"
    batch = [{"type": "track", "userId": f"u{i}", "event": "Order Completed", "messageId": f"o{i}",
              "timestamp": "2024-01-0%dT10:00:00Z" % (i + 1), "properties": {"revenue": 10}} for i in range(3)]
    assert (await client.post("/v1/batch", json={"batch": batch}, auth=workspace.write_auth)).status_code == 200
    too_small = await client.post(fit, json={}, headers=workspace.admin_headers)
    assert too_small.status_code == 422 and too_small.json()["code"] == "clv_not_enough_data"
    assert "3 customers in the calibration period, 0 with repeat purchases" in too_small.json()["detail"]


@pytest.mark.parametrize(
    "body,pointer",
    [
        ({"calibration_start": "1997-10-01", "calibration_end": "1997-09-30"}, "/calibration_end"),
        ({"calibration_end": "September"}, "/calibration_end"),
        ({"as_of": "1997-09-30T00:00:00"}, "/as_of"),
        ({"calibration_end": "1997-10-01", "as_of": "1997-09-30T23:00:00Z"}, "/calibration_end"),
        ({"window": 3}, "/window"),
        ({"model": "gamma"}, "/model"),
        ({"horizons_days": [0]}, "/horizons_days"),
        ({"horizons_days": []}, "/horizons_days"),
        ({"horizons_days": list(range(1, 10))}, "/horizons_days"),
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


async def test_cli_fits_with_settings_and_shows_the_comparison(committed_app, database_url: str) -> None:
    from tests.conftest import create_workspace_via_api, make_client
    from tests.traits.test_computed_traits import clientele

    async with make_client(committed_app) as client:
        ws = await create_workspace_via_api(client, "cli-clv")
        batch = [
            {"type": "track", "userId": user, "event": "Order Completed", "messageId": f"cdnow-{n}",
             "timestamp": f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z", "properties": {"revenue": dollars}}
            for n, user, day, _, dollars in cdnow_rows() if int(user) <= 400
        ]
        for start in range(0, len(batch), 500):
            assert (await client.post("/v1/batch", json={"batch": batch[start:start + 500]},
                                      auth=ws.write_auth)).status_code == 200

        code, out, err = await clientele(database_url, "traits", "clv-fit", "-w", ws.workspace_id,
                                         "--calibration-end", "1997-09-30", "--model", "bgnbd",
                                         "--horizon", "273", "--json")
        assert code == 0, err
        fitted = json.loads(out)
        assert fitted["model"] == "bgnbd" and fitted["customer_count"] == 400
        assert fitted["settings"]["calibration_end"] == "1997-09-30" and fitted["settings"]["horizons_days"] == [273]
        assert fitted["comparison"]["method"] == "holdout" and fitted["comparison"]["holdout_days"] == 273
        served = (await client.get("/v1/computed-traits/clv/model", headers=ws.admin_headers)).json()
        assert served == fitted

        code, out, err = await clientele(database_url, "traits", "clv-fit", "-w", ws.workspace_id)
        assert code == 0, err
        assert "comparison (split" in out and "lowest holdout RMSE" in out

    code, _, err = await clientele(database_url, "traits", "clv-fit", "-w", ws.workspace_id, "--model", "gamma")
    assert code == 2 and "model" in err
