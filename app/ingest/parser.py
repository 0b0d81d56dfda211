"""Validation of Segment Spec messages, one at a time, so one bad message never sinks a batch.

Hand-written rather than a pydantic model per message: it is the hottest code in the service,
it must report a precise reason per message instead of failing the request, and it must accept
what the official SDKs send (numbers as ids, absent optional fields, extra keys).

Two paths, one set of rules (`_build`):

* `parse_batch_body` (the `/v1/batch` hot path) decodes the request with msgspec into one raw
  slice per message, then each message into its top-level fields, leaving `properties`,
  `context`, `integrations` and `traits` as the exact JSON bytes the client sent. Those bytes
  go to PostgreSQL as they are: no Python objects are built for them and nothing is encoded
  twice. A message's size is the length of its own bytes.
* Anything the fast path does not take as it is (an unusual shape, a missing messageId, a
  batch-level context, a message the rules reject) goes through `parse_message` on plain
  Python objects, which gives the precise reason. Rejections therefore always come from one
  place, and `tests/ingest/test_parser.py` checks that both paths store the same thing.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import orjson

from app.consent.signals import Signal, signal_from_context
from app.core import jsonrules
from app.identity.normalize import IdentitySettings, InvalidIdentifier, normalize_identifier

MESSAGE_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
MAX_ID_LENGTH = 255
MAX_NAME_LENGTH = 500
_EXTERNAL_TYPE_CLEAN = re.compile(r"[^a-z0-9_]+")


@dataclass(slots=True)
class Rejection:
    index: int
    message_id: str | None
    code: str
    reason: str


class Key(NamedTuple):
    """A normalised identifier as found in a message."""

    type: str
    value: str
    raw: str


class ParsedMessage(msgspec.Struct, gc=False):
    """One valid message. (A msgspec Struct: about a hundred are built per request, and they
    are cheaper to build than dataclasses and invisible to the cyclic garbage collector.)"""

    index: int
    message_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    event: str | None
    name: str | None
    group_id: str | None
    previous_id: str | None
    traits: dict[str, Any]
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    clamped: bool
    keys: tuple[Key, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()  # the keys as (type, value): how the identity cache knows them
    traits_set_once: dict[str, Any] = {}
    traits_unset: list[str] = []
    # The stored event as a JSON object without its profile_id (known only after identity
    # resolution): properties, context... as the client sent them. See repository.INSERT_EVENTS.
    row: bytes = b"{}"
    # What context.consent / context.gpc say (None for nearly every message): app.consent.
    consent: Signal | None = None


class MessageError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """What the request or import says about all of its messages."""

    received_at: datetime
    max_message_bytes: int
    future_tolerance: timedelta
    identity: IdentitySettings
    forced_type: str | None = None
    batch_context: dict[str, Any] = field(default_factory=dict)
    batch_integrations: dict[str, Any] = field(default_factory=dict)
    batch_sent_at: datetime | None = None
    require_segment_id: bool = True
    key_cache: dict[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_cache", _cache_for(self.identity))


def parse_timestamp(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MessageError("bad_timestamp", f"{field_name} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11+: "Z" and most of ISO 8601
    except ValueError:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise MessageError("bad_timestamp", f"{field_name} {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Segment treats zone-less times as UTC
    elif parsed.utcoffset():
        # Stored and read back in UTC: 9999-12-31T23:59:59-01:00 is past year 9999 there.
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:
            raise MessageError("bad_timestamp", f"{field_name} {value!r} is out of range (1970 to 9999, in UTC)") from None
    if not (1970 <= parsed.year <= 9999):
        raise MessageError("bad_timestamp", f"{field_name} {value!r} is out of range (1970 to 9999, in UTC)")
    return parsed


def _identifier_text(value: Any, field_name: str) -> str | None:
    """userId, anonymousId, groupId, previousId: strings or numbers (SDKs send both)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MessageError("bad_field", f"{field_name} must be a string or a number, got a boolean")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise MessageError("bad_field", f"{field_name} must be a string or a number, got {type(value).__name__}")
    if len(text) > MAX_ID_LENGTH:
        raise MessageError("bad_field", f"{field_name} is longer than {MAX_ID_LENGTH} characters")
    return text or None


def _object(value: Any, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError("bad_field", f"{field_name} must be a JSON object, got {type(value).__name__}")
    return value


def _name(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageError("bad_field", f"{field_name} must be a string, got {type(value).__name__}")
    text = value.strip()
    if len(text) > MAX_NAME_LENGTH:
        raise MessageError("bad_field", f"{field_name} is longer than {MAX_NAME_LENGTH} characters")
    return text or None


def _content_message_id(msg: dict[str, Any]) -> str:
    """A deterministic id for a message sent without messageId but with its own timestamp:
    a retry of the same message then deduplicates. sentAt differs between retries, so it is
    left out."""
    canonical = {k: v for k, v in msg.items() if k not in ("sentAt", "writeKey")}
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    return f"srv-{digest}"


def _external_type(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    cleaned = _EXTERNAL_TYPE_CLEAN.sub("_", raw.strip().lower()).strip("_")
    if not cleaned or not cleaned[0].isalpha():
        return None
    return cleaned[:64]


def _normalize_uncached(type_: str, raw: Any, identity: IdentitySettings) -> Any:
    try:
        return normalize_identifier(type_, raw, identity)
    except InvalidIdentifier:
        return None  # an unusable email/phone in traits is kept as a trait, not used as an identifier


# The same people send message after message, so normalisation is memoised: one plain dict per
# settings object (settings are immutable and shared per workspace configuration, see
# identity_settings_from), keyed by (type, raw value), and the keys of the commonest message
# (userId and anonymousId only) under (_IDS, userId, anonymousId). Plain dicts keep the hit cheap: hashing the
# settings object on every look-up cost more than the normalisation it saved.
_MAX_CACHED = 100_000
# Marks the memo of a message's whole key set, (_IDS, userId, anonymousId): three items, so it
# never meets a (type, raw value) entry (a userId "email" with an anonymousId equal to some
# email would have).
_IDS = "ids"
_caches: dict[int, tuple[IdentitySettings, dict[Any, Any]]] = {}


def _cache_for(identity: IdentitySettings) -> dict[Any, Any]:
    entry = _caches.get(id(identity))
    if entry is None or entry[0] is not identity:
        if len(_caches) > 256:
            _caches.clear()
        entry = _caches[id(identity)] = (identity, {})
    if len(entry[1]) > _MAX_CACHED:
        entry[1].clear()
    return entry[1]


def _collect_keys(
    user_id: str | None,
    anonymous_id: str | None,
    traits: dict[str, Any],
    ctx_traits: Any,
    external: Any,
    identity: IdentitySettings,
    cache: dict[Any, Any],
) -> tuple[tuple[Key, ...], tuple[tuple[str, str], ...]]:
    """The message's identifiers, normalised, and the same as (type, value) pairs."""
    simple = not (traits and ("email" in traits or "phone" in traits)) and not ctx_traits and not external
    if simple:
        hit = cache.get((_IDS, user_id, anonymous_id))
        if hit is not None:
            return hit
    keys: list[Key] = []
    seen: set[tuple[str, str]] = set()

    def add(type_: str, raw: Any) -> None:
        if raw is None or raw == "":
            return
        if isinstance(raw, str | int):
            ident = cache.get((type_, raw), cache)
            if ident is cache:
                ident = cache[(type_, raw)] = _normalize_uncached(type_, raw, identity)
        else:
            ident = _normalize_uncached(type_, raw, identity)
        if ident is None or (ident.type, ident.value) in seen:
            return
        seen.add((ident.type, ident.value))
        keys.append(Key(ident.type, ident.value, ident.raw))

    if user_id is not None:
        add("user_id", user_id)
    if anonymous_id is not None:
        add("anonymous_id", anonymous_id)
    for source in (traits, ctx_traits):
        if source and isinstance(source, dict):
            if (email := source.get("email")) is not None:
                add("email", email)
            if (phone := source.get("phone")) is not None:
                add("phone", phone)
    if isinstance(external, list):
        for item in external[:20]:
            if isinstance(item, dict):
                type_ = _external_type(item.get("type"))
                if type_ and type_ not in ("user_id", "anonymous_id"):
                    add(type_, item.get("id"))
    found = (tuple(keys), tuple((k.type, k.value) for k in keys))
    if simple:
        cache[(_IDS, user_id, anonymous_id)] = found
    return found


def _corrected_time(
    received_at: datetime, original: datetime | None, sent_at: datetime | None, future_tolerance: timedelta
) -> tuple[datetime, bool]:
    """The event's time and whether it was clamped: Segment's skew correction (the client's
    clock is off by sentAt - receivedAt), and a time too far in the future becomes receivedAt."""
    if original is None:
        corrected = received_at
    elif sent_at is not None:
        try:
            corrected = received_at - (sent_at - original)
        except OverflowError:
            corrected = None
        if corrected is None or corrected.year < 1970:
            raise MessageError(
                "bad_timestamp", f"sentAt {sent_at.isoformat()} and timestamp {original.isoformat()} are so far apart "
                "that the time corrected for the client's clock falls before 1970; check the client's clock",
            )
    else:
        corrected = original
    if corrected > received_at + future_tolerance:
        return received_at, True
    return corrected, False


def _build(
    index: int,
    opts: ParseOptions,
    mtype: Any,
    user_raw: Any,
    anonymous_raw: Any,
    message_id_raw: Any,
    event_raw: Any,
    name_raw: Any,
    group_raw: Any,
    previous_raw: Any,
    timestamp_raw: Any,
    sent_at_raw: Any,
    traits: dict[str, Any],
    ctx_traits: Any,
    external_ids: Any,
    set_once: Any,
    unset: Any,
    content_id: Callable[[], str] | None,
) -> ParsedMessage:
    """The rules, on the message's top-level fields (however they were decoded). Objects
    (properties, context...) have been checked to be objects by the caller.

    The commonest values (short strings, a lowercase type) take inline shortcuts to the same
    result as the general helpers: this runs for every message ingested."""
    if type(mtype) is not str or mtype not in MESSAGE_TYPES:
        if mtype is None:
            raise MessageError("missing_type", "type is required (track, identify, page, screen, group or alias)")
        if not isinstance(mtype, str) or mtype.lower() not in MESSAGE_TYPES:
            raise MessageError(
                "unknown_type", f"type {mtype!r} is not one of track, identify, page, screen, group, alias"
            )
        mtype = mtype.lower()
    identity = opts.identity

    if type(user_raw) is str and len(user_raw) <= MAX_ID_LENGTH:
        user_id = user_raw.strip() or None
    else:
        user_id = _identifier_text(user_raw, "userId")
    if type(anonymous_raw) is str and len(anonymous_raw) <= MAX_ID_LENGTH:
        anonymous_id = anonymous_raw.strip() or None
    else:
        anonymous_id = _identifier_text(anonymous_raw, "anonymousId")
    blocked = []
    if user_id is not None and user_id.casefold() in identity.blocked_values:
        blocked.append(f"userId {user_id!r}")
        user_id = None
    if anonymous_id is not None and anonymous_id.casefold() in identity.blocked_values:
        blocked.append(f"anonymousId {anonymous_id!r}")
        anonymous_id = None
    if user_id is None and anonymous_id is None and opts.require_segment_id:
        if blocked:
            raise MessageError(
                "blocked_identifier", f"{' and '.join(blocked)} is a placeholder value that identifies nobody"
            )
        raise MessageError("missing_identity", "userId or anonymousId is required")

    if message_id_raw is not None and not isinstance(message_id_raw, str | int):
        raise MessageError("bad_message_id", "messageId must be a string")

    event = name = group_id = previous_id = None
    if mtype == "track":
        if type(event_raw) is str and len(event_raw) <= MAX_NAME_LENGTH:
            event = event_raw.strip() or None
        else:
            event = _name(event_raw, "event")
        if event is None:
            raise MessageError("missing_event", "track messages need an event name")
    elif mtype in ("page", "screen"):
        name = _name(name_raw, "name")
    elif mtype == "group":
        group_id = _identifier_text(group_raw, "groupId")
        if group_id is None:
            raise MessageError("missing_group_id", "group messages need a groupId")
    elif mtype == "alias":
        previous_id = _identifier_text(previous_raw, "previousId")
        if previous_id is None:
            raise MessageError("missing_previous_id", "alias messages need a previousId")
        if user_id is None:
            raise MessageError("missing_identity", "alias messages need a userId")

    received_at = opts.received_at
    original = parse_timestamp(timestamp_raw, "timestamp")
    sent_at = parse_timestamp(sent_at_raw, "sentAt") or opts.batch_sent_at
    corrected, clamped = _corrected_time(received_at, original, sent_at, opts.future_tolerance)

    if message_id_raw is None or message_id_raw == "":
        if content_id is None or original is None:
            message_id = f"srv-{uuid.uuid4().hex}"
        else:
            message_id = content_id()
    else:
        message_id = str(message_id_raw).strip()
        if not message_id or len(message_id) > MAX_ID_LENGTH:
            raise MessageError("bad_message_id", f"messageId must be 1 to {MAX_ID_LENGTH} characters")

    if set_once is not None and not isinstance(set_once, dict):
        raise MessageError("bad_field", "context.traits_set_once must be a JSON object")
    if unset is not None and not (isinstance(unset, list) and all(isinstance(k, str) for k in unset)):
        raise MessageError("bad_field", "context.traits_unset must be a list of trait names")

    if mtype == "identify" and ctx_traits and isinstance(ctx_traits, dict):
        # RudderStack's SDKs send an identify's traits in context.traits only. Applied as
        # Segment's spec and RudderStack's server do; traits sent at the top level win.
        traits = {**ctx_traits, **traits}
    keys, pairs = _collect_keys(user_id, anonymous_id, traits, ctx_traits, external_ids, identity, opts.key_cache)
    if not keys:
        if opts.require_segment_id:
            raise MessageError("missing_identity", "no usable identifier: userId and anonymousId are empty or blocked")
        raise MessageError(
            "missing_identity", "no usable identifier: user_id, anonymous_id, email, phone and external ids are all "
            "empty, invalid or blocked"
        )
    return ParsedMessage(  # positional: the field order of ParsedMessage
        index, message_id, mtype, user_id, anonymous_id, event, name, group_id, previous_id, traits, corrected,
        original, sent_at, received_at, clamped, keys, pairs, set_once or {}, unset or [],
    )


class _EventRow(msgspec.Struct, omit_defaults=True, gc=False):
    """The event's columns as INSERT_EVENTS reads them (absent fields left out)."""

    message_id: str
    type: str
    ts: datetime
    event: str | None = None
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    group_id: str | None = None
    previous_id: str | None = None
    original_ts: datetime | None = None
    sent_at: datetime | None = None
    properties: Any = None  # a dict, or msgspec.Raw: the client's own bytes
    traits: Any = None
    context: Any = None
    integrations: Any = None
    clamped: bool = False


_encode = msgspec.json.Encoder().encode


def _row(m: ParsedMessage, properties: Any, traits: Any, context: Any, integrations: Any) -> bytes:
    return _encode(_EventRow(
        m.message_id, m.type, m.timestamp, m.event, m.name, m.user_id, m.anonymous_id, m.group_id, m.previous_id,
        m.original_timestamp, m.sent_at, properties, traits, context, integrations, m.clamped,
    ))


has_nul = jsonrules.has_nul_escape


def _check_text(serialized: bytes, max_message_bytes: int) -> None:
    """The message's own bytes against its size limit and the rules of app.core.jsonrules
    (encoding, NUL, unpaired surrogates, depth, numbers), each with its precise reason."""
    size = len(serialized)
    if size > max_message_bytes:
        raise MessageError("oversized", f"message is {size} bytes; the limit is {max_message_bytes}")
    try:
        jsonrules.check_text(serialized)
    except jsonrules.JsonRuleError as exc:
        raise MessageError(exc.code, f"message: {exc.reason}") from None


def _serialized(msg: dict[str, Any]) -> bytes:
    """A decoded message as JSON text, or the rule it breaks (orjson refuses integers past 64
    bits, unpaired surrogates and deep nesting; the rules then name which)."""
    try:
        return orjson.dumps(msg)
    except TypeError:
        problem = jsonrules.value_problem(msg) or jsonrules.JsonRuleError("bad_field", "message cannot be stored as JSON")
        raise MessageError(problem.code, f"message: {problem.reason}") from None


def parse_message(msg: Any, index: int, opts: ParseOptions, raw: bytes | None = None) -> ParsedMessage:
    """One message as plain Python objects (`raw`: its bytes as received, when known)."""
    if not isinstance(msg, dict):
        raise MessageError("not_an_object", f"message must be a JSON object, got {type(msg).__name__}")
    _check_text(raw if raw is not None else _serialized(msg), opts.max_message_bytes)
    properties = _object(msg.get("properties"), "properties")
    traits = _object(msg.get("traits"), "traits")
    context = _object(msg.get("context"), "context")
    integrations = _object(msg.get("integrations"), "integrations")
    if opts.batch_context:
        context = {**opts.batch_context, **context}
    if opts.batch_integrations:
        integrations = {**opts.batch_integrations, **integrations}
    parsed = _build(
        index, opts, mtype=opts.forced_type or msg.get("type"),
        user_raw=msg.get("userId", msg.get("user_id")), anonymous_raw=msg.get("anonymousId", msg.get("anonymous_id")),
        message_id_raw=msg.get("messageId"), event_raw=msg.get("event"), name_raw=msg.get("name"),
        group_raw=msg.get("groupId"), previous_raw=msg.get("previousId"),
        timestamp_raw=msg.get("timestamp", msg.get("originalTimestamp")), sent_at_raw=msg.get("sentAt"),
        traits=traits, ctx_traits=context.get("traits"), external_ids=context.get("externalIds"),
        set_once=context.get("traits_set_once"), unset=context.get("traits_unset"),
        content_id=lambda: _content_message_id(msg),
    )
    parsed.row = _row(parsed, properties or None, traits or None, context or None, integrations or None)
    if "consent" in context or "gpc" in context:
        parsed.consent = signal_from_context(context.get("consent"), context.get("gpc"))
    return parsed


def message_id_of(msg: Any) -> str | None:
    if isinstance(msg, dict):
        mid = msg.get("messageId")
        if isinstance(mid, str | int):
            return str(mid)
    return None


def parse_batch(messages: list[Any], opts: ParseOptions) -> tuple[list[ParsedMessage], list[Rejection]]:
    """Validate each message on its own. `opts.require_segment_id=False` (bulk imports) also
    accepts records identified only by an email, a phone or an external id, as CRM exports are."""
    ok: list[ParsedMessage] = []
    rejected: list[Rejection] = []
    for index, msg in enumerate(messages):
        try:
            ok.append(parse_message(msg, index, opts))
        except MessageError as exc:
            rejected.append(Rejection(index, message_id_of(msg), exc.code, exc.reason))
    return ok, rejected


# ------------------------------------------------------------------------------ fast path

Identifier = str | int | float | None


class _Envelope(msgspec.Struct):
    """A /v1/batch body: the messages stay undecoded bytes until each is parsed on its own."""

    batch: list[msgspec.Raw]
    writeKey: Any = None
    sentAt: Any = None
    context: Any = None
    integrations: Any = None


_NULL = msgspec.Raw(b"null")


class _Wire(msgspec.Struct):
    """The shape nearly every SDK message has. A message that does not decode into it (a
    boolean userId, a numeric messageId...) takes the slow path, which names the problem."""

    type: Any = None
    messageId: str | msgspec.UnsetType = msgspec.UNSET
    userId: Identifier | msgspec.UnsetType = msgspec.UNSET
    user_id: Identifier = None
    anonymousId: Identifier | msgspec.UnsetType = msgspec.UNSET
    anonymous_id: Identifier = None
    event: Any = None
    name: Any = None
    groupId: Any = None
    previousId: Any = None
    timestamp: Any = msgspec.UNSET
    originalTimestamp: Any = None
    sentAt: Any = None
    properties: msgspec.Raw = _NULL
    traits: msgspec.Raw = _NULL
    context: msgspec.Raw = _NULL
    integrations: msgspec.Raw = _NULL


class _ContextPeek(msgspec.Struct):
    """The parts of `context` that identity and traits read."""

    traits: Any = None
    externalIds: Any = None
    traits_set_once: Any = None
    traits_unset: Any = None
    consent: Any = None
    gpc: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_wire_decoder = msgspec.json.Decoder(_Wire)
_peek_decoder = msgspec.json.Decoder(_ContextPeek)
_dict_decoder = msgspec.json.Decoder(dict[str, Any])
_NO_PEEK = _ContextPeek()


class _SlowPath(Exception):
    """This message is not for the fast path."""


_EMPTY = msgspec.Raw(b"{}")


def _raw_object(raw: msgspec.Raw) -> msgspec.Raw | None:
    """The client's JSON object as it is (None when absent, null or empty)."""
    if raw == _NULL or raw == _EMPTY:
        return None
    if memoryview(raw)[0] != 0x7B:  # "{": msgspec keeps a value's exact bytes, without surrounding whitespace
        raise _SlowPath  # not an object: parse_message says so
    return raw


class _Common(msgspec.Struct, gc=False):
    """The commonest message, for `_parse_common`: a track, page or screen with string ids.
    Fields that other shapes use are declared only to notice them (msgspec skips the rest)."""

    type: str
    messageId: str
    userId: str | None = None
    anonymousId: str | None = None
    event: str | None = None
    name: str | None = None
    timestamp: str | None = None
    sentAt: str | None = None
    user_id: Any = None
    anonymous_id: Any = None
    originalTimestamp: Any = None
    properties: msgspec.Raw = _NULL
    traits: msgspec.Raw = _NULL
    context: msgspec.Raw = _NULL
    integrations: msgspec.Raw = _NULL


_common_decoder = msgspec.json.Decoder(_Common)
_COMMON_TYPES = frozenset({"track", "page", "screen"})


def _parse_common(data: bytes, index: int, opts: ParseOptions) -> ParsedMessage | None:
    """Nearly all traffic, in one pass: `_build`'s rules specialised to a track, page or screen
    message with string ids, an ISO 8601 timestamp, no traits and nothing the rules reject.
    Anything else returns None, and the general fast path (then perhaps the slow one) decides,
    so this path never rejects and never differs (tests/ingest/test_parser.py)."""
    try:
        c = _common_decoder.decode(data)
    except msgspec.ValidationError:
        return None
    mtype = c.type
    if (
        mtype not in _COMMON_TYPES or c.traits is not _NULL or c.user_id is not None or c.anonymous_id is not None
        or c.originalTimestamp is not None
    ):
        return None
    user_id, anonymous_id, message_id = c.userId, c.anonymousId, c.messageId
    if user_id is not None:
        if len(user_id) > MAX_ID_LENGTH:
            return None
        user_id = user_id.strip() or None
    if anonymous_id is not None:
        if len(anonymous_id) > MAX_ID_LENGTH:
            return None
        anonymous_id = anonymous_id.strip() or None
    blocked = opts.identity.blocked_values
    if (user_id is None and anonymous_id is None) or (user_id is not None and user_id.casefold() in blocked) or (
        anonymous_id is not None and anonymous_id.casefold() in blocked
    ):
        return None  # no usable id, or a placeholder one: the general path decides
    message_id = message_id.strip()
    if not message_id or len(message_id) > MAX_ID_LENGTH:
        return None
    event = name = None
    if mtype == "track":
        event = c.event
        if event is None or len(event) > MAX_NAME_LENGTH:
            return None
        event = event.strip()
        if not event:
            return None
    elif c.name is not None:
        if len(c.name) > MAX_NAME_LENGTH:
            return None
        name = c.name.strip() or None
    received_at = opts.received_at
    try:
        original = parse_timestamp(c.timestamp, "timestamp")
        sent_at = parse_timestamp(c.sentAt, "sentAt") or opts.batch_sent_at
        corrected, clamped = _corrected_time(received_at, original, sent_at, opts.future_tolerance)
    except MessageError:
        return None
    context = None if c.context is _NULL else _raw_object(c.context)
    ctx_traits = external = signal = None
    if context is not None:
        peek = _peek_decoder.decode(context)
        if peek.traits_set_once is not None or peek.traits_unset is not None:
            return None
        ctx_traits, external = peek.traits, peek.externalIds
        if peek.consent is not None or peek.gpc is not None:
            signal = signal_from_context(peek.consent, peek.gpc)
    # _collect_keys' memo, read inline for the usual message (ids only).
    found = opts.key_cache.get((_IDS, user_id, anonymous_id)) if not ctx_traits and not external else None
    if found is None:
        found = _collect_keys(user_id, anonymous_id, _NO_TRAITS, ctx_traits, external, opts.identity, opts.key_cache)
    keys, pairs = found
    if not keys:
        return None
    parsed = ParsedMessage(
        index, message_id, mtype, user_id, anonymous_id, event, name, None, None, {}, corrected, original, sent_at,
        received_at, clamped, keys, pairs,
    )
    parsed.row = _encode(_EventRow(
        message_id, mtype, corrected, event, name, user_id, anonymous_id, None, None, original, sent_at,
        None if c.properties is _NULL else _raw_object(c.properties), None, context,
        None if c.integrations is _NULL else _raw_object(c.integrations), clamped,
    ))
    if signal is not None:
        parsed.consent = signal
    return parsed


_NO_TRAITS: dict[str, Any] = {}


def _parse_fast(raw: msgspec.Raw, index: int, opts: ParseOptions, clean: bool = False) -> ParsedMessage:
    data = bytes(raw)
    if len(data) > opts.max_message_bytes:
        raise _SlowPath  # the slow path rejects it with the precise reason
    # Nesting: a message cannot be deeper than it has opening brackets (two counts, most
    # messages stop there). The other rules were checked on the whole body (`clean`).
    if data.count(b"{") + data.count(b"[") > jsonrules.MAX_DEPTH or not clean:
        try:
            jsonrules.check_depth(data) if clean else jsonrules.check_text(data)
        except jsonrules.JsonRuleError:
            raise _SlowPath from None
    parsed = _parse_common(data, index, opts)
    if parsed is not None:
        return parsed
    try:
        wire = _wire_decoder.decode(data)
    except msgspec.ValidationError:
        raise _SlowPath from None
    message_id = wire.messageId
    if message_id is msgspec.UNSET or message_id == "":
        raise _SlowPath  # the content-hash id needs the decoded message
    # An absent field is the default object itself (msgspec does not copy it).
    properties = None if wire.properties is _NULL else _raw_object(wire.properties)
    context = None if wire.context is _NULL else _raw_object(wire.context)
    integrations = None if wire.integrations is _NULL else _raw_object(wire.integrations)
    raw_traits = None if wire.traits is _NULL else _raw_object(wire.traits)
    traits = _dict_decoder.decode(raw_traits) if raw_traits is not None else {}
    # (Decoding the four keys, skipping the rest, is cheaper than searching the bytes for them.)
    peek = _NO_PEEK if context is None else _peek_decoder.decode(context)
    timestamp = wire.timestamp
    parsed = _build(
        index, opts, opts.forced_type or wire.type,
        wire.user_id if wire.userId is msgspec.UNSET else wire.userId,
        wire.anonymous_id if wire.anonymousId is msgspec.UNSET else wire.anonymousId,
        message_id, wire.event, wire.name, wire.groupId, wire.previousId,
        wire.originalTimestamp if timestamp is msgspec.UNSET else timestamp, wire.sentAt,
        traits, peek.traits, peek.externalIds, peek.traits_set_once, peek.traits_unset, None,
    )
    parsed.row = _row(parsed, properties, raw_traits, context, integrations)
    if peek.consent is not None or peek.gpc is not None:
        parsed.consent = signal_from_context(peek.consent, peek.gpc)
    return parsed


@dataclass(slots=True)
class BatchBody:
    """A decoded /v1/batch body: its messages (raw bytes, or Python objects when decoded
    plainly), and its batch-level fields."""

    messages: list[Any]
    write_key: Any
    sent_at: Any
    context: Any
    integrations: Any
    # The body has no NUL escape, no number that could break the rules, and is valid UTF-8:
    # no message needs those checks (see app.core.jsonrules).
    clean: bool = False
    # Messages rejected before parsing (an unpaired surrogate): index -> (code, reason).
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)


class BodyTooDeep(Exception):
    """The body nests too deeply to be split into messages at all."""


def _is_clean(body: bytes) -> bool:
    return not has_nul(body) and not jsonrules.suspect_numbers(body) and jsonrules.utf8_problem(body) is None


def decode_batch_body(body: bytes) -> BatchBody | None:
    """The body's envelope, or None when it is not a well-formed one (the caller then decodes
    it as plain JSON to say precisely what is wrong). Raises BodyTooDeep for a body nested
    past what the decoder follows.

    A message with an unpaired surrogate escape (browsers' JSON.stringify can write one) makes
    the body invalid JSON; such escapes are masked so the body still splits, and those
    messages alone are refused."""
    try:
        env = _envelope_decoder.decode(body)
    except RecursionError:
        raise BodyTooDeep from None
    except (msgspec.DecodeError, msgspec.ValidationError):
        if not jsonrules.has_surrogate_escape(body):
            return None
        masked = jsonrules.mask_lone_surrogates(body)
        if masked == body:
            return None
        try:
            env = _envelope_decoder.decode(masked)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return _unmasked(env, body, masked)
    return BatchBody(env.batch, env.writeKey, env.sentAt, env.context, env.integrations, _is_clean(body))


def _unmasked(env: _Envelope, body: bytes, masked: bytes) -> BatchBody:
    """The envelope of a masked body, its messages cut from the original body (masking keeps
    every offset), those that differ refused."""
    problem = jsonrules.lone_surrogate_problem()
    messages: list[msgspec.Raw] = []
    refused: dict[int, tuple[str, str]] = {}
    position = 0
    for index, raw in enumerate(env.batch):
        piece = bytes(raw)
        start = masked.find(piece, position)  # in order: only separators lie between two messages
        position = start + len(piece)
        original = body[start:position]
        if original != piece:
            refused[index] = (problem.code, f"message: {problem.reason}")
        messages.append(msgspec.Raw(piece))
    return BatchBody(messages, env.writeKey, env.sentAt, env.context, env.integrations, _is_clean(masked), refused)


def parse_raw_batch(
    messages: list[msgspec.Raw], opts: ParseOptions, clean: bool = False,
    refused: dict[int, tuple[str, str]] | None = None,
) -> tuple[list[ParsedMessage], list[Rejection]]:
    """`parse_batch` over messages still in their JSON bytes (`clean`: their body passed the
    body-wide checks, see BatchBody; `refused`: messages already rejected)."""
    fast = not opts.batch_context and not opts.batch_integrations
    ok: list[ParsedMessage] = []
    rejected: list[Rejection] = []
    for index, raw in enumerate(messages):
        if refused and index in refused:
            rejected.append(Rejection(index, None, *refused[index]))
            continue
        if fast:
            try:
                ok.append(_parse_fast(raw, index, opts, clean))
                continue
            except (_SlowPath, MessageError, msgspec.DecodeError):
                pass  # the slow path gives the precise reason, or takes the unusual shape
        data = bytes(raw)
        msg: Any = None
        try:
            _check_text(data, opts.max_message_bytes)  # before decoding: orjson rounds big integers
            msg = orjson.loads(data)
            ok.append(parse_message(msg, index, opts, raw=data))
        except orjson.JSONDecodeError as exc:
            rejected.append(Rejection(index, None, "malformed_json", f"message is not valid JSON: {exc}"))
        except MessageError as exc:
            if msg is None:  # refused before decoding: its messageId, if it can be read
                try:
                    msg = orjson.loads(data)
                except orjson.JSONDecodeError:
                    pass
            rejected.append(Rejection(index, message_id_of(msg), exc.code, exc.reason))
    return ok, rejected
