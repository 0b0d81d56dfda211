"""Bad rules answer 422 naming the JSON pointer of the bad node; hostile strings in every field
are only ever data; references between segments, cycles and the where= shorthand."""

from __future__ import annotations

from typing import Any

import pytest

from tests.segments.helpers import create_segment, load, matching, people

PROBLEM = "application/problem+json"


async def problems(client, ws, rule: Any) -> list[dict]:
    resp = await client.post("/v1/segments/preview", json={"rule": rule}, headers=ws.admin_headers)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["code"] == "invalid_rule"
    return body["errors"]


BAD: list[tuple[Any, str, str]] = [
    ({"trait": "plan", "op": "equals", "value": "x"}, "/rule/op", "unknown_op"),
    ({"and": [{"trait": "plan", "op": "eq", "value": "x"}, {"trait": "age", "op": "gt", "value": "old"}]},
     "/rule/and/1/value", "wrong_type"),
    ({"or": [{"nope": 1}]}, "/rule/or/0", "unknown_condition"),
    ({"trait": "plan", "computed": "x", "op": "exists"}, "/rule", "unknown_condition"),
    ({"not": {"event": "Order Completed", "count": {"op": "gte", "value": -1}}}, "/rule/not/count/value", "wrong_type"),
    ({"event": "Order Completed", "within_days": "ninety"}, "/rule/within_days", "wrong_type"),
    ({"event": "Order Completed", "between": ["2024-01-01", "soon"]}, "/rule/between", "wrong_type"),
    ({"event": "O", "aggregate": {"fn": "median", "property": "revenue", "op": "gt", "value": 1}}, "/rule/aggregate/fn", "unknown_op"),
    ({"event": "O", "where": [{"property": "revenue", "op": "gt"}]}, "/rule/where/0/value", "missing_value"),
    ({"trait": "age", "op": "between", "value": [1, "2024-01-01"]}, "/rule/value", "wrong_type"),
    ({"trait": "plan", "op": "exists", "value": 1}, "/rule/value", "unexpected_value"),
    ({"trait": "plan", "op": "in", "value": []}, "/rule/value", "wrong_type"),
    ({"trait": "plan", "op": "eq", "value": {"a": 1}}, "/rule/value", "wrong_type"),
    ({"trait": "", "op": "exists"}, "/rule/trait", "wrong_type"),
    ({"identifier": "email", "op": "gt", "value": "a"}, "/rule/op", "unknown_op"),
    ({"bucket": {"salt": "s", "lt": 101}}, "/rule/bucket/lt", "wrong_type"),
    ({"segment": "not-a-uuid"}, "/rule/segment", "wrong_type"),
    ({"segment": "01a241a8-0000-7000-8000-000000000000"}, "/rule/segment", "unknown_segment"),
    ({"trait": "birthday", "op": "anniversary_within_days", "value": 1.5}, "/rule/value", "wrong_type"),
    ({"trait": "plan", "op": "eq", "value": "x", "extra": 1}, "/rule/extra", "unknown_field"),
    ([{"trait": "plan"}], "/rule", "invalid_rule"),
]


@pytest.mark.parametrize(("rule", "pointer", "code"), BAD, ids=[f"{b[1]} {b[2]}" for b in BAD])
async def test_bad_rule_names_its_pointer(client, workspace, rule, pointer, code):
    if isinstance(rule, list):  # not an object at all: FastAPI's own 422
        resp = await client.post("/v1/segments/preview", json={"rule": rule}, headers=workspace.admin_headers)
        assert resp.status_code == 422 and resp.json()["errors"][0]["pointer"] == "/rule"
        return
    errors = await problems(client, workspace, rule)
    assert any(e["pointer"] == pointer and e["code"] == code for e in errors), errors


async def test_depth_and_size_limits(client, workspace):
    deep: Any = {"trait": "plan", "op": "exists"}
    for _ in range(13):
        deep = {"not": deep}
    errors = await problems(client, workspace, deep)
    assert errors[0]["code"] == "rule_too_deep" and errors[0]["pointer"].startswith("/rule/not/not")
    wide = {"or": [{"trait": f"t{i}", "op": "exists"} for i in range(501)]}
    errors = await problems(client, workspace, wide)
    assert any(e["code"] == "rule_too_large" for e in errors)
    many = {"trait": "plan", "op": "in", "value": [str(i) for i in range(1001)]}
    assert (await problems(client, workspace, many))[0]["pointer"] == "/rule/value"


async def test_create_and_patch_validate_too(client, workspace):
    resp = await client.post("/v1/segments", json={"name": "x", "rule": {"trait": "a", "op": "bogus"}},
                             headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.json()["errors"][0]["pointer"] == "/rule/op"
    seg = await create_segment(client, workspace, "ok", {"trait": "a", "op": "exists"})
    resp = await client.patch(f"/v1/segments/{seg['id']}", json={"rule": {"and": [{"x": 1}]}}, headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.json()["errors"][0]["pointer"] == "/rule/and/0"


async def test_cycles_are_rejected(client, workspace):
    a = await create_segment(client, workspace, "A", {"trait": "plan", "op": "exists"})
    b = await create_segment(client, workspace, "B", {"segment": a["id"]})
    c = await create_segment(client, workspace, "C", {"and": [{"segment": b["id"]}, {"trait": "age", "op": "gt", "value": 1}]})
    # A -> C -> B -> A
    resp = await client.patch(f"/v1/segments/{a['id']}", json={"rule": {"not": {"segment": c["id"]}}},
                              headers=workspace.admin_headers)
    assert resp.status_code == 422, resp.text
    err = resp.json()["errors"][0]
    assert err["code"] == "segment_cycle" and err["pointer"].startswith("/rule/not/segment"), err
    assert a["id"] in err["detail"]
    # itself, directly
    resp = await client.patch(f"/v1/segments/{a['id']}", json={"rule": {"segment": a["id"]}}, headers=workspace.admin_headers)
    assert resp.status_code == 422 and resp.json()["errors"][0]["code"] == "segment_cycle"
    # A referenced segment cannot be deleted while used
    resp = await client.delete(f"/v1/segments/{b['id']}", headers=workspace.admin_headers)
    assert resp.status_code == 409 and resp.json()["code"] == "segment_in_use" and "C" in resp.json()["detail"]


async def test_segment_reference_and_bucket(client, workspace):
    persons = people(30, seed=3)
    await load(client, workspace, persons)
    pro = await create_segment(client, workspace, "pro", {"trait": "plan", "op": "eq", "value": "pro"})
    assert await matching(client, workspace, {"segment": pro["id"]}) == {p.profile_id for p in persons if p.traits.get("plan") == "pro"}
    everyone = {p.profile_id for p in persons}
    low = await matching(client, workspace, {"bucket": {"salt": "holdout-2026", "lt": 40}})
    high = await matching(client, workspace, {"bucket": {"salt": "holdout-2026", "gte": 40}})
    assert low | high == everyone and not low & high and low and high
    assert await matching(client, workspace, {"bucket": {"salt": "holdout-2026", "lt": 40}}) == low  # stable
    other = await matching(client, workspace, {"bucket": {"salt": "another-test", "lt": 40}})
    assert other != low  # the salt changes the draw (30 people: equal sets are vanishingly unlikely)


HOSTILE = ["'; DROP TABLE profile; --", "\" OR 1=1 --", "x') OR ('1'='1", "%_\\", "$1", "::jsonb", "{}"]


async def test_sql_injection_attempts_are_only_data(client, workspace):
    persons = people(10, seed=5)
    await load(client, workspace, persons)
    evil = HOSTILE[0]
    rules = []
    for h in HOSTILE:
        rules += [
            {"trait": h, "op": "eq", "value": h},
            {"trait": "city", "op": "contains", "value": h},
            {"trait": "city", "op": "starts_with", "value": h},
            {"trait": "city", "op": "in", "value": [h, "x"]},
            {"computed": h, "op": "gte", "value": 1},
            {"identifier": h, "op": "eq", "value": h},
            {"identifier": "email", "op": "contains", "value": h},
            {"event": h, "where": [{"property": h, "op": "eq", "value": h}], "count": {"op": "gte", "value": 2}},
            {"event": "Order Completed", "aggregate": {"fn": "sum", "property": h, "op": "gt", "value": 1}},
            {"bucket": {"salt": h, "lt": 50}},
        ]
    for rule in rules:
        resp = await client.post("/v1/segments/preview", json={"rule": rule}, headers=workspace.admin_headers)
        assert resp.status_code == 200, (rule, resp.text)
        if "bucket" not in rule:
            assert resp.json()["count"] == 0, rule
    # The city that really holds the hostile text matches by it, literally.
    hit = await matching(client, workspace, {"trait": "city", "op": "contains", "value": "DROP TABLE profile;--"})
    assert hit == {p.profile_id for p in persons if "DROP TABLE" in p.traits["city"]}
    # names and descriptions are stored as given
    resp = await client.post("/v1/segments", json={"name": evil, "description": evil, "rule": {"trait": evil, "op": "exists"}},
                             headers=workspace.admin_headers)
    assert resp.status_code == 201 and resp.json()["name"] == evil
    assert (await client.get("/v1/profiles", params={"limit": 1}, headers=workspace.admin_headers)).status_code == 200


SHORTHAND = [
    (["traits.plan:eq:pro"], {"trait": "plan", "op": "eq", "value": "pro"}),
    (["traits.age:gte:40"], {"trait": "age", "op": "gte", "value": 40}),
    (["traits.age:gt:30", "traits.plan:ne:free"], {"and": [{"trait": "age", "op": "gt", "value": 30},
                                                            {"trait": "plan", "op": "ne", "value": "free"}]}),
    (["traits.city:contains:field"], {"trait": "city", "op": "contains", "value": "field"}),
    (["traits.plan:exists"], {"trait": "plan", "op": "exists"}),
    (["traits.plan:missing"], {"trait": "plan", "op": "missing"}),
    (["computed.order_count:gte:2"], {"computed": "order_count", "op": "gte", "value": 2}),
    (["traits.plan:in:pro,enterprise"], {"trait": "plan", "op": "in", "value": ["pro", "enterprise"]}),
    (["traits.age:between:[30,50]"], {"trait": "age", "op": "between", "value": [30, 50]}),
    (["traits.signed_up_at:within_last_days:200"], {"trait": "signed_up_at", "op": "within_last_days", "value": 200}),
]


@pytest.mark.parametrize(("where", "rule"), SHORTHAND, ids=[",".join(s[0]) for s in SHORTHAND])
async def test_where_shorthand_answers_like_its_rule(client, workspace, where, rule):
    persons = people(25, seed=11)
    await load(client, workspace, persons)
    listed: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"where": where, "limit": 7} | ({"cursor": cursor} if cursor else {})
        resp = await client.get("/v1/profiles", params=params, headers=workspace.admin_headers)
        assert resp.status_code == 200, resp.text
        listed |= {p["id"] for p in resp.json()["data"]}
        if not (cursor := resp.json().get("next_cursor")):
            break
    assert listed == await matching(client, workspace, rule)
    assert listed  # the filter selects someone


async def test_where_shorthand_errors(client, workspace):
    for bad, pointer in (("traits.age:between:1", "/where/0/value"), ("traits.age:gt:old", "/where/0/value"),
                         ("traits.plan:like:x", "/where/0/op")):
        resp = await client.get("/v1/profiles", params={"where": bad}, headers=workspace.admin_headers)
        assert resp.status_code == 422 and resp.json()["code"] == "bad_filter", resp.text
        assert resp.json()["errors"][0]["pointer"] == pointer and resp.json()["errors"][0]["location"] == "query"
