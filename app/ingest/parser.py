"""Validation of Segment Spec messages, one at a time, so one bad message never sinks a batch.

Hand-written rather than a pydantic model per message: it is the hottest code in the service,
it must report a precise reason per message instead of failing the request, and it must accept
what the official SDKs send (numbers as ids, absent optional fields, extra keys).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

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


@dataclass(slots=True)
class Key:
    """A normalised identifier as found in a message."""

    type: str
    value: str
    raw: str


@dataclass(slots=True)
class ParsedMessage:
    index: int
    message_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    event: str | None
    name: str | None
    group_id: str | None
    previous_id: str | None
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    integrations: dict[str, Any]
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    clamped: bool
    keys: list[Key] = field(default_factory=list)
    traits_set_once: dict[str, Any] = field(default_factory=dict)
    traits_unset: list[str] = field(default_factory=list)


class MessageError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason


def parse_timestamp(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MessageError("bad_timestamp", f"{field_name} must be an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MessageError("bad_timestamp", f"{field_name} {value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Segment treats zone-less times as UTC
    if not (1970 <= parsed.year <= 9999):
        raise MessageError("bad_timestamp", f"{field_name} {value!r} is out of range")
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
# identity_settings_from), keyed by (type, raw value). Plain dicts keep the hit cheap: hashing
# the settings object on every look-up cost more than the normalisation it saved.
_MAX_CACHED = 100_000
_caches: dict[int, tuple[IdentitySettings, dict[tuple[str, Any], Any]]] = {}


def _cache_for(identity: IdentitySettings) -> dict[tuple[str, Any], Any]:
    entry = _caches.get(id(identity))
    if entry is None or entry[0] is not identity:
        if len(_caches) > 256:
            _caches.clear()
        entry = _caches[id(identity)] = (identity, {})
    if len(entry[1]) > _MAX_CACHED:
        entry[1].clear()
    return entry[1]


def _collect_keys(
    parsed: ParsedMessage, identity: IdentitySettings
) -> list[Key]:
    keys: list[Key] = []
    seen: set[tuple[str, str]] = set()
    cache = _cache_for(identity)

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

    if parsed.user_id is not None:
        add("user_id", parsed.user_id)
    if parsed.anonymous_id is not None:
        add("anonymous_id", parsed.anonymous_id)
    ctx_traits = parsed.context.get("traits")
    for source in (parsed.traits, ctx_traits):
        if source and isinstance(source, dict):
            if (email := source.get("email")) is not None:
                add("email", email)
            if (phone := source.get("phone")) is not None:
                add("phone", phone)
    external = parsed.context.get("externalIds")
    if isinstance(external, list):
        for item in external[:20]:
            if isinstance(item, dict):
                type_ = _external_type(item.get("type"))
                if type_ and type_ not in ("user_id", "anonymous_id"):
                    add(type_, item.get("id"))
    return keys


def parse_message(
    msg: Any,
    index: int,
    *,
    forced_type: str | None,
    batch_context: dict[str, Any],
    batch_integrations: dict[str, Any],
    batch_sent_at: datetime | None,
    received_at: datetime,
    max_message_bytes: int,
    future_tolerance: timedelta,
    identity: IdentitySettings,
    require_segment_id: bool = True,
) -> ParsedMessage:
    if not isinstance(msg, dict):
        raise MessageError("not_an_object", f"message must be a JSON object, got {type(msg).__name__}")
    size = len(orjson.dumps(msg))
    if size > max_message_bytes:
        raise MessageError("oversized", f"message is {size} bytes; the limit is {max_message_bytes}")

    mtype = forced_type or msg.get("type")
    if mtype is None:
        raise MessageError("missing_type", "type is required (track, identify, page, screen, group or alias)")
    if not isinstance(mtype, str) or mtype.lower() not in MESSAGE_TYPES:
        raise MessageError("unknown_type", f"type {mtype!r} is not one of track, identify, page, screen, group, alias")
    mtype = mtype.lower()

    user_id = _identifier_text(msg.get("userId", msg.get("user_id")), "userId")
    anonymous_id = _identifier_text(msg.get("anonymousId", msg.get("anonymous_id")), "anonymousId")
    blocked = []
    if user_id is not None and user_id.casefold() in identity.blocked_values:
        blocked.append(f"userId {user_id!r}")
        user_id = None
    if anonymous_id is not None and anonymous_id.casefold() in identity.blocked_values:
        blocked.append(f"anonymousId {anonymous_id!r}")
        anonymous_id = None
    if user_id is None and anonymous_id is None and require_segment_id:
        if blocked:
            raise MessageError(
                "blocked_identifier", f"{' and '.join(blocked)} is a placeholder value that identifies nobody"
            )
        raise MessageError("missing_identity", "userId or anonymousId is required")

    raw_message_id = msg.get("messageId")
    if raw_message_id is not None and not isinstance(raw_message_id, str | int):
        raise MessageError("bad_message_id", "messageId must be a string")

    event = name = group_id = previous_id = None
    if mtype == "track":
        event = _name(msg.get("event"), "event")
        if event is None:
            raise MessageError("missing_event", "track messages need an event name")
    elif mtype in ("page", "screen"):
        name = _name(msg.get("name"), "name")
    elif mtype == "group":
        group_id = _identifier_text(msg.get("groupId"), "groupId")
        if group_id is None:
            raise MessageError("missing_group_id", "group messages need a groupId")
    elif mtype == "alias":
        previous_id = _identifier_text(msg.get("previousId"), "previousId")
        if previous_id is None:
            raise MessageError("missing_previous_id", "alias messages need a previousId")
        if user_id is None:
            raise MessageError("missing_identity", "alias messages need a userId")

    properties = _object(msg.get("properties"), "properties")
    traits = _object(msg.get("traits"), "traits")
    context = _object(msg.get("context"), "context")
    integrations = _object(msg.get("integrations"), "integrations")
    if batch_context:
        context = {**batch_context, **context}
    if batch_integrations:
        integrations = {**batch_integrations, **integrations}

    original = parse_timestamp(msg.get("timestamp", msg.get("originalTimestamp")), "timestamp")
    sent_at = parse_timestamp(msg.get("sentAt"), "sentAt") or batch_sent_at
    if original is None:
        corrected = received_at
    elif sent_at is not None:
        # Segment's skew correction: the client clock is off by (sentAt - receivedAt).
        corrected = received_at - (sent_at - original)
    else:
        corrected = original
    clamped = False
    if corrected > received_at + future_tolerance:
        corrected, clamped = received_at, True

    if raw_message_id is None or raw_message_id == "":
        message_id = _content_message_id(msg) if original is not None else f"srv-{uuid.uuid4().hex}"
    else:
        message_id = str(raw_message_id).strip()
        if not message_id or len(message_id) > MAX_ID_LENGTH:
            raise MessageError("bad_message_id", f"messageId must be 1 to {MAX_ID_LENGTH} characters")

    set_once = context.get("traits_set_once")
    unset = context.get("traits_unset")
    if set_once is not None and not isinstance(set_once, dict):
        raise MessageError("bad_field", "context.traits_set_once must be a JSON object")
    if unset is not None and not (isinstance(unset, list) and all(isinstance(k, str) for k in unset)):
        raise MessageError("bad_field", "context.traits_unset must be a list of trait names")

    parsed = ParsedMessage(
        index=index, message_id=message_id, type=mtype, user_id=user_id, anonymous_id=anonymous_id,
        event=event, name=name, group_id=group_id, previous_id=previous_id, properties=properties,
        traits=traits, context=context, integrations=integrations, timestamp=corrected,
        original_timestamp=original, sent_at=sent_at, received_at=received_at, clamped=clamped,
        traits_set_once=set_once or {}, traits_unset=unset or [],
    )
    parsed.keys = _collect_keys(parsed, identity)
    if not parsed.keys:
        if require_segment_id:
            raise MessageError("missing_identity", "no usable identifier: userId and anonymousId are empty or blocked")
        raise MessageError(
            "missing_identity", "no usable identifier: user_id, anonymous_id, email, phone and external ids are all "
            "empty, invalid or blocked"
        )
    return parsed


def message_id_of(msg: Any) -> str | None:
    if isinstance(msg, dict):
        mid = msg.get("messageId")
        if isinstance(mid, str | int):
            return str(mid)
    return None


def parse_batch(
    messages: list[Any],
    *,
    forced_type: str | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_integrations: dict[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
    received_at: datetime,
    max_message_bytes: int,
    future_tolerance: timedelta,
    identity: IdentitySettings,
    require_segment_id: bool = True,
) -> tuple[list[ParsedMessage], list[Rejection]]:
    """Validate each message on its own. `require_segment_id=False` (bulk imports) also accepts
    records identified only by an email, a phone or an external id, as CRM exports often are."""
    ok: list[ParsedMessage] = []
    rejected: list[Rejection] = []
    for index, msg in enumerate(messages):
        try:
            ok.append(
                parse_message(
                    msg, index, forced_type=forced_type, batch_context=batch_context or {},
                    batch_integrations=batch_integrations or {}, batch_sent_at=batch_sent_at,
                    received_at=received_at, max_message_bytes=max_message_bytes,
                    future_tolerance=future_tolerance, identity=identity, require_segment_id=require_segment_id,
                )
            )
        except MessageError as exc:
            rejected.append(Rejection(index, message_id_of(msg), exc.code, exc.reason))
    return ok, rejected
