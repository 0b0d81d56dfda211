"""What a JSON value must be to be stored, on every path (tracking API, imports, admin routes).

PostgreSQL's jsonb keeps any number exactly and nests as deep as it likes, but what is stored
must also be read back, served and computed on: by orjson and pydantic (no integer past 64
bits, no infinity, at most 254 levels), by the computed traits' casts to `double precision`,
and by asyncpg's text encoding (no NUL, no unpaired surrogate, valid UTF-8). So:

| rule | code |
|---|---|
| integers from -2^63 to 2^63-1 (`INT_MIN`..`INT_MAX`) | `bad_number` |
| numbers with a fraction or exponent finite as a double (`1e400` is not) | `bad_number` |
| no NUL character (`\\u0000`) | `bad_character` |
| no unpaired UTF-16 surrogate (`"\\ud800"` alone) | `bad_character` |
| valid UTF-8 | `bad_encoding` |
| at most `MAX_DEPTH` levels of objects and arrays | `too_deep` |

The checks on JSON text are written for the ingest hot path: `suspect_numbers` and
`has_surrogate_escape` are one C-speed search over a whole body, so a body without anything
suspicious costs no per-message work; only the messages of a suspicious body are checked
exactly (`check_numbers`), and even then only at the tokens that could break a rule.
"""

from __future__ import annotations

import math
import re
from typing import Any

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_DEPTH = 64


class JsonRuleError(Exception):
    """A value breaks one of the rules above: `code` and a `reason` a client can act on."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- JSON text ---------------------------------------------------------------------------------

# The shape of numbers, one byte per byte (bytes.translate: one C loop over a body): digits
# become 0, e/E become e, what ends a number becomes a comma, signs are dropped, anything else
# (letters, quotes) becomes x. An integer past 64 bits has 19 digits in a row ("0" * 19); a
# double past its range has an exponent of three digits or more, which ends as a number ends
# ("e000," for three digits; four or more are looked for only where "0000," occurs). A hex id
# ("...5e442f...") never matches: inside a string the digits are followed by a letter or a
# quote. Text in strings can still raise a false alarm, which only costs the exact check.
_SHAPE = bytes.maketrans(
    bytes(range(256)),
    bytes(
        ord("0") if chr(c).isdigit() and c < 128 else ord("e") if c in b"eE"
        else ord(",") if c in b",]}\x20\t\r\n" else ord("x")
        for c in range(256)
    ),
)
_LONG_EXPONENT = re.compile(rb"e0{4,},")
# Strings, whose contents are not numbers, and number tokens (JSON's grammar, leniently).
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(rb"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_BRACKETS = re.compile(rb"[\[\]{}]")
# A \uD800-\uDFFF escape, paired (kept) or alone, not itself escaped (\\ud800 is text).
_SURROGATE_ESCAPE = re.compile(
    rb"(?<!\\)((?:\\\\)*)(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
# What an unpaired surrogate escape is replaced with by `mask_lone_surrogates`: U+FFFD, the
# same six bytes long, so offsets in the masked text are offsets in the original.
_REPLACEMENT = b"\\ufffd"


def suspect_numbers(data: bytes) -> bool:
    """Whether this JSON text may hold a number `check_numbers` rejects (never a false no)."""
    shape = data.translate(_SHAPE, b"+-")
    return (
        b"0000000000000000000" in shape or b"e000," in shape
        or (b"0000," in shape and _LONG_EXPONENT.search(shape) is not None)
    )


def number_problem(token: bytes | str) -> str | None:
    """Why a JSON number token breaks the rules, or None."""
    text = token.decode() if isinstance(token, bytes) else token
    if "." in text or "e" in text or "E" in text:
        try:
            value = float(text)
        except ValueError:
            return f"{text[:40]} is not a number"
        if not math.isfinite(value):
            shown = text if len(text) <= 40 else text[:20] + "..." + text[-10:]
            return f"the number {shown} is beyond the range of a double (about 1.8e308)"
        return None
    digits = len(text) - (text[0] == "-")
    if digits > 19 or not (INT_MIN <= int(text) <= INT_MAX):
        shown = text if len(text) <= 40 else text[:20] + "..." + text[-10:]
        return f"the integer {shown} is beyond the 64-bit range (-2^63 to 2^63-1); send it as a string"
    return None


def check_numbers(data: bytes) -> None:
    """Raise JsonRuleError for the first number of this JSON text that breaks the rules."""
    if not suspect_numbers(data):
        return
    skeleton = _STRING.sub(b'""', data) if b'"' in data else data
    for match in _NUMBER.finditer(skeleton):
        token = match.group()
        if len(token) < 19 and not match.group(2):
            continue
        problem = number_problem(token)
        if problem is not None:
            raise JsonRuleError("bad_number", problem)


def check_depth(data: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise JsonRuleError when objects and arrays nest deeper than `limit` in this JSON text.
    Cheap for the usual text: it cannot nest deeper than it has opening brackets."""
    if data.count(b"{") + data.count(b"[") <= limit:
        return
    skeleton = _STRING.sub(b'""', data) if b'"' in data else data
    depth = 0
    for match in _BRACKETS.finditer(skeleton):
        if match.group() in (b"{", b"["):
            depth += 1
            if depth > limit:
                raise JsonRuleError(
                    "too_deep", f"objects and arrays are nested more than {limit} levels deep"
                )
        else:
            depth -= 1


def has_surrogate_escape(data: bytes) -> bool:
    return b"\\u" in data and _SURROGATE_ESCAPE.search(data) is not None


def mask_lone_surrogates(data: bytes) -> bytes:
    """The text with each unpaired surrogate escape replaced by `\\ufffd` (same length); pairs
    (an emoji as `\\ud83d\\ude00`, as Python's json writes it) are kept."""

    def replace(match: re.Match[bytes]) -> bytes:
        return match.group(0) if len(match.group(2)) == 12 else match.group(1) + _REPLACEMENT

    return _SURROGATE_ESCAPE.sub(replace, data)


def lone_surrogate_problem() -> JsonRuleError:
    return JsonRuleError(
        "bad_character",
        "a string holds an unpaired UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), "
        "which is not a character; send valid Unicode",
    )


def utf8_problem(data: bytes) -> JsonRuleError | None:
    if data.isascii():
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JsonRuleError(
            "bad_encoding", f"the text is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        )
    return None


def check_text(data: bytes) -> None:
    """Every rule on one JSON text (a single message, an admin request's body, an import line):
    encoding, surrogates, NUL, depth and numbers. Validity as JSON is left to the decoder."""
    if (problem := utf8_problem(data)) is not None:
        raise problem
    if has_surrogate_escape(data) and mask_lone_surrogates(data) != data:
        raise lone_surrogate_problem()
    if has_nul_escape(data):
        raise JsonRuleError("bad_character", "a string holds a NUL character (\\u0000), which cannot be stored")
    check_depth(data)
    check_numbers(data)


_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def has_nul_escape(data: bytes) -> bool:
    """Whether this JSON text holds a NUL character (as the \\u0000 escape JSON requires). A
    backslash is looked for first: one byte is found with memchr, many times faster than six,
    and most texts have none."""
    return b"\\" in data and b"\\u0000" in data and _NUL_ESCAPE.search(data) is not None


# --- Python values -----------------------------------------------------------------------------

def value_problem(value: Any, depth: int = 0) -> JsonRuleError | None:
    """The rules on a decoded value (a CSV row turned into a message, a batch-level context):
    the first problem found, or None."""
    if isinstance(value, str):
        if "\x00" in value:
            return JsonRuleError("bad_character", "a string holds a NUL character (\\u0000), which cannot be stored")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return lone_surrogate_problem()
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return JsonRuleError("bad_number", number_problem(str(value)) or "integer out of range")
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return JsonRuleError("bad_number", f"the number {value} is not finite")
        return None
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return JsonRuleError("too_deep", f"objects and arrays are nested more than {MAX_DEPTH} levels deep")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (problem := value_problem(key, depth)) is not None:
                return problem
            if (problem := value_problem(item, depth + 1)) is not None:
                return problem
    return None
