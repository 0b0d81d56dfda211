"""Fuzzing /v1/batch (hypothesis): bodies mixing good messages with values at and past every
limit (64-bit integers, doubles, NUL, surrogates, invalid UTF-8, nesting, dates at the edges).
Each message must be stored, or refused alone with the code its worst value calls for, and
nothing stored may break a later read: event pages, profiles, look-ups, computed traits after
a refresh. The rules: app/core/jsonrules.py."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.conftest import WorkspaceKeys

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# (JSON text of a value, the code that refuses a message holding it, or None when it is stored)
VALUES: list[tuple[bytes, str | None]] = [
    (b"9223372036854775807", None), (b"-9223372036854775808", None), (b"9223372036854775808", "bad_number"),
    (b"-9223372036854775809", "bad_number"), (b"18446744073709551616", "bad_number"),
    (b"1" + b"0" * 400, "bad_number"), (b"1.7976931348623157e308", None), (b"1e309", "bad_number"),
    (b"-1e400", "bad_number"), (b"1E+0400", "bad_number"), (b"5e-324", None), (b"1e-400", None), (b"-0.0", None),
    (b"12345678901234567890.5", None), (b'"1234567890123456789012"', None), (b'"page e123 "', None),
    (b'"plain"', None), (b'"caf\xc3\xa9 \\ud83d\\ude00"', None), (b'"\\\\ud800"', None), (b'"a\\u0000b"', "bad_character"),
    (b'"\\ud800"', "bad_character"), (b'"x\\udc00"', "bad_character"), (b'"\xff\xfe"', "bad_encoding"),
    (b'"\xc3"', "bad_encoding"), (b"[" * 62 + b"1" + b"]" * 62, None), (b"[" * 63 + b"1" + b"]" * 63, "too_deep"),
    (b"true", None), (b"null", None),
]
TIMES: list[tuple[bytes | None, bytes | None, str | None]] = [
    (None, None, None), (b'"2024-05-01T10:00:00Z"', None, None), (b'"1970-01-01T00:00:00Z"', None, None),
    (b'"1969-12-31T23:59:59Z"', None, "bad_timestamp"), (b'"9999-12-31T23:59:59Z"', None, None),
    (b'"9999-12-31T23:59:59-01:00"', None, "bad_timestamp"), (b'"0001-01-01T00:00:00+01:00"', None, "bad_timestamp"),
    (b'"2024-05-01T10:00:00Z"', b'"9999-12-31T23:59:59Z"', "bad_timestamp"),
    (b'"2024-05-01T10:00:00Z"', b'"2024-05-01T10:00:05Z"', None),
]
_counter = itertools.count()


@st.composite
def messages(draw) -> tuple[bytes, set[str]]:
    n = next(_counter)
    kind = draw(st.sampled_from(["track", "identify", "page"]))
    where = "traits" if kind == "identify" else "properties"
    picked = draw(st.lists(st.sampled_from(VALUES), min_size=0, max_size=3))
    timestamp, sent_at, time_code = draw(st.sampled_from(TIMES))
    revenue = draw(st.sampled_from([v for v in VALUES if not v[0].startswith(b'"') and b"[" not in v[0]]))
    fields = b",".join(b'"k%d":%s' % (i, text) for i, (text, _) in enumerate(picked))
    if kind == "track":
        fields = (fields + b"," if fields else b"") + b'"revenue":' + revenue[0]
        picked = [*picked, revenue]
    parts = [b'"type":"%s"' % kind.encode(), b'"userId":"fuzz-%d"' % (n % 7), b'"messageId":"fz-%d"' % n,
             b'"%s":{%s}' % (where.encode(), fields)]
    if kind == "track":
        parts.append(b'"event":"Order Completed"')
    if timestamp is not None:
        parts.append(b'"timestamp":' + timestamp)
    if sent_at is not None:
        parts.append(b'"sentAt":' + sent_at)
    # A message that breaks several rules is refused for one of them.
    codes = {code for _, code in picked if code} | ({time_code} if time_code else set())
    return b"{" + b",".join(parts) + b"}", codes


async def read_back(client: httpx.AsyncClient, ws: WorkspaceKeys) -> set[str]:
    headers = ws.admin_headers
    seen: set[str] = set()
    profiles: set[str] = set()
    cursor = None
    while True:
        page = await client.get("/v1/events", params={"limit": 7, **({"cursor": cursor} if cursor else {})},
                                headers=headers)
        assert page.status_code == 200, page.text
        for e in page.json()["data"]:
            seen.add(e["message_id"])
            profiles.add(e["profile_id"])
        if not (cursor := page.json().get("next_cursor")):
            break
    refresh = await client.post("/v1/computed-traits/refresh", params={"wait": "true"}, headers=headers)
    assert refresh.status_code in (200, 202), refresh.text
    for pid in profiles:
        for path in (f"/v1/profiles/{pid}", f"/v1/profiles/{pid}/computed-traits", f"/v1/profiles/{pid}/events"):
            got = await client.get(path, headers=headers)
            assert got.status_code == 200, (path, got.text)
    for i in range(7):
        got = await client.get("/v1/profiles/lookup", params={"type": "user_id", "value": f"fuzz-{i}"}, headers=headers)
        assert got.status_code in (200, 404), got.text
    assert (await client.get("/v1/profiles", headers=headers)).status_code == 200
    return seen


@given(batch=st.lists(messages(), min_size=1, max_size=6))
@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
async def test_each_message_is_stored_or_refused_alone(
    client: httpx.AsyncClient, workspace: WorkspaceKeys, batch: list[tuple[bytes, set[str]]]
) -> None:
    body = b'{"batch":[' + b",".join(m for m, _ in batch) + b"]}"
    resp = await client.post("/v1/batch", content=body, auth=workspace.write_auth,
                             headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    refused = {r["index"]: r["code"] for r in result["rejected"]}
    assert refused.keys() == {i for i, (_, codes) in enumerate(batch) if codes}, (result, [c for _, c in batch])
    assert all(code in batch[i][1] for i, code in refused.items()), (result, [c for _, c in batch])
    assert result["accepted"] + result["duplicates"] == len(batch) - len(refused)
    stored = await read_back(client, workspace)
    for message, codes in batch:
        message_id = message.split(b'"messageId":"', 1)[1].split(b'"', 1)[0].decode()
        assert (message_id in stored) == (not codes), (message, codes)
