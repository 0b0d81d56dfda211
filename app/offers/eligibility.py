"""Eligibility rules: segment rules (app.segments), compiled to boolean SQL over `profile`.

An offer's `eligibility` is any segment rule (`{"and": [...]}`, `{"trait": ...}`,
`{"computed": ...}`, `{"event": ...}`, `{"consent": ...}`...) or `{"segment": id}`. Every
rule of a decision's candidate offers becomes one column of a single SELECT on the person's
profile row (see decisions/repository.py), so eligibility costs one round trip whatever the
number of offers. For `explain`, every node of each rule is a column too, and the JSON
pointers of the false nodes name the reason.

Compiling a rule builds SQLAlchemy expressions in Python (about a millisecond for a rule of a
few conditions), which for 50 offers would cost a decision more than all its SQL; decisions
therefore keep compiled rules with the catalog they belong to (app/offers/catalog.py) for at
most `CACHE_SECONDS`: windows such as "in the last 30 days" are then measured from a clock at
most that old, and a change to a segment an offer's rule refers to reaches decisions within
that time. A change to the offer itself applies to the next decision.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.segments import service as segment_service


async def validate(session: AsyncSession, *, workspace_id: uuid.UUID, rule: dict[str, Any]) -> None:
    """Raise a 422 naming the JSON pointer (under /eligibility) of every bad node."""
    await segment_service.compile_rule_tree(session, workspace_id=workspace_id, rule=rule, base_pointer="/eligibility")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    clause: sa.ColumnElement[bool]
    nodes: list[tuple[str, str, sa.ColumnElement[bool], list[int]]]  # pointer, kind, clause, children


CACHE_SECONDS = 5.0


async def compile_rule(
    session: AsyncSession, *, workspace_id: uuid.UUID, rule: dict[str, Any], now: datetime | None = None,
) -> CompiledRule:
    """The rule as a boolean column over `profile`, and each of its nodes as one (for explain)."""
    return await _compile(session, workspace_id=workspace_id, rule=rule, now=now or datetime.now(UTC))


async def _compile(
    session: AsyncSession, *, workspace_id: uuid.UUID, rule: dict[str, Any], now: datetime | None
) -> CompiledRule:
    compiled, _ = await segment_service.compile_rule_tree(
        session, workspace_id=workspace_id, rule=rule, now=now, base_pointer=""
    )
    nodes: list[Any] = []

    def collect(node: Any) -> int:
        index = len(nodes)
        nodes.append(None)
        children = [collect(c) for c in node.children]
        nodes[index] = (node.pointer, node.kind, sa.func.coalesce(node.clause, sa.false()), children)
        return index

    collect(compiled)
    return CompiledRule(sa.func.coalesce(compiled.clause, sa.false()), nodes)


def failing_nodes(rule: CompiledRule, values: list[bool]) -> list[str]:
    """The deepest false nodes that make the rule false: below an `and`, its false children;
    an `or` or `not` that is false is itself the reason."""
    def why(i: int) -> list[str]:
        pointer, kind, _, children = rule.nodes[i]
        if kind == "and":
            out = [p for c in children if not values[c] for p in why(c)]
            return out or [pointer]
        if kind == "segment" and children:
            out = [p for c in children if not values[c] for p in why(c)]
            return out or [pointer]
        return [pointer]

    return why(0)
