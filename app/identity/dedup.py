"""Fuzzy de-duplication: likely duplicate people that share *no* identifier.

Identity resolution links records on exact normalised identifiers (see
:mod:`app.identity.normalize`). What it cannot see are the same person typed in twice with a
different (or no) e-mail and phone: "Jon Smith, 12 High St" from the shop and "John
Smith, 12 High Street" from the newsletter. This module proposes such pairs for review or
automatic merging. It is pure code (no database, no web framework); ``docs/DEDUP.md``
explains the method and the measured quality.

Pipeline
--------
1. **Features**: each record is normalised once (names, postcode, address, e-mail local
   part, phone digits, phonetic keys) and value frequencies are counted.
2. **Blocking**: a record is only compared with records sharing at least one blocking key
   (postcode + initial, phonetic surname + birth year, birthdate, phonetic full name, house
   number + street, e-mail local part, phone tail), so the cost grows with the block sizes
   rather than n^2. Blocks
   larger than ``max_block_size`` are skipped and counted: a key shared by thousands of
   records ("1970-01-01", a shop's phone number) carries no identifying information and
   would dominate the run time.
3. **Scoring**: a Fellegi-Sunter model. Every field comparison falls into a level
   ("exact", "typo", "different", ...); each level has m = P(level | same person) and
   u = P(level | different people), and contributes ``log2(m / u)`` bits of evidence. A
   missing field contributes 0 bits. Exact agreements use term frequencies for u (sharing
   "Smith" is weaker evidence than sharing "Zebulon"). The bits plus the prior log-odds
   give the posterior probability that the pair is one person: the score.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import random
import string
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler

from app.identity.normalize import (
    IdentitySettings,
    InvalidIdentifier,
    normalize_address,
    normalize_identifier,
    normalize_name,
    normalize_postcode,
)

__all__ = [
    "DEFAULT_EXPECTED_DUPLICATE_RATE",
    "DEFAULT_THRESHOLD",
    "CandidatePair",
    "DedupResult",
    "PersonRecord",
    "evaluate",
    "find_candidates",
    "generate_synthetic_people",
    "main",
    "soundex",
]

#: Score from which a pair counts as "the same person" (the operating point in DEDUP.md).
DEFAULT_THRESHOLD = 0.8

#: Assumed share of records that are an extra copy of another person; sets the prior.
DEFAULT_EXPECTED_DUPLICATE_RATE = 0.05


# --- public data types ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person as a source system knows them; every field but ``id`` may be missing."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    postcode: str | None = None
    address: str | None = None
    birthdate: date | None = None


@dataclass(frozen=True, slots=True)
class CandidatePair:
    """Two records that are probably one person; ``left_id < right_id``.

    ``score`` is the model's probability that they are the same person. ``evidence`` has,
    per compared field, the comparison level (``"first_name": "typo"``) and its weight in
    bits (``"first_name_bits": 4.3``), plus ``prior_bits`` and ``total_bits``.
    """

    left_id: str
    right_id: str
    score: float
    evidence: dict[str, float | str] = field(compare=False)


@dataclass(frozen=True, slots=True)
class DedupResult:
    """Candidate pairs (best first) and the work done to find them."""

    pairs: list[CandidatePair]
    compared_pairs: int
    skipped_blocks: int


# --- phonetic key --------------------------------------------------------------------------

_SOUNDEX_CODES: Mapping[str, str] = {
    ch: code
    for letters, code in (("bfpv", "1"), ("cgjkqsxz", "2"), ("dt", "3"), ("l", "4"), ("mn", "5"), ("r", "6"))
    for ch in letters
}


def soundex(name: str | None) -> str:
    """American Soundex of ``name`` ("Robert" and "Rupert" -> "R163"); "" if no latin letters.

    Chosen for blocking because it is tiny, well known and maps the common spelling
    variants (Smith/Smyth, Meyer/Meier) together; the scorer does the fine comparison.
    """
    return _soundex(normalize_name(name))


@functools.lru_cache(maxsize=1 << 16)  # names repeat a lot; the cache makes blocking ~2x faster
def _soundex(normalized: str) -> str:
    letters = [ch for ch in normalized if "a" <= ch <= "z"]
    if not letters:
        return ""
    out = [letters[0].upper()]
    prev = _SOUNDEX_CODES.get(letters[0], "")
    for ch in letters[1:]:
        code = _SOUNDEX_CODES.get(ch, "")
        if code and code != prev:
            out.append(code)
            if len(out) == 4:
                break
        if ch not in "hw":  # h and w do not separate two equal codes; vowels do
            prev = code
    return "".join(out).ljust(4, "0")


# --- nicknames -----------------------------------------------------------------------------

# Only nicknames that are not simple prefixes ("Chris" is caught by the prefix rule).
_NICKNAME_GROUPS: tuple[tuple[str, ...], ...] = (
    ("william", "bill", "billy", "will", "liam"),
    ("robert", "bob", "bobby", "rob", "robbie", "bert"),
    ("richard", "dick", "rick", "ricky", "rich"),
    ("margaret", "peggy", "peg", "maggie", "meg", "marge", "greta"),
    ("james", "jim", "jimmy", "jamie"),
    ("john", "jack", "johnny", "jon"),
    ("edward", "ted", "teddy", "ned", "eddie", "ed"),
    ("elizabeth", "beth", "betty", "liz", "lizzie", "eliza", "libby", "bess"),
    ("katherine", "kate", "katie", "kathy", "kath", "kat", "kay"),
    ("catherine", "kate", "katie", "cathy", "cath", "cat"),
    ("anthony", "tony"),
    ("charles", "charlie", "chuck", "chas"),
    ("henry", "harry", "hank"),
    ("sarah", "sally", "sadie"),
    ("mary", "molly", "polly", "mae"),
    ("jennifer", "jenny", "jen", "jenn"),
    ("susan", "sue", "suzy", "susie"),
    ("patricia", "pat", "patty", "trish", "tricia"),
    ("alexander", "alex", "sandy", "xander"),
    ("christopher", "chris", "kit"),
    ("andrew", "andy", "drew"),
    ("michael", "mike", "mikey", "mick"),
    ("joseph", "joe", "joey"),
    ("daniel", "dan", "danny"),
    ("thomas", "tom", "tommy"),
    ("david", "dave", "davy"),
    ("stephen", "steve", "stevie"),
    ("steven", "steve", "stevie"),
    ("matthew", "matt"),
    ("nicholas", "nick", "nicky"),
    ("benjamin", "ben", "benny"),
    ("samuel", "sam", "sammy"),
    ("rebecca", "becky", "becca"),
    ("deborah", "debbie", "deb"),
    ("victoria", "vicky", "tori"),
    ("frances", "fran", "frankie"),
    ("francis", "frank", "frankie"),
    ("lawrence", "larry"),
    ("gerald", "gerry", "jerry"),
    ("timothy", "tim", "timmy"),
    ("kenneth", "ken", "kenny"),
    ("raymond", "ray"),
    ("ronald", "ron", "ronnie"),
    ("donald", "don", "donnie"),
    ("abigail", "abby", "gail"),
    ("dorothy", "dot", "dottie", "dolly"),
)


def _build_nicknames() -> dict[str, frozenset[str]]:
    related: dict[str, set[str]] = defaultdict(set)
    for group in _NICKNAME_GROUPS:
        for name in group:
            related[name].update(group)
    return {name: frozenset(names - {name}) for name, names in related.items()}


_NICKNAMES = _build_nicknames()


# --- the model: comparison levels and their m/u probabilities --------------------------------
#
# Each entry is (m, u): m = P(level | same person), u = P(level | different people).
# u=None marks levels whose u is the term frequency of the shared value (_Scorer._tf_bits). m is set for the population this module is for: records
# that identifier linking did NOT join, so e-mail and phone usually differ between
# duplicates (m of "different" is high and those fields carry little negative evidence).

_FIRST: Mapping[str, tuple[float, float | None]] = {
    "exact": (0.80, None),
    "nickname": (0.07, 0.004),  # "Chris"/"Christopher", "Bill"/"William"
    "typo": (0.08, 0.004),  # one edit or Jaro-Winkler >= 0.92
    "initial": (0.02, 0.05),  # "J" vs "John": consistent, barely informative
    "similar": (0.015, 0.04),
    "different": (0.015, 0.90),
}
_LAST: Mapping[str, tuple[float, float | None]] = {
    "exact": (0.86, None),
    "typo": (0.10, 0.003),
    "similar": (0.02, 0.02),
    "different": (0.02, 0.975),
}
# Surname u *given that the two records live at the same address*: relatives share it.
# Without this, "same address + same surname" would count twice for what is really one
# fact (same household) and spouses/children would be proposed as duplicates.
_LAST_SAME_HOUSEHOLD: Mapping[str, float] = {"exact": 0.60, "typo": 0.01, "similar": 0.04, "different": 0.35}
# First-name u within one household: relatives almost never share (or nearly share) a
# first name, so there an agreeing first name is stronger evidence than in the population.
_FIRST_SAME_HOUSEHOLD: Mapping[str, float] = {
    "exact": 0.005,
    "nickname": 0.003,
    "typo": 0.003,
    "initial": 0.05,
    "similar": 0.02,
    "different": 0.919,
}
_BIRTHDATE: Mapping[str, tuple[float, float | None]] = {
    "exact": (0.92, None),
    "near": (0.05, 0.001),  # one digit off, or day and month swapped
    "different": (0.03, 0.998),
}
_EMAIL: Mapping[str, tuple[float, float | None]] = {
    "exact": (0.03, None),  # rare here: identifier linking already joins equal e-mails
    "local_part": (0.30, None),  # john.smith+shop@gmail.com vs JohnSmith@yahoo.com
    "similar": (0.07, 0.001),
    "different": (0.60, 0.998),
}
_PHONE: Mapping[str, tuple[float, float | None]] = {
    "exact": (0.03, None),
    "near": (0.17, 1e-4),  # one digit wrong or two swapped
    "different": (0.80, 0.9999),
}
# Postcode and address are compared together: they are strongly dependent (a shared
# address implies a shared postcode), so scoring them as independent fields would
# double-count one piece of evidence.
_LOCATION: Mapping[str, tuple[float, float | None]] = {
    "same_address": (0.70, None),
    "same_postcode": (0.06, None),  # same postcode, different house
    "same_address_other_postcode": (0.06, 1e-3),  # postcode typo
    "different": (0.18, 0.998),  # moved house
    # only one of postcode/address present on both records
    "postcode_match": (0.85, None),
    "postcode_different": (0.15, 0.999),
    "address_match": (0.80, 1e-3),
    "address_different": (0.20, 0.999),
}
# u of an equal e-mail local part that is just the person's name ("john.smith", "jsmith")
# *given that the names agree*: namesakes pick the same few patterns, so the e-mail adds
# little to the name evidence. Digits or anything else in the local part keep the full weight.
_NAME_DERIVED_EMAIL_U = 0.2
# Term frequencies. The u of an exact agreement on value v is the share of records holding v,
# smoothed towards a population default u0 with _TF_PSEUDO_COUNT pseudo-records:
#     u = (count(v) + k * u0) / (n + k),  then at least the floor
# so a small batch (where three of seven records sharing a birthday says nothing about
# birthdays) falls back to u0, while a large file speaks for itself ("Smith" is common).
# The floor caps the weight of values seen only once or twice in a huge file.
_TF_PSEUDO_COUNT = 1000.0
_TF_DEFAULT: Mapping[str, tuple[float, float]] = {  # field: (u0, floor)
    "first_name": (0.01, 1e-4),
    "last_name": (0.005, 1e-4),
    "birthdate": (1.0 / (365.25 * 70), 1.0 / (365.25 * 70)),  # birthdays spread over ~70 years
    "email": (1e-6, 1e-6),
    "email_key": (1e-4, 1e-5),
    "phone": (1e-6, 1e-6),
    "address": (1e-4, 1e-5),
    "postcode": (1e-3, 1e-5),
}
# Swapped first/last names: log2 P(swap | same person); the swapped reading must beat the
# straight one by this much before it is believed.
_SWAP_BITS = math.log2(0.05)


def _bits(m: float, u: float) -> float:
    return math.log2(m / u)


def _fixed_bits(table: Mapping[str, tuple[float, float | None]]) -> dict[str, float]:
    """Weights of the levels with a fixed u (computed once, not per pair)."""
    return {level: _bits(m, u) for level, (m, u) in table.items() if u is not None}


_FIRST_BITS = _fixed_bits(_FIRST)
_FIRST_HOUSEHOLD_BITS = {level: _bits(_FIRST[level][0], u) for level, u in _FIRST_SAME_HOUSEHOLD.items()}
_LAST_BITS = _fixed_bits(_LAST)
_LAST_HOUSEHOLD_BITS = {level: _bits(_LAST[level][0], u) for level, u in _LAST_SAME_HOUSEHOLD.items()}
_BIRTHDATE_BITS = _fixed_bits(_BIRTHDATE)
_EMAIL_BITS = _fixed_bits(_EMAIL)
_PHONE_BITS = _fixed_bits(_PHONE)
_LOCATION_BITS = _fixed_bits(_LOCATION)


# --- features --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Features:
    """A record's comparison keys, computed once (scoring is the hot loop)."""

    first: str  # normalised full first name(s) "mary ann"
    first_tok: str  # first given name "mary"
    last: str  # normalised surname without spaces: "van der berg" -> "vanderberg"
    birthdate: date | None
    birthdate_digits: str  # "19800412", for the one-digit-typo test
    email: str  # lower-cased full address
    email_key: str  # local part without dots, plus-suffix and case: the person, not the box
    phone: str  # last 9 digits: same for "+44 7911 123456" and "07911 123456"
    postcode: str
    address: str  # normalised, house numbers removed: "high st"
    house_numbers: frozenset[str]
    address_key: str  # postcode + full normalised address, for frequencies
    name_emails: frozenset[str]  # e-mail local parts made of the name alone: "johnsmith", "jsmith"


def _features(r: PersonRecord) -> _Features:
    first = normalize_name(r.first_name)
    email = (r.email or "").strip().lower()
    email_key = ""
    if "@" in email:
        local = email.rsplit("@", 1)[0].split("+", 1)[0]
        email_key = "".join(ch for ch in local if ch.isalnum())
    digits = "".join(ch for ch in (r.phone or "") if ch.isdigit())
    address = normalize_address(r.address)
    tokens = address.split()
    postcode = normalize_postcode(r.postcode)
    first_tok = first.split(" ", 1)[0]
    last = normalize_name(r.last_name).replace(" ", "")
    name_emails: frozenset[str] = frozenset()
    if first_tok and last:
        f, l = first_tok.replace(" ", ""), last
        name_emails = frozenset({f + l, l + f, f[0] + l, f + l[0], l + f[0], f, l})
    return _Features(
        first=first,
        first_tok=first_tok,
        last=last,
        birthdate=r.birthdate,
        birthdate_digits=r.birthdate.strftime("%Y%m%d") if r.birthdate else "",
        email=email,
        email_key=email_key if len(email_key) >= 3 else "",
        phone=digits[-9:] if len(digits) >= 7 else "",
        postcode=postcode,
        address=" ".join(t for t in tokens if not t.isdigit()),
        house_numbers=frozenset(t for t in tokens if t.isdigit()),
        address_key=f"{postcode}|{address}" if address else "",
        name_emails=name_emails,
    )


def _block_keys(f: _Features) -> Iterable[tuple[str, ...]]:
    """Blocking keys of one record. Several independent keys, so that one corrupted field
    (typo in the surname, missing birthdate, moved house) does not hide a duplicate."""
    initials = {n[0] for n in (f.first_tok, f.last) if n}
    if f.postcode:
        # Both initials: a swapped first/last name must still land in the same block.
        for initial in initials:
            yield ("postcode", f.postcode, initial)
    if f.birthdate:
        if f.last:  # surname spelt differently, birthday mistyped
            yield ("phonetic_year", _soundex(f.last), str(f.birthdate.year))
        yield ("birthdate", f.birthdate.isoformat())
    if f.first_tok and f.last:
        # Sorted, so that swapped first/last names give the same key.
        yield ("phonetic_name", *sorted((_soundex(f.first_tok), _soundex(f.last))))
    if f.house_numbers and f.address:
        # Same house, postcode missing or mistyped on one side.
        yield ("address", " ".join(sorted(f.house_numbers)), f.address.split(" ", 1)[0])
    if f.email_key:
        yield ("email_key", f.email_key)
    if f.phone:
        yield ("phone_tail", f.phone[-7:])


# --- field comparisons ---------------------------------------------------------------------


def _first_level(a_full: str, a_tok: str, b_full: str, b_tok: str) -> str:
    if a_full == b_full or a_tok == b_tok:
        return "exact"  # also "Mary Ann" vs "Mary": a dropped middle name
    short, long = sorted((a_tok, b_tok), key=len)
    if len(short) == 1:
        return "initial" if long[0] == short else "different"
    if long.startswith(short) or b_tok in _NICKNAMES.get(a_tok, ()):
        return "nickname"
    jw = JaroWinkler.similarity(a_tok, b_tok)
    if jw >= 0.92 or (len(short) >= 3 and OSA.distance(a_tok, b_tok) <= 1):
        return "typo"
    return "similar" if jw >= 0.80 else "different"


def _last_level(a: str, b: str) -> str:
    if a == b:
        return "exact"
    jw = JaroWinkler.similarity(a, b)
    if jw >= 0.92 or (min(len(a), len(b)) >= 4 and OSA.distance(a, b) <= 1):
        return "typo"
    if jw >= 0.80 or a.startswith(b) or b.startswith(a):  # double-barrelled "Smith-Jones"
        return "similar"
    return "different"


def _birthdate_level(a: _Features, b: _Features) -> str:
    x, y = a.birthdate, b.birthdate
    assert x is not None and y is not None
    if x == y:
        return "exact"
    if (x.year, x.month, x.day) == (y.year, y.day, y.month):  # US vs European date order
        return "near"
    if OSA.distance(a.birthdate_digits, b.birthdate_digits) <= 1:
        return "near"
    return "different"


class _Scorer:
    """Fellegi-Sunter scorer with term frequencies taken from the records being matched."""

    def __init__(self, features: Sequence[_Features], expected_duplicate_rate: float) -> None:
        n = len(features)
        self.n = max(n, 1)
        # Prior odds that two records picked at random are one person: r*n true pairs among
        # n(n-1)/2. Larger files need more evidence per pair, as they should.
        self.prior_bits = math.log2(max(2.0 * expected_duplicate_rate / max(n - 1, 1), 1e-12))
        self.first = Counter(f.first_tok for f in features if f.first_tok)
        self.last = Counter(f.last for f in features if f.last)
        self.birthdate = Counter(f.birthdate for f in features if f.birthdate)
        self.email = Counter(f.email for f in features if f.email)
        self.email_key = Counter(f.email_key for f in features if f.email_key)
        self.phone = Counter(f.phone for f in features if f.phone)
        self.postcode = Counter(f.postcode for f in features if f.postcode)
        self.address = Counter(f.address_key for f in features if f.address_key)

    def _tf_bits(self, m: float, count: int, kind: str) -> float:
        """Weight of an exact agreement on a value held by ``count`` of the n records."""
        u0, floor = _TF_DEFAULT[kind]
        return _bits(m, max((count + _TF_PSEUDO_COUNT * u0) / (self.n + _TF_PSEUDO_COUNT), floor))

    def score(self, a: _Features, b: _Features) -> tuple[float, list[tuple[str, str, float]]]:
        """Total weight in bits (without the prior) and the per-field evidence."""
        evidence: list[tuple[str, str, float]] = []

        location = self._location(a, b)
        if location is not None:
            evidence.append(location)
        same_household = location is not None and location[1] in ("same_address", "address_match")

        names = self._names(a, b, same_household)
        evidence.extend(names)
        names_agree = len(names) >= 2 and all(level not in ("different", "similar") for _, level, _ in names)

        if a.birthdate and b.birthdate:
            level = _birthdate_level(a, b)
            if level == "exact":
                w = self._tf_bits(_BIRTHDATE["exact"][0], self.birthdate[a.birthdate], "birthdate")
            else:
                w = _BIRTHDATE_BITS[level]
            evidence.append(("birthdate", level, w))

        if a.email and b.email:
            evidence.append(self._email(a, b, names_agree))

        if a.phone and b.phone:
            if a.phone == b.phone:
                evidence.append(("phone", "exact", self._tf_bits(_PHONE["exact"][0], self.phone[a.phone], "phone")))
            elif len(a.phone) == len(b.phone) and OSA.distance(a.phone, b.phone) <= 1:
                evidence.append(("phone", "near", _PHONE_BITS["near"]))
            else:
                evidence.append(("phone", "different", _PHONE_BITS["different"]))

        return sum(w for _, _, w in evidence), evidence

    def _email(self, a: _Features, b: _Features, names_agree: bool) -> tuple[str, str, float]:
        if a.email == b.email:
            return ("email", "exact", self._tf_bits(_EMAIL["exact"][0], self.email[a.email], "email"))
        if a.email_key and a.email_key == b.email_key:
            m = _EMAIL["local_part"][0]
            if names_agree and (a.email_key in a.name_emails or a.email_key in b.name_emails):
                return ("email", "local_part", _bits(m, _NAME_DERIVED_EMAIL_U))
            return ("email", "local_part", self._tf_bits(m, self.email_key[a.email_key], "email_key"))
        if (
            a.email_key
            and b.email_key
            and min(len(a.email_key), len(b.email_key)) >= 5
            and JaroWinkler.similarity(a.email_key, b.email_key) >= 0.92
        ):
            return ("email", "similar", _EMAIL_BITS["similar"])
        return ("email", "different", _EMAIL_BITS["different"])

    def _location(self, a: _Features, b: _Features) -> tuple[str, str, float] | None:
        has_pc = bool(a.postcode and b.postcode)
        has_addr = bool(a.address_key and b.address_key)
        same_pc = has_pc and a.postcode == b.postcode
        # House numbers must agree exactly: "12 High St" and "14 High St" are neighbours,
        # and token_set_ratio alone would call them 90% similar.
        same_addr = (
            has_addr and a.house_numbers == b.house_numbers and fuzz.token_set_ratio(a.address, b.address) >= 85
        )
        if has_pc and has_addr:
            if same_pc and same_addr:
                # Term frequency of the address; at least the two records being compared.
                count = max(self.address[a.address_key] if a.address_key == b.address_key else 0, 2)
                return ("location", "same_address", self._tf_bits(_LOCATION["same_address"][0], count, "address"))
            if same_pc:
                w = self._tf_bits(_LOCATION["same_postcode"][0], self.postcode[a.postcode], "postcode")
                return ("location", "same_postcode", w)
            level = "same_address_other_postcode" if same_addr else "different"
            return ("location", level, _LOCATION_BITS[level])
        if has_pc:
            if same_pc:
                w = self._tf_bits(_LOCATION["postcode_match"][0], self.postcode[a.postcode], "postcode")
                return ("location", "postcode_match", w)
            return ("location", "postcode_different", _LOCATION_BITS["postcode_different"])
        if has_addr:
            level = "address_match" if same_addr else "address_different"
            return ("location", level, _LOCATION_BITS[level])
        return None

    def _names(self, a: _Features, b: _Features, same_household: bool) -> list[tuple[str, str, float]]:
        straight: list[tuple[str, str, float]] = []
        if a.first_tok and b.first_tok:
            straight.append(self._first(a.first, a.first_tok, b.first, b.first_tok, same_household))
        if a.last and b.last:
            straight.append(self._last(a.last, b.last, same_household))
        if not (a.first_tok and a.last and b.first_tok and b.last):
            return straight
        straight_bits = sum(w for *_, w in straight)
        if straight_bits > 0:
            return straight  # the swapped reading can only win when the straight one fails
        # Swapped reading: a's first name against b's surname field and vice versa.
        swapped = [
            self._first(a.first, a.first_tok, b.last, b.last, same_household, swapped=True),
            self._last(a.last, b.first.replace(" ", ""), same_household, swapped=True),
        ]
        if sum(w for *_, w in swapped) + _SWAP_BITS > straight_bits:
            return [*swapped, ("names_swapped", "yes", _SWAP_BITS)]
        return straight

    def _first(
        self, a_full: str, a_tok: str, b_full: str, b_tok: str, same_household: bool, swapped: bool = False
    ) -> tuple[str, str, float]:
        level = _first_level(a_full, a_tok, b_full, b_tok)
        if same_household:
            return ("first_name", level, _FIRST_HOUSEHOLD_BITS[level])
        if level != "exact":
            return ("first_name", level, _FIRST_BITS[level])
        count = max(self.first[a_tok], self.last[a_tok]) if swapped else self.first[a_tok]
        return ("first_name", level, self._tf_bits(_FIRST["exact"][0], count, "first_name"))

    def _last(self, a: str, b: str, same_household: bool, swapped: bool = False) -> tuple[str, str, float]:
        level = _last_level(a, b)
        if same_household:
            return ("last_name", level, _LAST_HOUSEHOLD_BITS[level])
        if level != "exact":
            return ("last_name", level, _LAST_BITS[level])
        count = max(self.last[a], self.first[a]) if swapped else self.last[a]
        return ("last_name", level, self._tf_bits(_LAST["exact"][0], count, "last_name"))


# --- matching ------------------------------------------------------------------------------


def _posterior(bits: float) -> float:
    return 1.0 / (1.0 + 2.0 ** -max(min(bits, 60.0), -60.0))


def find_candidates(
    records: Sequence[PersonRecord],
    *,
    min_score: float = 0.5,
    max_block_size: int = 500,
    expected_duplicate_rate: float = DEFAULT_EXPECTED_DUPLICATE_RATE,
) -> DedupResult:
    """Find likely duplicate pairs among ``records``.

    ``min_score`` drops pairs below that probability. Blocks of more than
    ``max_block_size`` records are not expanded into pairs (counted in
    ``skipped_blocks``). ``expected_duplicate_rate`` (share of records that are an extra
    copy of another) sets the prior; it shifts all scores alike, not their order.
    """
    if max_block_size < 2:
        raise ValueError("max_block_size must be >= 2")
    if not 0.0 < expected_duplicate_rate < 1.0:
        raise ValueError("expected_duplicate_rate must be between 0 and 1")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique")

    features = [_features(r) for r in records]
    blocks: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, f in enumerate(features):
        for key in set(_block_keys(f)):
            blocks[key].append(i)

    n = len(records)
    candidates: set[int] = set()  # i * n + j with i < j: ints hash and store far cheaper than tuples
    skipped_blocks = 0
    for members in blocks.values():
        if len(members) < 2:
            continue
        if len(members) > max_block_size:
            skipped_blocks += 1
            continue
        # members are appended in index order, so every combination already has i < j.
        candidates.update(i * n + j for i, j in itertools.combinations(members, 2))

    scorer = _Scorer(features, expected_duplicate_rate)
    pairs: list[CandidatePair] = []
    for code in candidates:
        i, j = divmod(code, n)
        bits, evidence = scorer.score(features[i], features[j])
        total = scorer.prior_bits + bits
        score = _posterior(total)
        if score < min_score:
            continue
        left, right = sorted((ids[i], ids[j]))
        detail: dict[str, float | str] = {"prior_bits": round(scorer.prior_bits, 2), "total_bits": round(total, 2)}
        for name, level, weight in evidence:
            detail[name] = level
            detail[f"{name}_bits"] = round(weight, 2)
        pairs.append(CandidatePair(left, right, score, detail))

    pairs.sort(key=lambda p: (-p.score, p.left_id, p.right_id))
    return DedupResult(pairs=pairs, compared_pairs=len(candidates), skipped_blocks=skipped_blocks)


def evaluate(
    pairs: Iterable[CandidatePair], truth: Iterable[tuple[str, str]], threshold: float
) -> tuple[float, float, float]:
    """Precision, recall and F1 of the pairs scoring >= ``threshold`` against ``truth``.

    Pairs are unordered. Precision is 0.0 when nothing is predicted (nothing was found, so
    nothing earns credit); recall is 1.0 when there is nothing to find.
    """
    predicted = {tuple(sorted((p.left_id, p.right_id))) for p in pairs if p.score >= threshold}
    actual = {tuple(sorted(t)) for t in truth}
    hits = len(predicted & actual)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(actual) if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# --- synthetic data --------------------------------------------------------------------------

_FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Margaret "
    "Anthony Betty Mark Sandra Donald Ashley Steven Dorothy Paul Kimberly Andrew Emily Joshua Donna "
    "Kenneth Michelle Kevin Carol Brian Amanda George Melissa Edward Deborah Ronald Stephanie Timothy "
    "Rebecca Jason Laura Jeffrey Sharon Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Shirley Eric "
    "Angela Jonathan Helen Stephen Anna Larry Brenda Justin Pamela Scott Nicole Brandon Samantha "
    "Benjamin Katherine Samuel Emma Gregory Ruth Alexander Christine Patrick Catherine Frank Debra "
    "Raymond Rachel Jack Carolyn Dennis Janet Jerry Virginia Tyler Maria Aaron Heather José Diane "
    "Henry Julie Adam Joyce Douglas Victoria Nathan Olivia Peter Kelly Zachary Christina Kyle Lauren "
    "Noah Joan Ethan Evelyn Jeremy Judith Walter Megan Christian Cheryl Keith Andrea Roger Hannah "
    "Terry Martha Austin Jacqueline Sean Frances Gerald Gloria Carl Ann Harold Teresa Dylan Kathryn "
    "Arthur Sara Lawrence Janice Jordan Jean Jesse Alice Bryan Madison Gabriel Julia Joe Judy Logan "
    "Grace Alan Denise Juan Amber Albert Marilyn Elijah Danielle Wayne Theresa Randy Sophia Mason "
    "Marie Vincent Diana Liam Roy Natalie Isabella Caleb Charlotte Bradley Rose Russell Lucas Zoë "
    "Søren François Siobhán Aoife Mohammed Fatima Priya Wei Björn Chloé Renée Łukasz Zofia Aisha"
).split()

_LAST_NAMES = (
    "Smith Johnson Williams Brown Jones García Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers "
    "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson "
    "Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman "
    "Butler Henderson Barnes Fisher Vasquez Simmons Romero Patterson Hamilton Graham Reynolds "
    "Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens "
    "Murray Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells "
    "Vargas Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez "
    "Silva Shaw Snyder Mason Dixon Muñoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Stone "
    "Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver "
    "Ryan Gardner Payne Grant Dunn Spencer Hawkins Arnold Pierce Hansen Peters Santos Hart Knight "
    "Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Ray Berry Perkins Hoffman "
    "Johnston Matthews Peña Richards Willis Carpenter Sandoval O'Brien O'Connor Müller Nowak "
    "Kowalski Dubois MacLeod Fitzgerald Søndergaard Van_der_Berg Ó_Súilleabháin Smith-Jones"
).replace("_", " ").split()

_STREETS = (
    "High,Church,Station,Victoria,Park,Green,Manor,Mill,Queen,King,New,Kings,Grange,Chestnut,Oak,"
    "Maple,Elm,Cedar,Willow,Meadow,Springfield,Windsor,York,Albert,Alexandra,Richmond,George,North,"
    "South,West,London,Bridge,Castle,Chapel,School,Orchard,Highfield,Broadway,Mount Pleasant,"
    "Hillside,Riverside,Lakeview,Sunset,Washington,Lincoln,Jefferson,Madison,Franklin,Pine,Birch,Ash,"
    "Poplar,Sycamore,Holly,Beech,Rosewood,Garden,Market,Abbey,Priory"
).split(",")
# (full form, abbreviation): duplicates often write the other one.
_STREET_TYPES = (
    ("Street", "St"), ("Road", "Rd"), ("Avenue", "Ave"), ("Lane", "Ln"), ("Drive", "Dr"), ("Close", "Cl"),
    ("Court", "Ct"), ("Place", "Pl"), ("Crescent", "Cres"), ("Gardens", "Gdns"), ("Terrace", "Ter"), ("Way", "Way"),
)
_EMAIL_DOMAINS = (
    ("gmail.com", 40), ("yahoo.com", 10), ("hotmail.com", 10), ("outlook.com", 10), ("icloud.com", 8),
    ("btinternet.com", 6), ("aol.com", 4), ("proton.me", 4), ("live.co.uk", 4), ("mail.com", 4),
)
_WORK_DOMAINS = ("acme.com", "globex.co.uk", "initech.com", "umbrella.org", "hooli.io", "example.org")
_NICKNAME_OF: Mapping[str, str] = {g[0]: g[1] for g in _NICKNAME_GROUPS}
_GB = IdentitySettings(default_region="GB")
_EARLIEST_BIRTHDATE = date(1940, 1, 1)
_LATEST_BIRTHDATE = date(2007, 12, 31)


def _zipf_weights(n: int) -> list[float]:
    # Name frequencies are skewed: the most common name here is ~3% of people, like "Smith".
    return [1.0 / (rank + 10) for rank in range(n)]


@dataclass
class _Person:
    """Mutable working copy used while generating (PersonRecord is frozen)."""

    first: str | None
    last: str | None
    email: str | None
    phone: str | None
    postcode: str | None
    address: str | None
    birthdate: date | None


class _Generator:
    """State of one reproducible synthetic run (everything drawn from one Random)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.rng = rng
        self.first_w = _zipf_weights(len(_FIRST_NAMES))
        self.last_w = _zipf_weights(len(_LAST_NAMES))
        self.domains = [d for d, _ in _EMAIL_DOMAINS]
        self.domain_w = [w for _, w in _EMAIL_DOMAINS]
        # ~5 customers per postcode; each postcode is one street (as in the UK).
        self.postcodes: list[tuple[str, str, tuple[str, str]]] = []
        seen: set[str] = set()
        while len(self.postcodes) < max(20, n // 5):
            pc = self._postcode()
            if pc not in seen:
                seen.add(pc)
                self.postcodes.append((pc, rng.choice(_STREETS), rng.choice(_STREET_TYPES)))
        self.used_emails: set[str] = set()  # normalised; no two people share an identifier
        self.used_phones: set[str] = set()

    # -- building blocks --

    def _postcode(self) -> str:
        r, up = self.rng, string.ascii_uppercase
        outward = "".join(r.choice(up) for _ in range(r.choice((1, 2)))) + str(r.randint(1, 29))
        return f"{outward} {r.randint(0, 9)}{r.choice(up)}{r.choice(up)}"

    def _address(self, street: str, kind: tuple[str, str]) -> str:
        address = f"{self.rng.randint(1, 250)} {street} {kind[0]}"
        if self.rng.random() < 0.08:
            address = f"Flat {self.rng.randint(1, 12)}, {address}"
        return address

    def _new_email(self, first: str, last: str, domain: str | None = None) -> str | None:
        f = normalize_name(first).replace(" ", "") or "x"
        l = normalize_name(last).replace(" ", "") or "y"
        r = self.rng
        nn = str(r.randint(1, 99))
        for _ in range(20):
            local = r.choice(
                (f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}.{l}{nn}", f"{f}{nn}", f"{l}.{f}", f"{f}_{l}", f"{f[0]}.{l}{nn}")
            )
            email = f"{local}@{domain or r.choices(self.domains, self.domain_w)[0]}"
            norm = _norm("email", email)
            if norm and norm not in self.used_emails:
                self.used_emails.add(norm)
                return email
            nn = str(r.randint(1, 9999))
        return None

    def _new_phone(self) -> str:
        while True:  # UK mobile numbers; a handful of ranges are unassigned, hence the loop
            national = "07" + self.rng.choice("45789") + "".join(self.rng.choice(string.digits) for _ in range(8))
            norm = _norm("phone", national)
            if norm and norm not in self.used_phones:
                self.used_phones.add(norm)
                return self._format_phone(national)

    def _format_phone(self, national: str) -> str:
        d = national  # "07911123456"
        return self.rng.choice(
            (f"{d[:5]} {d[5:]}", f"+44 {d[1:5]} {d[5:]}", f"+44{d[1:]}", f"{d[:5]}-{d[5:8]}-{d[8:]}", f"({d[:5]}) {d[5:]}", f"0044 {d[1:5]} {d[5:]}", d)
        )

    def _birthdate(self) -> date:
        return _EARLIEST_BIRTHDATE + timedelta(days=self.rng.randint(0, (_LATEST_BIRTHDATE - _EARLIEST_BIRTHDATE).days))

    def _typo(self, s: str) -> str:
        """One insert, delete, transpose or substitute, keeping the string non-empty."""
        r = self.rng
        if len(s) < 2:
            return s
        i = r.randrange(len(s))
        op = r.choice(("insert", "delete", "transpose", "substitute"))
        ch = r.choice(string.ascii_lowercase)
        if op == "insert":
            return s[:i] + ch + s[i:]
        if op == "delete" and len(s) > 2:
            return s[:i] + s[i + 1 :]
        if op == "transpose" and i < len(s) - 1 and s[i] != s[i + 1]:
            return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
        return s[:i] + (ch if ch != s[i].lower() else "e") + s[i + 1 :]

    # -- people --

    def person(self, household: _Person | None = None) -> _Person:
        r = self.rng
        first = r.choices(_FIRST_NAMES, self.first_w)[0]
        if household is not None:  # partner, child or flatmate: same address, new person
            last = household.last if r.random() < 0.85 else r.choices(_LAST_NAMES, self.last_w)[0]
            postcode, address = household.postcode, household.address
            birthdate = None
            if household.birthdate is not None:
                years = r.choice((r.randint(-6, 6), r.randint(20, 35), -r.randint(20, 35)))  # partner, child, parent
                birthdate = household.birthdate + timedelta(days=years * 365 + r.randint(-180, 180))
                if birthdate > _LATEST_BIRTHDATE:  # nobody in the file is born in the future
                    birthdate = household.birthdate - timedelta(days=abs(years) * 365 + r.randint(0, 180))
            if r.random() < 0.15:
                birthdate = None
        else:
            last = r.choices(_LAST_NAMES, self.last_w)[0]
            pc, street, kind = r.choice(self.postcodes)
            postcode, address = pc, self._address(street, kind)
            birthdate = self._birthdate() if r.random() < 0.85 else None
        if r.random() < 0.05:
            first, last = first.upper(), last.upper()
        return _Person(
            first=first,
            last=last,
            email=self._new_email(first, last) if r.random() < 0.85 else None,
            phone=self._new_phone() if r.random() < 0.70 else None,
            postcode=postcode if r.random() < 0.95 else None,
            address=address if r.random() < 0.90 else None,
            birthdate=birthdate,
        )

    def duplicate(self, p: _Person, cluster_emails: set[str], cluster_phones: set[str]) -> _Person:
        """A corrupted copy of ``p`` sharing no normalised e-mail or phone with its cluster."""
        r = self.rng
        d = replace(p)
        first, last = d.first or "", d.last or ""
        if first and r.random() < 0.12:  # nickname or truncation: "William" -> "Bill", "Christopher" -> "Chris"
            key = normalize_name(first)
            if key in _NICKNAME_OF and r.random() < 0.5:
                first = _NICKNAME_OF[key].title()
            elif len(first) >= 6:
                first = first[: r.randint(3, 5)]
        if first and r.random() < 0.03:
            first = first[0]
        if first and r.random() < 0.20:
            first = self._typo(first)
        if last and r.random() < 0.20:
            last = self._typo(last)
        if r.random() < 0.07:
            first, last = last, first
        style = r.random()
        if style < 0.15:
            first, last = first.upper(), last.upper()
        elif style < 0.30:
            first, last = first.lower(), last.lower()
        d.first, d.last = first or None, last or None

        d.email = self._duplicate_email(p, cluster_emails)
        d.phone = self._duplicate_phone(p, cluster_phones)

        if d.birthdate is not None:
            roll = r.random()
            if roll < 0.20:
                d.birthdate = None
            elif roll < 0.24 and d.birthdate.day <= 12 and d.birthdate.day != d.birthdate.month:
                d.birthdate = d.birthdate.replace(month=d.birthdate.day, day=d.birthdate.month)
            elif roll < 0.27:  # one digit of the day mistyped
                d.birthdate = d.birthdate + timedelta(days=r.choice((-1, 1, 10, -10)))

        if r.random() < 0.10:  # moved house
            pc, street, kind = r.choice(self.postcodes)
            d.postcode, d.address = pc, self._address(street, kind)
        if d.postcode and r.random() < 0.4:
            d.postcode = r.choice((d.postcode.lower(), d.postcode.replace(" ", "")))
        if d.address:
            if r.random() < 0.4:
                for full, short in _STREET_TYPES:
                    if d.address.endswith(" " + full):
                        d.address = d.address[: -len(full)] + short + (r.choice(("", ".")))
                        break
                    if d.address.endswith(" " + short):
                        d.address = d.address[: -len(short)] + full
                        break
            if r.random() < 0.08:
                words = d.address.split(" ")
                i = r.randrange(len(words))
                if not words[i].isdigit():
                    words[i] = self._typo(words[i])
                d.address = " ".join(words)
        if r.random() < 0.12:
            d.address = None
        if r.random() < 0.10:
            d.postcode = None
        return d

    def _duplicate_email(self, p: _Person, cluster: set[str]) -> str | None:
        r = self.rng
        roll = r.random()
        if roll < 0.30 or not (p.first and p.last):
            return None
        if not p.email or roll >= 0.75:
            if roll >= 0.90:
                return None
            email = self._new_email(p.first, p.last, domain=r.choice(_WORK_DOMAINS))  # unique, registered
            if email:
                cluster.add(_norm("email", email) or "")
            return email
        local, domain = p.email.split("@")
        if roll < 0.55:  # same mailbox family: a dot moved, a +tag
            if "." in local and r.random() < 0.6:
                local = local.replace(".", "", 1)
            elif r.random() < 0.5 and len(local) > 3 and "." not in local:
                i = r.randint(1, len(local) - 1)
                local = local[:i] + "." + local[i:]
            else:
                local = f"{local}+{r.choice(('shop', 'news', 'promo'))}"
        else:  # same local part at another provider
            domain = r.choice([x for x in self.domains if x != domain])
        email = f"{local}@{domain}"
        if r.random() < 0.4:  # case alone never makes a new identifier, but it comes along
            email = email.capitalize() if r.random() < 0.5 else email.upper()
        norm = _norm("email", email)
        if norm is None or norm in cluster or norm in self.used_emails:
            return None
        self.used_emails.add(norm)
        cluster.add(norm)
        return email

    def _duplicate_phone(self, p: _Person, cluster: set[str]) -> str | None:
        r = self.rng
        roll = r.random()
        if roll < 0.35:
            return None
        if p.phone and roll < 0.60:  # mistyped and formatted differently
            digits = "0" + "".join(ch for ch in p.phone if ch.isdigit())[-10:]
            for _ in range(10):
                i = r.randint(3, len(digits) - 2)
                if r.random() < 0.5:
                    typo = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
                else:
                    typo = digits[:i] + r.choice(string.digits) + digits[i + 1 :]
                norm = _norm("phone", typo)
                if norm and norm not in cluster and norm not in self.used_phones:
                    self.used_phones.add(norm)
                    cluster.add(norm)
                    return self._format_phone(typo)
            return None
        phone = self._new_phone()  # a new number (already registered as used)
        cluster.add(_norm("phone", phone) or "")
        return phone


def _norm(type: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        identifier = normalize_identifier(type, raw, _GB)
    except InvalidIdentifier:
        return None
    return identifier.value if identifier else None


def generate_synthetic_people(
    n: int, dup_rate: float, seed: int
) -> tuple[list[PersonRecord], set[tuple[str, str]]]:
    """``n`` synthetic people of whom about ``dup_rate`` are corrupted copies of others.

    Reproducible for a given seed (one ``random.Random(seed)``, built-in word lists). Copies
    get typos, swapped names, nicknames, missing fields, postcode/address variants, moves,
    and e-mails/phones that never normalise to one their cluster already uses, so exact
    identifier linking cannot join them. 20% of people share an address with a relative (hard
    negatives). Returns the records (ids in random order) and the true duplicate pairs
    ``(a, b)`` with ``a < b``, including copy-copy pairs of the same person.
    """
    if n < 1 or not 0.0 <= dup_rate < 1.0:
        raise ValueError("need n >= 1 and 0 <= dup_rate < 1")
    rng = random.Random(seed)
    gen = _Generator(n, rng)
    n_dup = round(n * dup_rate)
    people: list[_Person] = []
    for _ in range(n - n_dup):
        household = rng.choice(people) if people and rng.random() < 0.20 else None
        people.append(gen.person(household))

    entity = list(range(len(people)))  # entity id of every generated record
    emails = [{_norm("email", p.email)} - {None} for p in people]
    phones = [{_norm("phone", p.phone)} - {None} for p in people]
    records = list(people)
    for _ in range(n_dup):
        k = rng.randrange(len(people))
        records.append(gen.duplicate(people[k], emails[k], phones[k]))  # type: ignore[arg-type]
        entity.append(k)

    order = list(range(len(records)))
    rng.shuffle(order)
    width = len(str(n))
    out: list[PersonRecord] = []
    members: dict[int, list[str]] = defaultdict(list)
    for new_index, old_index in enumerate(order):
        p = records[old_index]
        rid = f"p{new_index:0{width}d}"
        out.append(PersonRecord(rid, p.first, p.last, p.email, p.phone, p.postcode, p.address, p.birthdate))
        members[entity[old_index]].append(rid)
    truth = {tuple(sorted(pair)) for ids in members.values() for pair in itertools.combinations(ids, 2)}
    return out, truth  # type: ignore[return-value]


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Benchmark on synthetic people: ``python -m app.identity.dedup --n 20000``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="records to generate")
    parser.add_argument("--dup-rate", type=float, default=0.10, help="share of records that are copies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-block-size", type=int, default=500)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    records, truth = generate_synthetic_people(args.n, args.dup_rate, args.seed)
    t1 = time.perf_counter()
    result = find_candidates(records, min_score=0.5, max_block_size=args.max_block_size)
    t2 = time.perf_counter()
    n = len(records)
    print(f"records={n} true_pairs={len(truth)} generate={t1 - t0:.2f}s match={t2 - t1:.2f}s")
    print(
        f"compared_pairs={result.compared_pairs} ({result.compared_pairs / max(n * (n - 1) // 2, 1):.4%} of all pairs) "
        f"skipped_blocks={result.skipped_blocks} candidates>=0.5={len(result.pairs)}"
    )
    print("threshold  precision  recall     f1")
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        p, r, f = evaluate(result.pairs, truth, threshold)
        mark = "  <- default" if threshold == DEFAULT_THRESHOLD else ""
        print(f"{threshold:9.1f}  {p:9.4f}  {r:6.4f}  {f:6.4f}{mark}")


if __name__ == "__main__":
    main()
