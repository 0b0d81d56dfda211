"""The kept placement catalog is reloaded by one decision at a time (app/offers/catalog.py):
decisions in flight when its time runs out keep using it, and one that saw a newer version
waits for the reload under way instead of starting its own, unless that reload read the very
version it knows to be stale."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.offers import catalog as offer_catalog
from app.offers import eligibility

WS = uuid.uuid4()
KEY = (WS, "home")


def _catalog(version: int, *, age: float = 0.0) -> offer_catalog.Catalog:
    return offer_catalog.Catalog(version, time.monotonic() - age, None, (), (), None)  # type: ignore[arg-type]


class _Loads:
    """Stands in for the database read: each call returns the next version in `versions` (or
    raises it) once `release` is set."""

    def __init__(self, *versions: int | Exception) -> None:
        self.versions = list(versions)
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self, session: Any, workspace_id: uuid.UUID, name: str, now: datetime) -> offer_catalog.Catalog:
        self.calls += 1
        outcome = self.versions.pop(0)
        await self.release.wait()
        if isinstance(outcome, Exception):
            raise outcome
        return _catalog(outcome)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    offer_catalog.forget(WS)
    yield
    offer_catalog.forget(WS)


async def _decide(stale_version: int | None = None) -> offer_catalog.Catalog:
    return await offer_catalog.for_placement(
        None, workspace_id=WS, placement="home", now=datetime.now(UTC), stale_version=stale_version)  # type: ignore[arg-type]


async def _started(tasks: list[asyncio.Task[Any]]) -> None:
    for _ in range(5):  # let every task reach its first wait
        await asyncio.sleep(0)


async def test_when_its_time_runs_out_one_decision_reloads_and_the_others_keep_the_old_one(
    loads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _catalog(3, age=eligibility.CACHE_SECONDS + 1)
    offer_catalog._cache[KEY] = old
    load = _Loads(3)
    monkeypatch.setattr(offer_catalog, "_load", load)
    tasks = [asyncio.create_task(_decide()) for _ in range(20)]
    await _started(tasks)
    assert sum(t.done() for t in tasks) == 19, "all but the reloading decision answered at once"
    load.release.set()
    got = await asyncio.gather(*tasks)
    assert load.calls == 1
    assert sum(c is old for c in got) == 19
    assert offer_catalog._cache[KEY] is not old and offer_catalog._cache[KEY].version == 3
    assert KEY not in offer_catalog._loading


async def test_a_decision_that_saw_a_newer_version_waits_for_the_reload_under_way(
    loads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer_catalog._cache[KEY] = _catalog(3)
    load = _Loads(4)
    monkeypatch.setattr(offer_catalog, "_load", load)
    tasks = [asyncio.create_task(_decide(stale_version=3)) for _ in range(10)]
    await _started(tasks)
    assert not any(t.done() for t in tasks), "none may use version 3 any more"
    load.release.set()
    got = await asyncio.gather(*tasks)
    assert load.calls == 1
    assert {c.version for c in got} == {4}


async def test_a_reload_that_read_the_stale_version_is_not_trusted(
    loads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reload under way began before the write that bumped the version: it reads 3 again,
    # so a decision that knows 3 is stale loads once more itself.
    offer_catalog._cache[KEY] = _catalog(3, age=eligibility.CACHE_SECONDS + 1)
    load = _Loads(3, 4)
    monkeypatch.setattr(offer_catalog, "_load", load)
    first = asyncio.create_task(_decide())
    await _started([first])
    second = asyncio.create_task(_decide(stale_version=3))
    await _started([second])
    load.release.set()
    assert (await first).version == 3
    assert (await second).version == 4
    assert load.calls == 2


async def test_a_failed_reload_lets_the_waiting_decisions_load_themselves(
    loads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = _Loads(RuntimeError("connection lost"), 5)
    monkeypatch.setattr(offer_catalog, "_load", load)
    first = asyncio.create_task(_decide())
    await _started([first])
    second = asyncio.create_task(_decide())
    await _started([second])
    load.release.set()
    with pytest.raises(RuntimeError):
        await first
    assert (await second).version == 5
    assert load.calls == 2
    assert KEY not in offer_catalog._loading
