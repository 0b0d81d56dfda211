"""Eligibility rules: JSON rules compiled to boolean SQL over the `profile` table.

Every rule of a decision's candidate offers becomes one column of a single SELECT on the
person's profile row (see decisions/repository.py), so eligibility costs one round trip
whatever the number of offers. For `explain`, each node of a failing rule is compiled as
its own column too, and the JSON pointers of the nodes that are false name the reason.

Rules: {"all": [...]}, {"any": [...]}, {"not": rule}, and conditions
{"trait": name, "op": op, "value": v} / {"computed": name, "op": op, "value": v} with op in
eq ne gt gte lt lte in contains exists.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from app.core.errors import FieldError, ValidationFailed
from app.profiles.models import Profile

MAX_DEPTH = 10
MAX_NODES = 200
_KEY = re.compile(r"^[A-Za-z0-9_.\-$ ]{1,128}$")
_CMP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
OPS = (*_CMP, "in", "contains", "exists")

profile = Profile.__table__
_ctv = sa.table(
    "computed_trait_value", sa.column("workspace_id"), sa.column("profile_id"), sa.column("name"),
    sa.column("value", pg.JSONB),
)


def _bad(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        f"The eligibility rule is invalid at {pointer or '/'}: {detail}", code="invalid_rule",
        errors=[FieldError(pointer="/eligibility" + pointer, location="body", detail=detail, code="invalid_rule")],
    )


def validate(rule: dict[str, Any]) -> None:
    """Raise a 422 naming the JSON pointer of the first bad node."""
    count = 0

    def walk(node: Any, pointer: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _bad(pointer, f"a rule has at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise _bad(pointer, f"a rule nests at most {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise _bad(pointer, "a node is an object")
        if "all" in node or "any" in node:
            key = "all" if "all" in node else "any"
            if len(node) != 1 or not isinstance(node[key], list) or not node[key]:
                raise _bad(pointer, f"`{key}` takes a non-empty list and nothing else")
            for i, child in enumerate(node[key]):
                walk(child, f"{pointer}/{key}/{i}", depth + 1)
        elif "not" in node:
            if len(node) != 1:
                raise _bad(pointer, "`not` takes one rule and nothing else")
            walk(node["not"], f"{pointer}/not", depth + 1)
        elif "trait" in node or "computed" in node:
            field = "trait" if "trait" in node else "computed"
            if not isinstance(node[field], str) or not _KEY.match(node[field]):
                raise _bad(pointer + "/" + field, "a trait name is 1-128 letters, digits, _ . - $ or spaces")
            op = node.get("op")
            if op not in OPS:
                raise _bad(pointer + "/op", f"op is one of {', '.join(OPS)}")
            if op != "exists" and "value" not in node:
                raise _bad(pointer + "/value", f"`{op}` needs a value")
            if op == "in" and not isinstance(node["value"], list):
                raise _bad(pointer + "/value", "`in` takes a list")
            if op == "contains" and not isinstance(node["value"], str):
                raise _bad(pointer + "/value", "`contains` takes a string")
            extra = set(node) - {field, "op", "value"}
            if extra:
                raise _bad(pointer, f"unknown keys {sorted(extra)}")
        else:
            raise _bad(pointer, "a node is all, any, not, or a trait/computed condition")

    walk(rule, "", 0)


def _json(value: Any) -> sa.ColumnElement[Any]:
    return sa.cast(sa.literal(orjson.dumps(value).decode()), pg.JSONB)


def compile_rule(rule: dict[str, Any], *, workspace_id: uuid.UUID, now: datetime | None = None) -> sa.ColumnElement[bool]:
    """The rule as a boolean over `profile` (false, never NULL: a missing trait fails its condition)."""
    return sa.func.coalesce(_compile(rule, workspace_id), sa.false())


def _compile(node: dict[str, Any], workspace_id: uuid.UUID) -> sa.ColumnElement[bool]:
    if "all" in node:
        return sa.and_(*[sa.func.coalesce(_compile(c, workspace_id), sa.false()) for c in node["all"]])
    if "any" in node:
        return sa.or_(*[sa.func.coalesce(_compile(c, workspace_id), sa.false()) for c in node["any"]])
    if "not" in node:
        return sa.not_(sa.func.coalesce(_compile(node["not"], workspace_id), sa.false()))
    if "trait" in node:
        expr: sa.ColumnElement[Any] = profile.c.traits[node["trait"]]
    else:
        expr = (
            sa.select(_ctv.c.value)
            .where(_ctv.c.workspace_id == profile.c.workspace_id, _ctv.c.profile_id == profile.c.id,
                   _ctv.c.name == node["computed"])
            .correlate(profile).scalar_subquery()
        )
    op = node["op"]
    if op == "exists":
        return expr.is_not(None)
    if op == "in":
        return sa.or_(*[expr == _json(v) for v in node["value"]]) if node["value"] else sa.false()
    if op == "contains":
        as_text = expr.op("#>>", return_type=sa.Text)(sa.literal([], pg.ARRAY(sa.Text)))
        escaped = node["value"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return as_text.ilike(f"%{escaped}%", escape="\\")
    value = node["value"]
    if _CMP[op] not in ("=", "<>") and isinstance(value, int | float):
        # Order numbers as numbers (jsonb orders a string above any number).
        return sa.and_(sa.func.jsonb_typeof(expr) == "number", expr.op(_CMP[op])(_json(value)))
    return expr.op(_CMP[op])(_json(value))


def leaves(rule: dict[str, Any], pointer: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every node of the rule with its JSON pointer (for explain: which nodes are false)."""
    out = [(pointer, rule)]
    for key in ("all", "any"):
        if key in rule:
            for i, child in enumerate(rule[key]):
                out += leaves(child, f"{pointer}/{key}/{i}")
    if "not" in rule:
        out += leaves(rule["not"], f"{pointer}/not")
    return out


def failing_nodes(rule: dict[str, Any], values: dict[str, bool]) -> list[str]:
    """The deepest false nodes that make the rule false, given each node's value by pointer."""
    def why(node: dict[str, Any], pointer: str) -> list[str]:
        if "all" in node:
            out = []
            for i, c in enumerate(node["all"]):
                p = f"{pointer}/all/{i}"
                if not values.get(p, False):
                    out += why(c, p)
            return out or [pointer]
        if "any" in node:
            return [pointer]  # every branch is false; the node itself is the reason
        return [pointer]

    return why(rule, "")
