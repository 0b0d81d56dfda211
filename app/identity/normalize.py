"""Identifier normalisation: one canonical string per identifier, or a precise refusal.

Pure code (no database, no web framework). Identity resolution links profiles on *exact*
equality of ``(type, value)``, so everything that should be "the same identifier" has to
normalise to the same string here, and everything that is junk has to be caught here,
before it can glue unrelated people into one profile:

* ``None`` from :func:`normalize_identifier` means "absent": empty strings and the usual
  placeholders (``"null"``, ``"undefined"``, ``"test@test.com"`` ...) that front-ends send
  when they have nothing. They are dropped silently because they are not errors of the
  sender we can act on, and linking on them would merge thousands of profiles.
* :class:`InvalidIdentifier` means "present but unusable" (bad e-mail syntax, a phone
  number that cannot exist, a 10 kB "user id"); callers report it to the sender.

The ``normalize_name`` / ``normalize_postcode`` / ``normalize_address`` helpers produce
comparison keys for fuzzy de-duplication (:mod:`app.dedup.matcher`); they are never stored
as identifiers.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "DEFAULT_BLOCKED_VALUES",
    "DEFAULT_LIMITS",
    "DEFAULT_PRIORITY",
    "MAX_VALUE_LENGTH",
    "Identifier",
    "IdentitySettings",
    "InvalidIdentifier",
    "normalize_address",
    "normalize_identifier",
    "normalize_name",
    "normalize_postcode",
]

#: Placeholder values that SDKs, forms and test fixtures send instead of "nothing".
DEFAULT_BLOCKED_VALUES: frozenset[str] = frozenset(
    {
        "",
        "null",
        "none",
        "undefined",
        "nil",
        "nan",
        "0",
        "-1",
        "unknown",
        "anonymous",
        "test@test.com",
        "test@example.com",
        "example@example.com",
        "n/a",
        "na",
    }
)

#: Maximum identifiers of one type on one profile. A profile with 2 user ids is two
#: customers glued together; a browser-cookie id churns, hence the generous anonymous limit.
DEFAULT_LIMITS: Mapping[str, int] = MappingProxyType({"user_id": 1, "email": 5, "phone": 5, "anonymous_id": 100})

#: Identifier types from most to least trusted (used to pick the survivor of a conflict).
DEFAULT_PRIORITY: tuple[str, ...] = ("user_id", "email", "phone", "anonymous_id")

#: Longest accepted opaque identifier; longer values are payloads, not ids.
MAX_VALUE_LENGTH = 255

_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class IdentitySettings:
    """Per-workspace identity rules.

    ``blocked_values`` are compared case-insensitively (they are stored case-folded).
    ``limits`` caps identifiers per profile and type; types not listed get ``default_limit``.
    ``priority`` lists types from most to least trusted; unlisted types rank after them.
    """

    default_region: str = "US"
    blocked_values: frozenset[str] = DEFAULT_BLOCKED_VALUES
    # hash=False: a mapping is not hashable, and two settings with equal fields still compare equal.
    limits: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LIMITS, hash=False)
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    default_limit: int = 10

    def __post_init__(self) -> None:
        # Normalise once here so lookups stay O(1) and callers may pass any casing/container.
        object.__setattr__(self, "default_region", self.default_region.upper())
        object.__setattr__(self, "blocked_values", frozenset(v.strip().casefold() for v in self.blocked_values))
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))
        object.__setattr__(self, "priority", tuple(self.priority))
        if any(n < 1 for n in self.limits.values()) or self.default_limit < 1:
            raise ValueError("identity limits must be >= 1")

    def limit_for(self, type: str) -> int:
        """Maximum number of identifiers of ``type`` one profile may hold."""
        return self.limits.get(type, self.default_limit)

    def rank(self, type: str) -> int:
        """Trust rank of ``type``: 0 is most trusted; unlisted types share the last rank."""
        try:
            return self.priority.index(type)
        except ValueError:
            return len(self.priority)

    def is_blocked(self, value: str) -> bool:
        """True if ``value`` (trimmed, case-insensitive) is a placeholder meaning "absent"."""
        return value.strip().casefold() in self.blocked_values


@dataclass(frozen=True)
class Identifier:
    """A normalised identifier; ``value`` is the join key, ``raw`` what the sender sent."""

    type: str
    value: str
    raw: str


class InvalidIdentifier(ValueError):
    """An identifier that is present but cannot be used; the message says which and why."""

    def __init__(self, type: object, raw: object, reason: str) -> None:
        self.type = type
        self.raw = raw
        self.reason = reason
        shown = repr(raw)
        if len(shown) > 80:  # keep log lines bounded when someone sends a megabyte "id"
            shown = shown[:77] + "..."
        super().__init__(f"invalid {type} identifier {shown}: {reason}")


def normalize_identifier(type: str, raw: object, settings: IdentitySettings) -> Identifier | None:
    """Normalise one identifier.

    Returns ``None`` when the value is absent or a blocked placeholder, an
    :class:`Identifier` when usable, and raises :class:`InvalidIdentifier` otherwise.
    """
    if not isinstance(type, str) or not _TYPE_RE.fullmatch(type):
        raise InvalidIdentifier(type, raw, "identifier type must match [a-z][a-z0-9_]{0,63}")
    if raw is None:
        return None
    text = _stringify(type, raw)
    if settings.is_blocked(text):
        return None

    if type == "email":
        value = _normalize_email(text, raw)
    elif type == "phone":
        value = _normalize_phone(text, raw, settings.default_region)
    else:
        value = _normalize_opaque(type, text, raw)

    # Normalisation can turn a disguised placeholder (" TEST@Test.com ") into a blocked one.
    if value.casefold() in settings.blocked_values:
        return None
    # raw is what the sender sent (12.0 stays "12.0"), for audit and support questions.
    return Identifier(type=type, value=value, raw=raw if isinstance(raw, str) else str(raw))


def _stringify(type: str, raw: object) -> str:
    """Text form of ``raw``; numbers are accepted because JSON senders emit numeric ids."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):  # bool is an int subclass; True is never a real id
        raise InvalidIdentifier(type, raw, "booleans are not identifiers")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float | Decimal):
        if raw != raw:  # NaN (float or Decimal): pandas' "missing"; blocked by default like "nan"
            return "nan"
        if not math.isfinite(raw):
            raise InvalidIdentifier(type, raw, "number is not finite")
        if raw == int(raw):  # 12.0 -> "12": JSON encoders in JS/pandas turn int ids into floats
            return str(int(raw))
        return str(raw)
    raise InvalidIdentifier(type, raw, f"expected a string or a number, got {raw.__class__.__name__}")


def _normalize_email(text: str, raw: object) -> str:
    candidate = text.strip()
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifier("email", raw, str(exc)) from None
    # Lower-case the local part too: RFC 5321 allows case-sensitive mailboxes, but no real
    # provider uses them and marketing lists treat "John@x.com" and "john@x.com" as one person.
    return result.normalized.lower()


_IMPOSSIBLE_REASONS: Mapping[int, str] = MappingProxyType(
    {
        phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country calling code",
        phonenumbers.ValidationResult.TOO_SHORT: "too short",
        phonenumbers.ValidationResult.TOO_LONG: "too long",
        phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
        # A local number without area code cannot be dialled from elsewhere: useless as an id.
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "local number without area code",
    }
)


def _normalize_phone(text: str, raw: object, region: str) -> str:
    try:
        number = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier("phone", raw, f"not a phone number (default region {region}): {exc}") from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        reason = _IMPOSSIBLE_REASONS.get(possible, "impossible number")
        raise InvalidIdentifier("phone", raw, f"impossible phone number, {reason} (default region {region})")
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("phone", raw, f"no such phone number range (default region {region})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalize_opaque(type: str, text: str, raw: object) -> str:
    # Case is preserved: opaque ids from other systems may be case-sensitive (base64, etc.).
    value = text.strip()
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidIdentifier(type, raw, f"longer than {MAX_VALUE_LENGTH} characters ({len(value)})")
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            raise InvalidIdentifier(type, raw, f"contains control character U+{ord(ch):04X}")
    return value


# --- comparison keys for fuzzy de-duplication -------------------------------------------

# Letters that NFKD does not decompose into base + combining mark.
_FOLD = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})
_APOSTROPHES = re.compile(r"['\u2019\u2018`´]")
_NON_ALNUM = re.compile(r"[^\w]+|_")

_ADDRESS_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "street": "st",
        "avenue": "ave",
        "av": "ave",
        "road": "rd",
        "drive": "dr",
        "lane": "ln",
        "court": "ct",
        "place": "pl",
        "boulevard": "blvd",
        "terrace": "ter",
        "crescent": "cres",
        "close": "cl",
        "square": "sq",
        "highway": "hwy",
        "parkway": "pkwy",
        "circle": "cir",
        "gardens": "gdns",
        "apartment": "apt",
        "suite": "ste",
        "flat": "apt",  # UK "Flat 3" and US "Apt 3" are the same thing for matching
        "unit": "apt",
        "north": "n",
        "south": "s",
        "east": "e",
        "west": "w",
        "number": "no",
    }
)


def _fold(s: str) -> str:
    """Case-fold and strip accents: "Zoë Ørsted" -> "zoe orsted"."""
    if s.isascii():  # the common case; skips the per-character work (dedup calls this a lot)
        return s.lower()
    s = unicodedata.normalize("NFKD", s.casefold()).translate(_FOLD)
    return "".join(ch for ch in s if not unicodedata.combining(ch))


def normalize_name(s: str | None) -> str:
    """Comparison key for a person name: folded, apostrophes dropped, other punctuation to spaces.

    "O'Brien" -> "obrien", "Mary-Jane  Smith" -> "mary jane smith", "JOSÉ" -> "jose".
    """
    if not s:
        return ""
    s = _APOSTROPHES.sub("", _fold(s))
    return " ".join(_NON_ALNUM.sub(" ", s).split())


def normalize_postcode(s: str | None) -> str:
    """Comparison key for a postcode: upper case, no spaces/punctuation; ZIP+4 -> ZIP5.

    "sw1a 1aa" -> "SW1A1AA", "94105-1234" -> "94105".
    """
    if not s:
        return ""
    key = "".join(ch for ch in _fold(s) if ch.isalnum()).upper()
    if len(key) == 9 and key.isdigit():  # US ZIP+4: the +4 is often missing on one side
        key = key[:5]
    return key


def normalize_address(s: str | None) -> str:
    """Comparison key for a street address: folded, punctuation collapsed, common abbreviations.

    "12, High Street" -> "12 high st"; "Flat 3, 5 Park Avenue" -> "apt 3 5 park ave".
    """
    if not s:
        return ""
    s = _APOSTROPHES.sub("", _fold(s))
    tokens = _NON_ALNUM.sub(" ", s).split()
    return " ".join(_ADDRESS_ABBREVIATIONS.get(t, t) for t in tokens)
