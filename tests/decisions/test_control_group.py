"""The control group: its share of decisions, and what it gets."""

from __future__ import annotations

import httpx

from tests.conftest import WorkspaceKeys
from tests.decisions.helpers import decide, offer, person, placement


async def test_control_share_and_none_mode(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    await offer(client, workspace, "best", value=5)
    await offer(client, workspace, "other", value=1)
    await placement(client, workspace, control_share=0.3, control_mode="none")
    n = 300
    results = [await decide(client, workspace, pid) for _ in range(n)]
    control = [r for r in results if r["control"]]
    # Binomial(300, 0.3): mean 90, sd 7.9; 60..120 is beyond 3.8 sd on either side.
    assert 60 <= len(control) <= 120
    assert all(r["offers"] == [] for r in control)
    treated = [r for r in results if not r["control"]]
    assert all(r["offers"][0]["name"] == "best" for r in treated)
    assert {r["offers"][0]["probability"] for r in treated} == {0.7}  # (1 - 0.3) x 1
    # Exploration off for a request also switches the control group off.
    for _ in range(20):
        assert (await decide(client, workspace, pid, explore=False))["control"] is False


async def test_control_random_mode_logs_the_mixture(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    pid = await person(client, workspace, "u1")
    await offer(client, workspace, "best", value=5)
    await offer(client, workspace, "other", value=1)
    await placement(client, workspace, control_share=0.5, control_mode="random")
    results = [await decide(client, workspace, pid) for _ in range(200)]
    probs = {(r["offers"][0]["name"]) : r["offers"][0]["probability"] for r in results}
    assert probs["best"] == 0.75  # 0.5 x 1/2 + 0.5 x 1
    assert probs.get("other", 0.25) == 0.25  # 0.5 x 1/2
    others = sum(1 for r in results if r["offers"][0]["name"] == "other")
    assert 25 <= others <= 75  # Binomial(200, 0.25): mean 50, sd 6.1
