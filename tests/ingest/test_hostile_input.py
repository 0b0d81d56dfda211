"""Input that used to reach a 500 or poison a profile, on the tracking API: numbers past 64 bits
or past a double's range, NUL, unpaired surrogates, invalid UTF-8, deep nesting and dates at
the edges. Each is refused on its own (a batch keeps its valid neighbours) with a precise code,
and nothing stored breaks a later read. The rules: app/core/jsonrules.py, docs/INGEST.md."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import WorkspaceKeys

PROBLEM = "application/problem+json"
GOOD = b'{"type":"track","userId":"good","event":"Viewed","messageId":"good-1"}'


async def post_batch(client: httpx.AsyncClient, ws: WorkspaceKeys, body: bytes) -> httpx.Response:
    return await client.post(
        "/v1/batch", content=body, auth=ws.write_auth, headers={"Content-Type": "application/json"}
    )


def batch_of(*messages: bytes, extra: bytes = b"") -> bytes:
    return b'{"batch":[' + b",".join(messages) + b"]" + extra + b"}"


async def read_everything(client: httpx.AsyncClient, ws: WorkspaceKeys) -> list[dict]:
    """Every read a stored message feeds: event pages, profiles, look-ups, computed traits."""
    headers = ws.admin_headers
    resp = await client.get("/v1/events", headers=headers)
    assert resp.status_code == 200, resp.text
    stored = resp.json()["data"]
    refresh = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=headers)
    assert refresh.status_code in (200, 202), refresh.text
    for profile_id in {e["profile_id"] for e in stored}:
        for path in (f"/v1/profiles/{profile_id}", f"/v1/profiles/{profile_id}/events",
                     f"/v1/profiles/{profile_id}/computed-traits"):
            got = await client.get(path, headers=headers)
            assert got.status_code == 200, (path, got.text)
    for e in stored:
        if e["user_id"]:
            got = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": e["user_id"]},
                                   headers=headers)
            assert got.status_code == 200, got.text
    listed = await client.get("/v1/profiles", headers=headers)
    assert listed.status_code == 200, listed.text
    return stored


BAD_MESSAGES = {
    # 2, 7: a trait or property past the ranges; -1e400 was stored and broke every later read
    "identify_trait_2_64": (b'{"type":"identify","userId":"v","messageId":"bad","traits":{"n":18446744073709551616}}',
                            "bad_number"),
    "identify_trait_1e400": (b'{"type":"identify","userId":"v","messageId":"bad","traits":{"n":1e400}}', "bad_number"),
    "revenue_minus_1e400": (b'{"type":"track","userId":"victim","event":"Order Completed","messageId":"bad",'
                            b'"properties":{"revenue":-1e400}}', "bad_number"),
    "int_2_63": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":{"n":9223372036854775808}}',
                 "bad_number"),
    "context_int": (b'{"type":"page","userId":"v","messageId":"bad","context":{"n":-9223372036854775809}}',
                    "bad_number"),
    "exponent_zero_padded": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":{"n":1E+0400}}',
                             "bad_number"),
    "400_digits": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":{"n":1' + b"0" * 400 + b"}}",
                   "bad_number"),
    # 4: invalid UTF-8 in a property and in userId
    "utf8_property": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":{"s":"\xff\xfe"}}',
                      "bad_encoding"),
    "utf8_user_id": (b'{"type":"track","userId":"v\xc3","event":"e","messageId":"bad"}', "bad_encoding"),
    # Also: an unpaired surrogate (browsers' JSON.stringify writes them) in one message
    "lone_high_surrogate": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":{"s":"\\ud800"}}',
                            "bad_character"),
    "lone_low_surrogate": (b'{"type":"identify","userId":"v","messageId":"bad","traits":{"s":"x\\udc00y"}}',
                           "bad_character"),
    "nul": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":{"s":"a\\u0000"}}',
            "bad_character"),
    # 5: sentAt at the end of time beside a timestamp: the skew correction overflowed
    "sent_at_9999": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","timestamp":"2024-01-01T00:00:00Z",'
                     b'"sentAt":"9999-12-31T23:59:59Z"}', "bad_timestamp"),
    "timestamp_past_9999_in_utc": (b'{"type":"track","userId":"v","event":"e","messageId":"bad",'
                                   b'"timestamp":"9999-12-31T23:59:59-01:00"}', "bad_timestamp"),
    "nested_65_levels": (b'{"type":"track","userId":"v","event":"e","messageId":"bad","properties":'
                         + b'{"a":' * 64 + b"1" + b"}" * 64 + b"}", "too_deep"),
}


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
async def test_a_bad_message_is_rejected_alone(client: httpx.AsyncClient, workspace: WorkspaceKeys, name: str) -> None:
    bad, code = BAD_MESSAGES[name]
    resp = await post_batch(client, workspace, batch_of(GOOD, bad))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accepted"] == 1, body
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, code)], body
    assert body["rejected"][0]["messageId"] in ("bad", None)
    stored = await read_everything(client, workspace)
    assert [e["message_id"] for e in stored] == ["good-1"]


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
async def test_single_endpoints_follow_the_same_rules(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, name: str
) -> None:
    bad, code = BAD_MESSAGES[name]
    kind = "identify" if b'"identify"' in bad else "page" if b'"page"' in bad else "track"
    resp = await client.post(f"/v1/{kind}", content=bad, auth=workspace.write_auth,
                             headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["code"] == code


async def test_numbers_at_the_limits_are_stored_exactly(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    limits = (b'{"type":"identify","userId":"edge","messageId":"edge-1","traits":{"max":9223372036854775807,'
              b'"min":-9223372036854775808,"big":1.7976931348623157e308,"tiny":5e-324,"under":1e-400}}')
    resp = await post_batch(client, workspace, batch_of(limits))
    assert resp.json()["accepted"] == 1, resp.text
    lookup = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": "edge"},
                              headers=workspace.admin_headers)
    traits = lookup.json()["traits"]
    assert traits["max"] == 2**63 - 1 and traits["min"] == -(2**63)
    assert traits["big"] == 1.7976931348623157e308
    await read_everything(client, workspace)


async def test_identify_rounds_nothing(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """/v1/identify used to round 2^64 to a float while /v1/batch kept it: one rule for both."""
    body = b'{"userId":"u","messageId":"i-1","traits":{"n":18446744073709551616}}'
    single = await client.post("/v1/identify", content=body, auth=workspace.write_auth,
                               headers={"Content-Type": "application/json"})
    batched = await post_batch(client, workspace, batch_of(body.replace(b"{", b'{"type":"identify",', 1)))
    assert single.status_code == 400 and single.json()["code"] == "bad_number"
    assert batched.json()["rejected"][0]["code"] == "bad_number"


async def test_batch_level_context_with_a_huge_integer_is_400(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    """Reproducer 1: an integer past 2^64 in the batch's own context."""
    resp = await post_batch(client, workspace, batch_of(GOOD, extra=b',"context":{"n":18446744073709551616}'))
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "bad_number"
    infinite = await post_batch(client, workspace, batch_of(GOOD, extra=b',"integrations":{"n":1e400}'))
    assert infinite.status_code == 400, infinite.text
    assert infinite.json()["code"] == "bad_number"


async def test_very_deep_bodies_are_400(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Reproducer 3: 10,000 levels in a batch was a RecursionError; a 400 on every path now."""
    deep = b"[" * 10_000 + b"]" * 10_000
    for path, body in (("/v1/batch", batch_of(GOOD, b'{"type":"track","userId":"v","event":"e","properties":{"a":'
                                                     + deep + b"}}")),
                       ("/v1/track", b'{"userId":"v","event":"e","properties":{"a":' + deep + b"}}")):
        resp = await client.post(path, content=body, auth=workspace.write_auth,
                                 headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["code"] == "too_deep"


async def test_surrogate_pairs_are_kept_and_escaped_backslashes_are_text(
    client: httpx.AsyncClient, workspace: WorkspaceKeys
) -> None:
    """Python's json writes an emoji as a surrogate pair; `\\\\ud800` is a backslash and text."""
    pair = b'{"type":"track","userId":"p","event":"e","messageId":"pair","properties":{"s":"\\ud83d\\ude00"}}'
    text = b'{"type":"track","userId":"p","event":"e","messageId":"text","properties":{"s":"\\\\ud800"}}'
    lone = b'{"type":"track","userId":"p","event":"e","messageId":"lone","properties":{"s":"\\ud83d"}}'
    resp = await post_batch(client, workspace, batch_of(pair, lone, text))
    body = resp.json()
    assert body["accepted"] == 2, body
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "bad_character")]
    stored = {e["message_id"]: e["properties"]["s"] for e in await read_everything(client, workspace)}
    assert stored == {"pair": "\U0001F600", "text": "\\ud800"}


async def test_false_alarms_cost_nothing_but_a_check(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """Long digit runs in strings (snowflake ids) and 'e123 ' in text look like numbers to the
    body-wide search; the exact check lets them through."""
    snowflake = (b'{"type":"track","userId":"1234567890123456789012","event":"Page e123 viewed","messageId":"sf",'
                 b'"properties":{"id":"98765432109876543210","ok":1e300}}')
    resp = await post_batch(client, workspace, batch_of(snowflake, GOOD))
    assert resp.json() == {"success": True, "accepted": 2, "duplicates": 0, "rejected": [], "suppressed": 0}


async def test_edge_dates_in_batch_sent_at(client: httpx.AsyncClient, workspace: WorkspaceKeys) -> None:
    """A batch-level sentAt of 9999 beside messages with their own timestamps: each message is
    refused with the reason, none overflows."""
    msg = b'{"type":"track","userId":"v","event":"e","messageId":"t","timestamp":"2024-01-01T00:00:00Z"}'
    resp = await post_batch(client, workspace, batch_of(msg, GOOD, extra=b',"sentAt":"9999-12-31T23:59:59Z"'))
    body = resp.json()
    assert body["accepted"] == 1, body
    assert body["rejected"][0]["code"] == "bad_timestamp" and "clock" in body["rejected"][0]["reason"]
