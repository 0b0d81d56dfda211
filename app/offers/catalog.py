"""A placement's catalog as decisions read it: the placement, its offers and their compiled
eligibility rules, kept per process and checked against the database on every decision.

Loading the catalog costs a decision two statements and the ORM objects of every offer, and
compiling 50 rules costs more again; all of it changes only when someone edits the catalog.
So a loaded catalog is kept per (workspace, placement) with the workspace's
`catalog_version`, a counter the database bumps on every write to `offer` or `placement`
(migration 0020). A decision reads that counter in the profile read it makes anyway (one more
column) and reloads the catalog when it differs: an edit, a pause or a deletion applies to the
very next decision, in every process. Rules are recompiled at the latest every
`eligibility.CACHE_SECONDS`, because their windows ("in the last 30 days") are measured from
the clock they were compiled with and segments they refer to may change (see
app/offers/eligibility.py).

One decision reloads, the others do not wait for it: under load dozens of decisions for the
same placement are in flight when its time runs out, and each compiling the 50 rules again
cost a third of the decisions' CPU. While a reload is under way, a decision whose kept catalog
is only old by time uses it; one that saw a newer version waits for the reload (and loads
again itself if that reload read the version it had).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.offers import eligibility, repository
from app.offers import service as offer_service
from app.offers.models import Offer, Placement
from app.workspaces.models import Workspace


@dataclass(frozen=True, slots=True)
class OfferView:
    """An offer as a decision uses it (plain attributes: no ORM instrumentation per read)."""

    id: uuid.UUID
    name: str
    kind: str
    content: dict[str, Any]
    placements: tuple[str, ...]
    valid_from: datetime | None
    valid_until: datetime | None
    eligibility: dict[str, Any] | None
    value: float
    weight: float
    priority: int
    prior_propensity: float | None
    caps: dict[str, Any]
    paused: bool

    @classmethod
    def of(cls, o: Offer) -> OfferView:
        return cls(o.id, o.name, o.kind, dict(o.content or {}), tuple(o.placements or ()), o.valid_from, o.valid_until,
                   o.eligibility, o.value, o.weight, o.priority, o.prior_propensity, dict(o.caps or {}), o.paused)


@dataclass(frozen=True, slots=True)
class PlacementView:
    id: uuid.UUID
    name: str
    channel: str
    max_offers: int
    fallback_offer_id: uuid.UUID | None
    exploration: str
    epsilon: float
    control_share: float
    control_mode: str

    @classmethod
    def of(cls, p: Placement) -> PlacementView:
        return cls(p.id, p.name, p.channel, p.max_offers, p.fallback_offer_id, p.exploration, p.epsilon,
                   p.control_share, p.control_mode)


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a decision at this placement starts from. `offers` are the channel's offers that may
    fill this placement, paused and expired ones included (explain reports them); `rules[i]` is
    offer i's compiled eligibility rule, or None when it has none."""

    version: int
    loaded_at: float
    placement: PlacementView
    offers: tuple[OfferView, ...]
    rules: tuple[eligibility.CompiledRule | None, ...]
    fallback: OfferView | None

    @property
    def capped(self) -> list[uuid.UUID]:
        return [o.id for o in self.offers if o.caps]

    @property
    def has_complements(self) -> bool:
        return any(o.kind == "complementary_item" for o in self.offers)


CACHE_SIZE = 1024
_cache: OrderedDict[tuple[uuid.UUID, str], Catalog] = OrderedDict()
_loading: dict[tuple[uuid.UUID, str], asyncio.Future[Catalog | None]] = {}  # reloads under way


def version_column(workspace_id_column: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    """The workspace's catalog version, as a column of a statement on a table with workspace_id
    (decisions put it in their profile read)."""
    ws = Workspace.__table__
    return sa.select(ws.c.catalog_version).where(ws.c.id == workspace_id_column).scalar_subquery()


async def for_placement(
    session: AsyncSession, *, workspace_id: uuid.UUID, placement: str, now: datetime, stale_version: int | None = None,
) -> Catalog:
    """The placement's catalog: the kept one unless it is older than the rules' cache time or
    its version is `stale_version` (the profile read saw a newer one), else loaded now (by one
    decision at a time per placement and process: see the module's docstring).
    Raises PlacementNotFound when there is no such placement."""
    key = (workspace_id, placement)
    hit = _cache.get(key)
    current = hit is not None and hit.version != stale_version
    if hit is not None and current and time.monotonic() - hit.loaded_at < eligibility.CACHE_SECONDS:
        _cache.move_to_end(key)
        return hit
    pending = _loading.get(key)
    if pending is not None:
        if hit is not None and current:
            return hit  # only its time is up, and another decision is reloading it right now
        loaded = await asyncio.shield(pending)
        if loaded is not None and loaded.version != stale_version:
            return loaded
    return await _reload(session, key, now)


async def _reload(session: AsyncSession, key: tuple[uuid.UUID, str], now: datetime) -> Catalog:
    """Load the catalog and keep it. Decisions arriving meanwhile find the load in `_loading`
    and get its result, or None when it failed or was cancelled (they then load themselves)."""
    done: asyncio.Future[Catalog | None] = asyncio.get_running_loop().create_future()
    _loading[key] = done
    catalog: Catalog | None = None
    try:
        catalog = await _load(session, key[0], key[1], now)
        _cache[key] = catalog
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return catalog
    finally:
        done.set_result(catalog)
        if _loading.get(key) is done:
            del _loading[key]


async def _load(session: AsyncSession, workspace_id: uuid.UUID, name: str, now: datetime) -> Catalog:
    # The version first: a write committed after this read bumps it past what is kept, so the
    # next decision reloads; read after, it could hide a write the rows below missed.
    version = await session.scalar(
        sa.select(Workspace.__table__.c.catalog_version).where(Workspace.__table__.c.id == workspace_id)
    )
    loaded_at = time.monotonic()
    placement = await offer_service.placement_by_name(session, workspace_id=workspace_id, name=name)
    offers = [OfferView.of(o) for o in await repository.candidates(session, workspace_id, placement.channel)
              if not o.placements or placement.name in o.placements]
    rules = tuple([
        await eligibility.compile_rule(session, workspace_id=workspace_id, rule=o.eligibility, now=now)
        if o.eligibility else None
        for o in offers
    ])
    fallback = None
    if placement.fallback_offer_id is not None:
        fb = await repository.get_offer(session, workspace_id, placement.fallback_offer_id)
        fallback = OfferView.of(fb) if fb is not None else None
    return Catalog(int(version or 0), loaded_at, PlacementView.of(placement), tuple(offers), rules, fallback)


def forget(workspace_id: uuid.UUID | None = None) -> None:
    """Drop kept catalogs (of one workspace, or all): for tests and tools."""
    for key in [k for k in _cache if workspace_id is None or k[0] == workspace_id]:
        del _cache[key]
