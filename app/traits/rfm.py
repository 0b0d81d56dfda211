"""RFM: recency, frequency and monetary scores (1-5, by quintile) and the tier they put a customer in.

Scores are quintiles across the workspace's customers with orders (SQL `ntile(5)`, see
`repository.upsert_rfm`): 5 is the most recent last order, the most orders, the highest total
revenue. Customers with equal values get equal scores (the lowest quintile their value reaches).

Tiers follow the widely used R x F segment map (e.g. the "RFM segmentation" grid popularised
by Putler and the customer-segmentation literature), reduced to eight tiers: monetary value
is in the score code but does not move the tier, as in that map.

    F ->        1            2                   3                   4          5
    R=5   new          potential_loyalist  potential_loyalist  champions  champions
    R=4   new          potential_loyalist  potential_loyalist  loyal      loyal
    R=3   hibernating  hibernating         potential_loyalist  loyal      loyal
    R=2   hibernating  hibernating         at_risk             at_risk    cant_lose
    R=1   lost         lost                at_risk             at_risk    cant_lose

(The map's "promising" R4 F1 is folded into `new`, "about to sleep" R3 F1-2 into
`hibernating`, "need attention" R3 F3 into `potential_loyalist`.)
"""

from __future__ import annotations

TIERS = ("champions", "loyal", "potential_loyalist", "new", "at_risk", "cant_lose", "hibernating", "lost")

# (recency score, frequency score) -> tier; rows are R = 5..1, columns F = 1..5.
_GRID = {
    5: ("new", "potential_loyalist", "potential_loyalist", "champions", "champions"),
    4: ("new", "potential_loyalist", "potential_loyalist", "loyal", "loyal"),
    3: ("hibernating", "hibernating", "potential_loyalist", "loyal", "loyal"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    1: ("lost", "lost", "at_risk", "at_risk", "cant_lose"),
}
TIER_OF: dict[tuple[int, int], str] = {(r, f): tier for r, row in _GRID.items() for f, tier in enumerate(row, start=1)}


def tier(recency: int, frequency: int) -> str:
    """The tier of a customer with these scores (each 1-5)."""
    return TIER_OF[(recency, frequency)]


def code(recency: int, frequency: int, monetary: int) -> str:
    """The three scores as one code, e.g. "545"."""
    return f"{recency}{frequency}{monetary}"


def tier_sql(recency: str, frequency: str) -> str:
    """A SQL CASE giving the tier for two integer score expressions (built from constants only)."""
    branches = []
    for name in TIERS:
        cells = ", ".join(f"({r}, {f})" for (r, f), t in sorted(TIER_OF.items()) if t == name)
        branches.append(f"WHEN ({recency}, {frequency}) IN ({cells}) THEN '{name}'")
    return "CASE " + " ".join(branches) + " END"
