"""Consent signals carried by ingested messages (no database, no framework: the ingest parser
reads them on its hot path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_CATEGORIES = 50


@dataclass(frozen=True, slots=True)
class Signal:
    """What one message says about consent: consent-manager category preferences (Segment's
    `context.consent.categoryPreferences`), the Global Privacy Control flag (`context.gpc`), or,
    for a consent import's row, an explicit record."""

    categories: tuple[tuple[str, bool], ...] = ()
    gpc: bool = False
    record: dict[str, Any] | None = None


def signal_from_context(consent: Any, gpc: Any) -> Signal | None:
    """`context.consent` and `context.gpc` as a Signal, or None when they say nothing usable."""
    categories: tuple[tuple[str, bool], ...] = ()
    if isinstance(consent, dict):
        prefs = consent.get("categoryPreferences")
        if isinstance(prefs, dict):
            categories = tuple((str(k)[:64], v) for k, v in prefs.items() if isinstance(v, bool))[:MAX_CATEGORIES]
    if not categories and gpc is not True:
        return None
    return Signal(categories=categories, gpc=gpc is True)
