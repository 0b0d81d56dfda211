"""The two parsing paths of /v1/batch agree: whatever the fast path (msgspec, raw bytes) takes
must come out exactly as the plain path (Python objects) would have parsed it."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from app.identity.normalize import IdentitySettings
from app.ingest import parser
from app.ingest.parser import ParseOptions, decode_batch_body, parse_batch, parse_raw_batch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OPTS = ParseOptions(
    received_at=NOW, max_message_bytes=32_000, future_tolerance=timedelta(minutes=5), identity=IdentitySettings()
)

MESSAGES: list[dict] = [
    {"type": "track", "messageId": "m1", "userId": "u1", "anonymousId": "a1", "event": "Order Completed",
     "timestamp": "2026-11-23T11:00:00Z", "sentAt": "2026-11-23T11:00:05Z",
     "properties": {"revenue": 12.5, "products": [{"sku": "x", "price": 1e2}], "emoji": "😀 \u00e9"},
     "context": {"ip": "203.0.113.7", "library": {"name": "analytics-python"}}, "integrations": {"All": True}},
    {"type": "identify", "messageId": "m2", "userId": 42, "traits": {"email": " Jane@Example.COM ", "plan": "pro"},
     "context": {"traits": {"phone": "+44 20 7946 0958"}, "traits_set_once": {"first_seen": "2026"},
                 "traits_unset": ["trial"], "externalIds": [{"type": "Shopify ID", "id": "s-9", "collection": "users"}]}},
    {"type": "PAGE", "messageId": "m3", "anonymousId": "a3", "name": "  Home  ", "properties": {}, "context": None},
    {"type": "screen", "messageId": "m4", "user_id": "snake", "anonymous_id": "snake-anon", "name": "Cart"},
    {"type": "group", "messageId": "m5", "userId": "u5", "groupId": 77, "traits": {"name": "Acme"}},
    {"type": "alias", "messageId": "m6", "userId": "u6", "previousId": "a6", "originalTimestamp": "2026-11-23T10:00:00+01:00"},
    {"type": "track", "messageId": "m7", "userId": "u7", "event": "Future", "timestamp": "2030-01-01T00:00:00Z"},
    {"type": "track", "messageId": "m8", "userId": "u8", "anonymousId": "null", "event": "Blocked anon"},
    {"type": "track", "messageId": "m9", "userId": "u9", "event": "Escaped", "properties": {"path": "C:\\\\u0000dir"}},
    {"type": "track", "messageId": "m10", "userId": "u10", "event": "Zone-less", "timestamp": "2026-11-23T09:00:00"},
]
# Spelled with escapes, the context key still counts (orjson.dumps does not escape it, so by hand).
ESCAPED_CONTEXT = (b'{"type":"track","messageId":"m11","userId":"u11","event":"E",'
                   b'"context":{"\\u0074raits":{"email":"esc@example.com"}}}')


def fields(p: parser.ParsedMessage) -> dict:
    out = {name: getattr(p, name) for name in p.__struct_fields__ if name != "row"}
    out["row"] = orjson.loads(p.row)
    return out


def both(messages: list[dict], opts: ParseOptions = OPTS) -> tuple[tuple, tuple]:
    body = orjson.dumps({"batch": messages})
    decoded = decode_batch_body(body)
    assert decoded is not None
    fast = parse_raw_batch(decoded.messages, opts)
    slow = parse_batch(copy.deepcopy(messages), opts)
    return fast, slow


def test_fast_path_parses_exactly_as_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = decode_batch_body(orjson.dumps({"batch": MESSAGES}))
    fallbacks = []
    real = parser.parse_message
    monkeypatch.setattr(parser, "parse_message", lambda *a, **k: fallbacks.append(a[1]) or real(*a, **k))
    fast_ok, fast_rej = parse_raw_batch(decoded.messages, OPTS)
    assert fallbacks == [], "every message here is one the fast path must take itself"
    monkeypatch.undo()
    slow_ok, slow_rej = parse_batch(copy.deepcopy(MESSAGES), OPTS)
    assert fast_rej == slow_rej == []
    assert len(fast_ok) == len(MESSAGES)
    assert [fields(p) for p in fast_ok] == [fields(p) for p in slow_ok]


def test_escaped_context_keys_are_read() -> None:
    decoded = decode_batch_body(b'{"batch":[' + ESCAPED_CONTEXT + b"]}")
    (fast,), _ = parse_raw_batch(decoded.messages, OPTS)
    (slow,), _ = parse_batch([orjson.loads(ESCAPED_CONTEXT)], OPTS)
    assert ("email", "esc@example.com", "esc@example.com") in fast.keys
    assert fast.keys == slow.keys


def test_fast_path_keeps_the_clients_bytes_for_objects() -> None:
    body = b'{"batch":[{"type":"track","messageId":"k","userId":"u","event":"E","properties":{"b": 1, "a": [1, 2]}}]}'
    decoded = decode_batch_body(body)
    (parsed,), _ = parse_raw_batch(decoded.messages, OPTS)
    assert b'"properties":{"b": 1, "a": [1, 2]}' in parsed.row


@pytest.mark.parametrize(
    "message",
    [
        {"type": "track", "messageId": "x", "userId": True, "event": "E"},  # boolean id: slow path names it
        {"type": "track", "messageId": 12, "userId": "u", "event": "E"},  # numeric messageId
        {"type": "track", "userId": "u", "event": "E", "timestamp": "2026-11-23T10:00:00Z"},  # content-hash id
        {"type": "track", "messageId": "", "userId": "u", "event": "E", "timestamp": "2026-11-23T10:00:00Z"},
        {"type": "track", "messageId": "x", "userId": "u", "event": "E", "properties": [1]},  # not an object
        {"type": "track", "messageId": "x", "userId": "u"},  # missing event
        {"type": "nope", "messageId": "x", "userId": "u"},
        {"type": "track", "messageId": "x", "event": "E"},
        {"type": "track", "messageId": "x", "userId": "u", "event": "E", "timestamp": "yesterday"},
        {"type": "identify", "messageId": "x", "userId": "u", "context": {"traits_unset": "plan"}},
    ],
)
def test_unusual_and_invalid_messages_agree(message: dict) -> None:
    (fast_ok, fast_rej), (slow_ok, slow_rej) = both([message])
    assert fast_rej == slow_rej
    assert [fields(p) for p in fast_ok] == [fields(p) for p in slow_ok]


def test_batch_level_context_merges_on_both_paths() -> None:
    opts = ParseOptions(
        received_at=NOW, max_message_bytes=32_000, future_tolerance=timedelta(minutes=5), identity=IdentitySettings(),
        batch_context={"library": {"name": "batch"}, "traits": {"email": "b@example.com"}}, batch_integrations={"X": False},
    )
    (fast_ok, _), (slow_ok, _) = both(MESSAGES[:3], opts)
    assert [fields(p) for p in fast_ok] == [fields(p) for p in slow_ok]
    assert orjson.loads(fast_ok[0].row)["context"]["library"] == {"name": "analytics-python"}
    assert ("email", "b@example.com", "b@example.com") in fast_ok[0].keys


@pytest.mark.parametrize(
    ("text", "has"),
    [(rb'"a\u0000"', True), (rb'"a\\u0000"', False), (rb'"a\\\u0000"', True), (rb'"\\\\u0000"', False), (b'"a"', False)],
)
def test_nul_escape_detection(text: bytes, has: bool) -> None:
    assert parser.has_nul(text) is has
    assert ("\x00" in orjson.loads(text)) is has


def test_size_is_the_messages_own_bytes() -> None:
    opts = ParseOptions(received_at=NOW, max_message_bytes=200, future_tolerance=timedelta(minutes=5),
                        identity=IdentitySettings())
    small = {"type": "track", "messageId": "s", "userId": "u", "event": "E"}
    padded = b'{"batch":[' + orjson.dumps(small) + b", " + orjson.dumps(small)[:-1] + b"," + b" " * 300 + b'"k":1}]}'
    decoded = decode_batch_body(padded)
    ok, rejected = parse_raw_batch(decoded.messages, opts)
    assert [p.index for p in ok] == [0]
    assert [(r.index, r.code) for r in rejected] == [(1, "oversized")]


def test_a_message_whose_ids_look_like_a_memo_entry_gets_its_own_keys() -> None:
    # The memo holds (type, raw value) entries and each message's whole key set; a userId
    # "email" next to an anonymousId equal to an email seen before must not read the former.
    messages = [
        {"type": "identify", "messageId": "c1", "userId": "u1", "traits": {"email": "x@example.com"}},
        {"type": "track", "messageId": "c2", "userId": "email", "anonymousId": "x@example.com", "event": "E"},
    ]
    (fast, fast_rej), (slow, slow_rej) = both(messages)
    assert fast_rej == slow_rej == []
    assert fast[1].pairs == slow[1].pairs == (("user_id", "email"), ("anonymous_id", "x@example.com"))


COMMON_SHAPES: list[dict] = [
    {"type": "track", "messageId": "s1", "userId": "u", "anonymousId": "a", "event": "Viewed",
     "timestamp": "2026-11-23T11:00:00.123456Z", "properties": {"p": 1}, "context": {"ip": "203.0.113.1"}},
    {"type": "track", "messageId": " s2 ", "userId": " u ", "event": " Viewed ", "timestamp": "2026-11-23T12:00:00+02:00",
     "sentAt": "2026-11-23T12:00:03+02:00", "integrations": {"All": False}},
    {"type": "page", "messageId": "s3", "anonymousId": "a", "name": " Home ", "timestamp": "2026-11-23T09:00:00"},
    {"type": "screen", "messageId": "s4", "userId": "u", "name": None},
    {"type": "track", "messageId": "s5", "userId": "u", "event": "Later", "timestamp": "2031-01-01T00:00:00Z"},
    {"type": "track", "messageId": "s6", "userId": "u", "event": "Ctx", "context": {"traits": {"email": "C@Example.com"}}},
    {"type": "track", "messageId": "s7", "userId": "u", "event": "Ext",
     "context": {"externalIds": [{"type": "crm", "id": "9"}]}},
]
UNCOMMON_SHAPES: list[dict] = [
    {"type": "identify", "messageId": "n1", "userId": "u"},
    {"type": "track", "messageId": "n2", "userId": 7, "event": "E"},
    {"type": "track", "messageId": "n3", "userId": "u", "event": "E", "traits": {"email": "t@example.com"}},
    {"type": "track", "messageId": "n4", "user_id": "snake", "event": "E"},
    {"type": "track", "messageId": "n5", "userId": "u", "event": "E", "originalTimestamp": "2026-11-23T10:00:00Z"},
    {"type": "track", "messageId": "n6", "userId": "null", "anonymousId": "a", "event": "E"},
    {"type": "track", "messageId": "n7", "userId": "u", "event": "E", "timestamp": "1969-12-31T00:00:00Z"},
    {"type": "track", "messageId": "n8", "userId": "u", "event": "E", "context": {"traits_unset": ["plan"]}},
    {"type": "track", "messageId": "n9", "userId": "u", "event": "   "},
    {"type": "Track", "messageId": "n10", "userId": "u", "event": "E"},
]


@pytest.mark.parametrize("message", COMMON_SHAPES + UNCOMMON_SHAPES, ids=lambda m: m["messageId"].strip())
def test_the_common_path_takes_the_usual_shapes_and_agrees(monkeypatch: pytest.MonkeyPatch, message: dict) -> None:
    data = orjson.dumps(message)
    common = parser._parse_common(data, 0, OPTS)
    assert (common is not None) is (message in COMMON_SHAPES)
    monkeypatch.setattr(parser, "_parse_common", lambda *a: None)
    (general_ok, general_rej), (slow_ok, slow_rej) = both([message])
    assert general_rej == slow_rej
    assert [fields(p) for p in general_ok] == [fields(p) for p in slow_ok]
    if common is not None:
        assert [fields(common)] == [fields(p) for p in general_ok]
