"""Fuzzy de-duplication: likely duplicate people that share *no* identifier.

Identity resolution links records on exact normalised identifiers (see
:mod:`app.identity.normalize`). What it cannot see are the same person typed in twice with a
different (or no) e-mail and phone: "Jon Smith, 12 High St" from the shop and "John
Smith, 12 High Street" from the newsletter. This module proposes such pairs for review or
automatic merging. It is pure code (no database, no web framework); ``docs/DEDUP.md``
explains the method and the measured quality.

Pipeline
--------
1. **Features**: each record is normalised once (names, postcode, address, town, region,
   national id, e-mail local part, phone digits, phonetic keys) and value frequencies are
   counted.
2. **Blocking**: a record is only compared with records sharing at least one blocking key
   (postcode + initial, phonetic surname + birth year, birthdate, phonetic full name, house
   number + street, national id, e-mail local part, phone tail), so the cost grows with the
   block sizes rather than n^2. Blocks of more than 20 records are searched by sorted
   neighbourhood rather than expanded (each record meets its nearest by name and by
   birthdate), so the pairs grow about linearly with n. Blocks larger than
   ``max_block_size`` are skipped and counted: a key shared by thousands of records
   ("1970-01-01", a shop's phone number) carries no identifying information.
3. **Comparison**: every field of a compared pair falls into a level ("exact", "typo",
   "different", ...; a field missing on either side is not compared). Every comparison is
   symmetric: the score of (a, b) is the score of (b, a).
4. **Learning**: a Fellegi-Sunter model, m = P(level | same person) and u = P(level |
   different people) per field, is fitted to the records themselves by expectation
   maximisation over the compared pairs (no labels needed). u comes from random pairs; a
   level adjusted by value frequencies (exact agreements, same address, postcode or street
   line, same e-mail local key) takes its u from the value counts alone, so that its
   evidence follows the file's size (see _random_pair_levels). The hand-set values below
   act as a weak prior so a small file still gets sensible weights, and reviewers'
   decisions on earlier candidates (merged: one person, rejected: two) enter as labelled
   pairs. The prior is the learned share of *all* n(n-1)/2 pairs that are one person.
5. **Scoring**: each level adds ``log2(m / u)`` bits, exact agreements are adjusted by the
   value's frequency (sharing "Smith" is weaker evidence than sharing "Zebulon"; in all,
   ``log2(m / share of the value)``), and the bits plus the prior log-odds give the
   posterior probability that the pair is one person: the score.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA, JaroWinkler

from app.identity.normalize import normalize_address, normalize_name, normalize_postcode

__all__ = [
    "DEFAULT_EXPECTED_DUPLICATE_RATE",
    "DEFAULT_THRESHOLD",
    "CandidatePair",
    "DedupResult",
    "Decision",
    "PersonRecord",
    "evaluate",
    "find_candidates",
    "soundex",
]

#: Score from which a pair counts as "the same person" (the operating point in DEDUP.md).
DEFAULT_THRESHOLD = 0.8

#: Assumed share of records that are an extra copy of another person: the starting point
#: (and weak prior) of the learned match rate.
DEFAULT_EXPECTED_DUPLICATE_RATE = 0.05


# --- public data types ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person as a source system knows them; every field but ``id`` may be missing.

    ``address`` is the street line ("12 High Street"), ``address2`` a second line ("Flat 3",
    "Rosedale Farm"), ``city`` the town, ``state`` the state/region/county, ``national_id``
    a national id or a customer number (compared fuzzily: one mistyped digit is a typo).
    """

    id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    postcode: str | None = None
    address: str | None = None
    birthdate: date | None = None
    city: str | None = None
    state: str | None = None
    address2: str | None = None
    national_id: str | None = None


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
class Decision:
    """A reviewer's verdict on an earlier candidate: its evidence and whether it was one person."""

    evidence: Mapping[str, Any]
    same_person: bool


@dataclass(frozen=True, slots=True)
class DedupResult:
    """Candidate pairs (best first), the work done to find them and the fitted model."""

    pairs: list[CandidatePair]
    compared_pairs: int
    skipped_blocks: int
    model: dict[str, Any] = field(default_factory=dict, compare=False)


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


# --- the model: comparisons, their levels and the prior m/u ----------------------------------
#
# A comparison's levels are grouped: the m (and u) of one group sum to 1. Location has a
# group per data situation (postcode and address on both records, postcode only, address
# only); the names have a group for pairs at the same address (a household), where
# relatives share a surname and rarely a first name, and one for everything else. The
# m0/u0 below are the starting point and a prior (_PRIOR_STRENGTH pseudo-pairs) of the
# learned model: m0 says how often a given corruption happens to one person, u0 how often
# two strangers agree by chance. A file of any size moves them towards what its own pairs
# show; a handful of records keeps them.


@dataclass(frozen=True, slots=True)
class _Level:
    name: str  # unique within the comparison; "exact|household" for the household group
    group: int
    m0: float
    u0: float
    tf: str | None = None  # term-frequency table adjusting this (exact) level


@dataclass(frozen=True, slots=True)
class _Comparison:
    name: str
    levels: tuple[_Level, ...]

    def index(self, level: str) -> int:
        return next(i for i, lv in enumerate(self.levels) if lv.name == level)


def _levels(group: int, rows: Iterable[tuple[str, float, float, str | None]], suffix: str = "") -> list[_Level]:
    return [_Level(name + suffix, group, m, u, tf) for name, m, u, tf in rows]


_FIRST_ROWS = (
    ("exact", 0.80, 0.01, "first_name"),  # also "Mary Ann" vs "Mary": a dropped middle name
    ("nickname", 0.07, 0.004, None),  # "Chris"/"Christopher", "Bill"/"William"
    ("typo", 0.08, 0.004, None),  # one edit or Jaro-Winkler >= 0.92
    ("initial", 0.02, 0.05, None),  # "J" vs "John": consistent, barely informative
    ("similar", 0.015, 0.04, None),
    ("different", 0.015, 0.90, None),
)
# Within one household relatives almost never share (or nearly share) a first name.
_FIRST_HOUSEHOLD_U = {"exact": 0.005, "nickname": 0.003, "typo": 0.003, "initial": 0.05, "similar": 0.02, "different": 0.919}
_LAST_ROWS = (
    ("exact", 0.86, 0.005, "last_name"),
    ("typo", 0.10, 0.003, None),
    ("similar", 0.02, 0.02, None),  # Jaro-Winkler >= 0.80, or "Smith" / "Smith-Jones"
    ("different", 0.02, 0.975, None),
)
# ...and share their surname: without this, "same address + same surname" would count one
# fact (same household) twice and spouses would be proposed as duplicates.
_LAST_HOUSEHOLD_U = {"exact": 0.60, "typo": 0.01, "similar": 0.04, "different": 0.35}

LOCATION, FIRST, LAST, BIRTHDATE, EMAIL, PHONE, CITY, STATE, ADDRESS2, NATIONAL_ID = range(10)
_COMPARISONS: tuple[_Comparison, ...] = (
    # Postcode and address are one comparison: they are strongly dependent (a shared address
    # implies a shared postcode), so scoring them apart would count one fact twice.
    _Comparison("location", tuple(
        _levels(0, (("same_address", 0.70, 1e-4, "address"), ("same_postcode", 0.06, 1e-3, "postcode"),
                    ("same_address_other_postcode", 0.06, 1e-3, "street"), ("different", 0.18, 0.998, None)))
        + _levels(1, (("postcode_match", 0.85, 1e-3, "postcode"), ("postcode_different", 0.15, 0.999, None)))
        + _levels(2, (("address_match", 0.80, 1e-3, "street"), ("address_different", 0.20, 0.999, None)))
    )),
    _Comparison("first_name", tuple(
        _levels(0, _FIRST_ROWS)
        + _levels(1, ((n, m, _FIRST_HOUSEHOLD_U[n], None) for n, m, _, _ in _FIRST_ROWS), "|household")
    )),
    _Comparison("last_name", tuple(
        _levels(0, _LAST_ROWS)
        + _levels(1, ((n, m, _LAST_HOUSEHOLD_U[n], None) for n, m, _, _ in _LAST_ROWS), "|household")
    )),
    _Comparison("birthdate", tuple(_levels(0, (
        ("exact", 0.92, 1.0 / (365.25 * 70), "birthdate"),  # birthdays spread over ~70 years
        ("near", 0.05, 0.001, None),  # one digit off, or day and month swapped
        ("different", 0.03, 0.998, None),
    )))),
    # E-mail and phone: this module is for records identifier linking did NOT join, so
    # duplicates usually have different ones (m of "different" is high: weak evidence against).
    _Comparison("email", tuple(_levels(0, (
        ("exact", 0.03, 1e-6, "email"),
        ("local_part", 0.30, 1e-4, "email_key"),  # john.smith+shop@gmail.com vs JohnSmith@yahoo.com
        ("similar", 0.07, 0.001, None),
        ("different", 0.60, 0.998, None),
    )))),
    _Comparison("phone", tuple(_levels(0, (
        ("exact", 0.03, 1e-6, "phone"), ("near", 0.17, 1e-4, None), ("different", 0.80, 0.9999, None),
    )))),
    _Comparison("city", tuple(_levels(0, (
        ("exact", 0.90, 0.01, "city"), ("typo", 0.05, 0.002, None), ("different", 0.05, 0.988, None),
    )))),
    _Comparison("state", tuple(_levels(0, (("exact", 0.95, 0.2, "state"), ("different", 0.05, 0.8, None))))),
    _Comparison("address2", tuple(_levels(0, (
        ("exact", 0.75, 0.001, "address2"), ("typo", 0.10, 0.001, None), ("different", 0.15, 0.998, None),
    )))),
    _Comparison("national_id", tuple(_levels(0, (
        ("exact", 0.90, 1e-6, "national_id"), ("typo", 0.07, 1e-5, None), ("different", 0.03, 0.99999, None),
    )))),
)
_HOUSEHOLD_LOCATIONS = frozenset({_COMPARISONS[LOCATION].index("same_address"), _COMPARISONS[LOCATION].index("address_match")})
# The same postcode where only postcodes can be compared (a street line missing on one side):
# the two may be one household, see _Comparer._name_tf.
_POSTCODE_ONLY_MATCH = _COMPARISONS[LOCATION].index("postcode_match")
_FIRST_GROUP_SIZE = len(_FIRST_ROWS)
_LAST_GROUP_SIZE = len(_LAST_ROWS)

# Pseudo-pairs behind the prior m0/u0: small against a file's thousands of compared pairs,
# decisive for a handful of records. 200 was chosen on the synthetic people (F1 at 0.8:
# 0.890 with 20, 0.949 with 200, 0.949 with 500 on 1,000 records; 0.927 / 0.945 / 0.940 on
# 5,000); FEBRL 1-3 score the same with any of them (docs/DEDUP.md).
_PRIOR_STRENGTH = 200.0
_RANDOM_PAIRS = 5_000
_RANDOM_PAIR_STRENGTH = 1_000.0
_EM_MAX_ITERATIONS = 200
_EM_TOLERANCE = 1e-6
_EM_MAX_PAIRS = 2_000_000  # beyond this EM fits a random sample of the compared pairs
_COMPARE_CHUNK = 100_000  # pairs compared per slice (find_candidates)
_PAIR_BATCH = 4_000_000  # pairs expanded per numpy batch (_blocked_pairs)
# Blocks up to this size are expanded into all their pairs; larger ones (up to max_block_size)
# are searched by sorted neighbourhood with this window (docs/DEDUP.md §2, measured on 1M).
_FULL_BLOCK_SIZE = 20
_WINDOW = 5
# u of an equal e-mail local part that is just a name of either record ("john.smith",
# "jsmith", give or take a number): namesakes pick the same few patterns, so the e-mail adds
# little to the name evidence. Anything else in the local part keeps the full weight.
_NAME_DERIVED_EMAIL_U = 0.2
# Term frequencies: the share of records holding a value, smoothed towards the level's u0
# with _TF_PSEUDO_COUNT pseudo-records (a small batch, where three of seven records sharing a
# birthday says nothing, falls back to u0). Not floored: a shared value is held by at least
# the two records, so an exact agreement weighs at most log2(m * n / 2) bits, which grows with
# the file as fast as the prior falls. (A fixed floor, 1e-5 for an address or a postcode, capped
# that evidence while the prior kept falling: at 1M records it cost a unique address ~3 bits.)
_TF_PSEUDO_COUNT = 1000.0
_TF_PSEUDO_PAIRS = 100_000.0
_HOUSEHOLD_PSEUDO_PAIRS = 10.0
_TF_U0: Mapping[str, float] = {
    lv.tf: lv.u0 for c in _COMPARISONS for lv in reversed(c.levels) if lv.tf is not None  # the first level's
}
# Swapped first/last names: log2 P(swap | same person); the swapped reading must beat the
# straight one by this much before it is believed. Not learned: the name levels of the
# swapped reading carry the evidence.
_SWAP_BITS = math.log2(0.05)


def _prior_bits(comparison: int, level: int) -> float:
    lv = _COMPARISONS[comparison].levels[level]
    return math.log2(lv.m0 / lv.u0)


# --- features --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Features:
    """A record's comparison keys, computed once (comparison is the hot loop)."""

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
    city: str
    state: str
    address2: str
    national_id: str  # letters and digits only, upper case


def _alnum_upper(s: str | None) -> str:
    return "".join(ch for ch in (s or "") if ch.isalnum()).upper()


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
        city=normalize_name(r.city),
        state=normalize_name(r.state).replace(" ", ""),
        address2=normalize_address(r.address2),
        national_id=_alnum_upper(r.national_id),
    )


def _street(f: _Features) -> str:
    """The normalised street line with its house numbers, without the postcode."""
    return f.address_key[len(f.postcode) + 1 :]


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
    if f.national_id:
        yield ("national_id", f.national_id)
    if f.email_key:
        yield ("email_key", f.email_key)
    if f.phone:
        yield ("phone_tail", f.phone[-7:])


# --- field comparisons (each symmetric in its two arguments) -----------------------------------


@functools.lru_cache(maxsize=1 << 20)  # names repeat: most pairs compare names seen before
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


@functools.lru_cache(maxsize=1 << 20)  # names repeat: most pairs compare names seen before
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


def _typo_level(a: str, b: str, min_len: int = 4) -> str:
    if a == b:
        return "exact"
    if (min(len(a), len(b)) >= min_len and OSA.distance(a, b) <= 1) or JaroWinkler.similarity(a, b) >= 0.92:
        return "typo"
    return "different"


def _id_level(a: str, b: str) -> str:
    if a == b:
        return "exact"
    # One digit wrong, dropped, added or two swapped: a typo of a number typed by hand.
    if min(len(a), len(b)) >= 4 and OSA.distance(a, b) <= 1:
        return "typo"
    return "different"


_MISSING = -1


class _Comparer:
    """Turns a pair of records into one level per comparison (or _MISSING) and the
    term-frequency adjustment of its exact agreements, from counts over the records."""

    def __init__(self, features: Sequence[_Features]) -> None:
        n = len(features)
        self.n = max(n, 1)
        self.counts: dict[str, Counter[Any]] = {
            "first_name": Counter(f.first_tok for f in features if f.first_tok),
            "last_name": Counter(f.last for f in features if f.last),
            "birthdate": Counter(f.birthdate for f in features if f.birthdate),
            "email": Counter(f.email for f in features if f.email),
            "email_key": Counter(f.email_key for f in features if f.email_key),
            "phone": Counter(f.phone for f in features if f.phone),
            "postcode": Counter(f.postcode for f in features if f.postcode),
            "address": Counter(f.address_key for f in features if f.address_key),
            "street": Counter(_street(f) for f in features if f.address_key),
            "city": Counter(f.city for f in features if f.city),
            "state": Counter(f.state for f in features if f.state),
            "address2": Counter(f.address2 for f in features if f.address2),
            "national_id": Counter(f.national_id for f in features if f.national_id),
        }
        # u of an exact agreement between two random records holding the field: sum of the
        # squared value shares, smoothed towards the level's u0 for a small file.
        self.u_exact: dict[str, float] = {}
        for kind, counter in self.counts.items():
            holders = sum(counter.values())
            same = sum(c * (c - 1) for c in counter.values())
            u0 = _TF_U0[kind]
            self.u_exact[kind] = (same + _TF_PSEUDO_PAIRS * u0) / (holders * (holders - 1) + _TF_PSEUDO_PAIRS)
        self.u_exact["email_key"] = max(self.u_exact["email_key"], 1e-9)
        # Of two records (with a postcode and a street line) sharing a postcode, the chance that
        # they share the address too: how likely a shared postcode with a street line missing
        # is one household. 0.1 (10 pseudo-pairs) until the records say otherwise.
        both = [f for f in features if f.postcode and f.address_key]
        same_address = sum(c * (c - 1) for c in Counter(f.address_key for f in both).values())
        same_postcode = sum(c * (c - 1) for c in Counter(f.postcode for f in both).values())
        self.household_given_postcode = (same_address + _HOUSEHOLD_PSEUDO_PAIRS * 0.1) / (same_postcode + _HOUSEHOLD_PSEUDO_PAIRS)
        self._name_cache: dict[tuple[Any, ...], tuple[tuple[tuple[int, int, float], ...], bool]] = {}

    def tf_bits(self, kind: str, count: int) -> float:
        """Adjustment of an exact agreement on a value held by ``count`` records: positive
        for a value rarer than the typical agreement, negative for a commoner one."""
        return math.log2(self.u_exact[kind] / self.share(kind, count))

    def share(self, kind: str, count: int) -> float:
        """The share of records holding a value held by ``count`` records (smoothed)."""
        return (count + _TF_PSEUDO_COUNT * _TF_U0[kind]) / (self.n + _TF_PSEUDO_COUNT)

    def compare(self, a: _Features, b: _Features) -> tuple[list[int], list[float], bool]:
        # The hot loop (every blocked pair): level indices come from small dicts rather than
        # _Comparison.index, and the name comparison, which depends on the two records' names
        # and the household flag only, is memoised (names repeat a lot, see _names).
        levels = [_MISSING] * _N_COMPARISONS
        tf = [0.0] * _N_COMPARISONS

        location = self._location(a, b, tf)
        levels[LOCATION] = location

        context = 1 if location in _HOUSEHOLD_LOCATIONS else 2 if location == _POSTCODE_ONLY_MATCH else 0
        swapped = self._names(a, b, context, levels, tf)

        if a.birthdate and b.birthdate:
            level = _birthdate_level(a, b)
            levels[BIRTHDATE] = _BIRTHDATE_INDEX[level]
            if level == "exact":
                tf[BIRTHDATE] = self.tf_bits("birthdate", self.counts["birthdate"][a.birthdate])

        if a.email and b.email:
            self._email(a, b, levels, tf)

        if a.phone and b.phone:
            if a.phone == b.phone:
                levels[PHONE] = 0
                tf[PHONE] = self.tf_bits("phone", self.counts["phone"][a.phone])
            elif len(a.phone) == len(b.phone) and OSA.distance(a.phone, b.phone) <= 1:
                levels[PHONE] = 1
            else:
                levels[PHONE] = 2

        if a.city and b.city:
            self._exact_or_near(CITY, "city", a.city, b.city, _CITY_INDEX, _typo_level, levels, tf)
        if a.address2 and b.address2:
            self._exact_or_near(ADDRESS2, "address2", a.address2, b.address2, _ADDRESS2_INDEX, _typo_level, levels, tf)
        if a.national_id and b.national_id:
            self._exact_or_near(NATIONAL_ID, "national_id", a.national_id, b.national_id, _NATIONAL_ID_INDEX, _id_level,
                                levels, tf)
        if a.state and b.state:
            levels[STATE] = 0 if a.state == b.state else 1
            if a.state == b.state:
                tf[STATE] = self.tf_bits("state", self.counts["state"][a.state])
        return levels, tf, swapped

    def _exact_or_near(
        self, comparison: int, kind: str, x: str, y: str, index: dict[str, int], level: Callable[[str, str], str],
        levels: list[int], tf: list[float],
    ) -> None:
        """A field present on both sides: exact (level 0, weighted by how common the value is)
        or the level `level` gives the pair."""
        if x == y:
            levels[comparison] = 0
            tf[comparison] = self.tf_bits(kind, self.counts[kind][x])
        else:
            levels[comparison] = index[level(x, y)]

    def _email(self, a: _Features, b: _Features, levels: list[int], tf: list[float]) -> None:
        if a.email == b.email:
            levels[EMAIL] = 0
            tf[EMAIL] = self.tf_bits("email", self.counts["email"][a.email])
        elif a.email_key and a.email_key == b.email_key:
            levels[EMAIL] = 1
            if a.email_key.rstrip("0123456789") in a.name_emails | b.name_emails:
                tf[EMAIL] = math.log2(self.u_exact["email_key"] / _NAME_DERIVED_EMAIL_U)
            else:
                tf[EMAIL] = self.tf_bits("email_key", self.counts["email_key"][a.email_key])
        elif (
            a.email_key
            and b.email_key
            and min(len(a.email_key), len(b.email_key)) >= 5
            and JaroWinkler.similarity(a.email_key, b.email_key) >= 0.92
        ):
            # Two mailboxes named after the same (agreeing) name, give or take a number
            # ("john.smith77" / "johnsmith12"): what namesakes have. No evidence either way.
            names = a.name_emails | b.name_emails
            if a.email_key.rstrip("0123456789") in names and b.email_key.rstrip("0123456789") in names:
                return
            levels[EMAIL] = 2
        else:
            levels[EMAIL] = 3

    def _location(self, a: _Features, b: _Features, tf: list[float]) -> int:
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
                # Frequency of the address; at least the two records being compared.
                count = max(self.counts["address"][a.address_key] if a.address_key == b.address_key else 0, 2)
                tf[LOCATION] = self.tf_bits("address", count)
                return 0
            if same_pc:
                tf[LOCATION] = self.tf_bits("postcode", self.counts["postcode"][a.postcode])
                return 1
            if same_addr:
                tf[LOCATION] = self._street_tf(a, b)
                return 2
            return 3
        if has_pc:
            if same_pc:
                tf[LOCATION] = self.tf_bits("postcode", self.counts["postcode"][a.postcode])
                return 4
            return 5
        if has_addr:
            if same_addr:
                tf[LOCATION] = self._street_tf(a, b)
                return 6
            return 7
        return _MISSING

    def _street_tf(self, a: _Features, b: _Features) -> float:
        """Frequency adjustment of the same street line without the same postcode ("12 high
        st" is shared by every town's High Street): at least the two records compared."""
        street = _street(a)
        return self.tf_bits("street", max(self.counts["street"][street] if street == _street(b) else 0, 2))

    def _names(self, a: _Features, b: _Features, context: int, levels: list[int], tf: list[float]) -> bool:
        """Set the first/last name levels; True when the swapped reading won. ``context`` is 1
        at one address (a household: the household levels), 2 at one postcode where only the
        postcodes could be compared (perhaps one household, see _name_tf), else 0.

        The outcome depends only on the two records' names and ``context``, and names
        repeat (Zipf-like in any real file), so it is memoised per comparer; the cache is
        emptied when it reaches _NAME_CACHE_SIZE entries, which bounds its memory."""
        key = (a.first, a.first_tok, a.last, b.first, b.first_tok, b.last, context)
        cached = self._name_cache.get(key)
        if cached is None:
            if len(self._name_cache) >= _NAME_CACHE_SIZE:
                self._name_cache.clear()
            cached = self._name_cache[key] = self._compare_names(a, b, context)
        best, swapped = cached
        for c, lv, w in best:
            levels[c], tf[c] = lv, w
        return swapped

    def _compare_names(self, a: _Features, b: _Features, context: int) -> tuple[tuple[tuple[int, int, float], ...], bool]:
        group = 1 if context == 1 else 0
        mixed = context == 2
        first = last = None
        if a.first_tok and b.first_tok:
            first = self._first_name(a.first, a.first_tok, b.first, b.first_tok, group, crossed=False, mixed=mixed)
        if a.last and b.last:
            last = self._last_name(a.last, b.last, group, crossed=False, mixed=mixed)
        straight = [x for x in (first, last) if x is not None]
        straight_bits = sum(_prior_bits(c, lv) for c, lv, _ in straight)
        best, swapped = straight, False
        if a.first_tok and a.last and b.first_tok and b.last and straight_bits <= 0:
            # Swapped reading: one record's first name against the other's surname field and
            # vice versa. Both role assignments are tried and the better kept (ties broken by
            # levels, then frequencies), so the result does not depend on which record comes first.
            readings = []
            for x, y in ((a, b), (b, a)):
                reading = [
                    self._first_name(x.first, x.first_tok, y.last, y.last, group, crossed=True, mixed=mixed),
                    self._last_name(x.last, y.first.replace(" ", ""), group, crossed=True, mixed=mixed),
                ]
                bits = sum(_prior_bits(c, lv) for c, lv, _ in reading)
                tf_bits = tuple(w for _, _, w in reading)
                readings.append((bits + sum(tf_bits), tuple(lv for _, lv, _ in reading), tf_bits, bits, reading))
            *_, bits, reading = max(readings, key=lambda r: r[:3])
            if bits + _SWAP_BITS > straight_bits:
                best, swapped = reading, True
        return tuple(best), swapped

    def _first_name(
        self, a_full: str, a_tok: str, b_full: str, b_tok: str, group: int, crossed: bool, mixed: bool
    ) -> tuple[int, int, float]:
        level = _FIRST_LEVEL_INDEX[_first_level(a_full, a_tok, b_full, b_tok)]
        w = 0.0
        if level == 0 and group == 0:
            c = self.counts
            count = max(c["first_name"][a_tok], c["last_name"][a_tok]) if crossed else c["first_name"][a_tok]
            w = self._name_tf("first_name", count, _FIRST_HOUSEHOLD_U["exact"] if mixed else None)
        return FIRST, level + group * _FIRST_GROUP_SIZE, w

    def _last_name(self, a: str, b: str, group: int, crossed: bool, mixed: bool) -> tuple[int, int, float]:
        level = _LAST_LEVEL_INDEX[_last_level(a, b)]
        w = 0.0
        if level == 0 and group == 0:
            c = self.counts
            count = max(c["last_name"][a], c["first_name"][a]) if crossed else c["last_name"][a]
            w = self._name_tf("last_name", count, _LAST_HOUSEHOLD_U["exact"] if mixed else None)
        return LAST, level + group * _LAST_GROUP_SIZE, w

    def _name_tf(self, kind: str, count: int, household_u: float | None) -> float:
        """Frequency adjustment of an exact name agreement. With ``household_u`` (one postcode,
        a street line missing) the pair is one household with probability h, where relatives
        share a surname (u = 0.6) far more often than the name's share says, so the chance that
        two people agree is h * household_u + (1 - h) * share rather than the share alone."""
        share = self.share(kind, count)
        if household_u is not None:
            h = self.household_given_postcode
            share = h * household_u + (1.0 - h) * share
        return math.log2(self.u_exact[kind] / share)


_FIRST_LEVEL_INDEX = {name: i for i, (name, *_) in enumerate(_FIRST_ROWS)}
_LAST_LEVEL_INDEX = {name: i for i, (name, *_) in enumerate(_LAST_ROWS)}
_N_COMPARISONS = len(_COMPARISONS)
_BIRTHDATE_INDEX, _CITY_INDEX, _ADDRESS2_INDEX, _NATIONAL_ID_INDEX = (
    {lv.name: j for j, lv in enumerate(_COMPARISONS[c].levels)} for c in (BIRTHDATE, CITY, ADDRESS2, NATIONAL_ID)
)
# Distinct name pairs remembered by one comparer (~200 bytes each): 2 million is ~0.4 GB at most.
_NAME_CACHE_SIZE = 2_000_000


# --- learning: expectation maximisation over the compared pairs --------------------------------


class _Model:
    """Learned m, u (log base 2, per comparison and level) and the match rate among compared pairs."""

    def __init__(self) -> None:
        self.log_m = [np.log2(self._normalise(c, np.array([lv.m0 for lv in c.levels]))) for c in _COMPARISONS]
        self.log_u = [np.log2(self._normalise(c, np.array([lv.u0 for lv in c.levels]))) for c in _COMPARISONS]
        self.match_rate = 0.1
        self.iterations = 0
        self.converged = False
        self.fitted_pairs = 0
        self.random_pairs = 0
        self.decisions = (0, 0)

    @staticmethod
    def _normalise(c: _Comparison, values: np.ndarray) -> np.ndarray:
        groups = np.array([lv.group for lv in c.levels])
        totals = np.bincount(groups, weights=values)
        return values / totals[groups]

    @property
    def prior_bits(self) -> float:
        return math.log2(self.match_rate / (1.0 - self.match_rate))

    def bits(self, comparison: int, level: int) -> float:
        return float(self.log_m[comparison][level] - self.log_u[comparison][level])

    def weight_table(self) -> np.ndarray:
        """(comparisons, max levels + 1) bits; the last column is 0 for a missing field."""
        width = max(len(c.levels) for c in _COMPARISONS) + 1
        table = np.zeros((len(_COMPARISONS), width))
        for i, c in enumerate(_COMPARISONS):
            table[i, : len(c.levels)] = self.log_m[i] - self.log_u[i]
        return table

    def fit(
        self,
        levels: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray,
        start: np.ndarray,
        u_random: list[np.ndarray],
        random_counts: list[float],
        prior_rate: float,
        all_pairs: float,
        compared_pairs: int,
        u_fixed: list[np.ndarray] | None = None,
    ) -> None:
        """EM over ``levels`` (compared pairs x comparisons, -1 missing) for m and the match
        rate; u is what random pairs show (``u_random``, blended with the hand-set u0), as
        strangers are what random pairs are; a level with a term-frequency table keeps the
        u of ``u_fixed`` (from the value counts, NaN for the other levels), which its
        frequency adjustment is relative to. ``labels`` is 1/0 for a reviewer's decision,
        NaN for a pair nobody looked at: a confirmed pair counts towards m as a certain
        match, a rejected one towards u (a stranger random pairs rarely show: same street,
        similar name). m is drawn towards the hand-set m0 by _PRIOR_STRENGTH pseudo-pairs;
        the match rate, over all ``all_pairs`` pairs of the file, starts at ``prior_rate``.
        ``offsets`` are each pair's fixed bits (term frequencies, swapped names); ``start``
        the first expectation, the hand-set model's scores, which puts EM in the basin of
        "same person" rather than of some other split of the compared pairs (same street,
        same household)."""
        k, n_comp = levels.shape
        self.fitted_pairs = int(np.isnan(labels).sum())
        labelled = ~np.isnan(labels)
        self.decisions = (int((labels == 1).sum()), int((labels == 0).sum()))
        m0 = [self._normalise(c, np.array([lv.m0 for lv in c.levels])) for c in _COMPARISONS]
        u0 = [self._normalise(c, np.array([lv.u0 for lv in c.levels])) for c in _COMPARISONS]
        present = levels >= 0
        # Pairs reviewers rejected are strangers too (hard ones): they count towards u like random pairs.
        rejected = labels == 0
        self.log_u = []
        for i, c in enumerate(_COMPARISONS):
            groups = np.array([lv.group for lv in c.levels])
            pseudo = _PRIOR_STRENGTH * u0[i] + u_random[i]  # pseudo-pairs per level
            mass = np.bincount(groups, weights=pseudo)[groups]
            shares = pseudo / mass
            if u_fixed is not None:
                # Levels with a frequency table: u is the counts' (not blended with u0, which
                # would pin it at the hand-set value in a large file); the others share the rest.
                fixed = ~np.isnan(u_fixed[i])
                for g in np.unique(groups[fixed]):
                    in_g, fix_g = groups == g, fixed & (groups == g)
                    free_g = in_g & ~fixed
                    shares[free_g] *= max(1.0 - u_fixed[i][fix_g].sum(), 0.0) / shares[free_g].sum()
                    shares[fix_g] = u_fixed[i][fix_g]
            rejected_counts = np.bincount(levels[rejected & present[:, i], i], minlength=len(c.levels))
            self.log_u.append(np.log2(self._normalise(c, shares * mass + rejected_counts)))
        self.match_rate = prior_rate
        width = max(len(c.levels) for c in _COMPARISONS) + 1
        idx = np.where(levels < 0, width - 1, levels).astype(np.intp)
        unlabelled = ~labelled
        scale = compared_pairs / max(int(unlabelled.sum()), 1)  # > 1 when EM fits a sample
        for iteration in range(1, _EM_MAX_ITERATIONS + 1):
            if iteration == 1:
                w = start.copy()
            else:
                table = self.weight_table()
                bits = self.prior_bits + offsets
                for i in range(n_comp):
                    bits += table[i, idx[:, i]]
                w = 1.0 / (1.0 + np.exp2(-np.clip(bits, -60.0, 60.0)))
            w[labelled] = labels[labelled]
            # The match rate over *all* pairs of the file: pairs blocking did not compare are
            # taken as different people (blocking misses about 1% of true pairs).
            rate = (w[unlabelled].sum() * scale + _PRIOR_STRENGTH * prior_rate) / (all_pairs + _PRIOR_STRENGTH)
            change = abs(rate - self.match_rate)
            self.match_rate = float(min(max(rate, 1e-9), 1 - 1e-9))
            for i, c in enumerate(_COMPARISONS):
                p = present[:, i]
                lv = levels[p, i]
                m_counts = np.bincount(lv, weights=w[p], minlength=len(c.levels)) + _PRIOR_STRENGTH * m0[i]
                new_m = np.log2(self._normalise(c, m_counts))
                change = max(change, float(np.abs(np.exp2(new_m) - np.exp2(self.log_m[i])).max()))
                self.log_m[i] = new_m
            self.iterations = iteration
            if change < _EM_TOLERANCE:
                self.converged = True
                break

    def describe(self) -> dict[str, Any]:
        """The fitted model as JSON: what a run learned, for docs, audits and the API."""
        comparisons: dict[str, dict[str, dict[str, float]]] = {}
        for i, c in enumerate(_COMPARISONS):
            comparisons[c.name] = {
                lv.name: {
                    "m": round(float(np.exp2(self.log_m[i][j])), 6),
                    "u": float(f"{np.exp2(self.log_u[i][j]):.6g}"),
                    "bits": round(self.bits(i, j), 2),
                }
                for j, lv in enumerate(c.levels)
            }
        return {
            "method": "fellegi-sunter, expectation maximisation",
            "match_rate": float(f"{self.match_rate:.6g}"),
            "prior_bits": round(self.prior_bits, 2),
            "iterations": self.iterations,
            "converged": self.converged,
            "fitted_pairs": self.fitted_pairs,
            "random_pairs": self.random_pairs,
            "decisions": {"same_person": self.decisions[0], "different_people": self.decisions[1]},
            "comparisons": comparisons,
        }


def _decision_levels(evidence: Mapping[str, Any]) -> list[int] | None:
    """The level vector of a decided candidate, read back from its stored evidence."""
    levels = [_MISSING] * len(_COMPARISONS)
    household = evidence.get("location") in ("same_address", "address_match")
    for i, c in enumerate(_COMPARISONS):
        name = evidence.get(c.name)
        if not isinstance(name, str):
            continue
        if i in (FIRST, LAST) and household:
            name += "|household"
        try:
            levels[i] = c.index(name)
        except StopIteration:
            return None  # evidence of another model version: not usable as a label
    return levels if any(lv >= 0 for lv in levels) else None


# --- matching ------------------------------------------------------------------------------


def _total_bits(model: _Model, levels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    table = model.weight_table()
    idx = np.where(levels < 0, table.shape[1] - 1, levels).astype(np.intp)
    bits = model.prior_bits + offsets
    for c in range(levels.shape[1]):
        bits = bits + table[c, idx[:, c]]
    return bits


def _scores(model: _Model, levels: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp2(-np.clip(_total_bits(model, levels, offsets), -60.0, 60.0)))


def _blocked_pairs(
    features: Sequence[_Features],
    max_block_size: int,
    full_block_size: int | None = None,
    window: int | None = None,
) -> tuple[np.ndarray, int]:
    """Every pair of records sharing a blocking key, once, as sorted codes ``i * n + j``
    (``i < j``), and how many blocks were too large to use.

    * A block of at most ``full_block_size`` records (default _FULL_BLOCK_SIZE) is expanded
      into all its pairs.
    * A larger block, up to ``max_block_size``, is searched by **sorted neighbourhood**: its
      records are put in order twice, by name (surname, first name, birthdate) and by
      birthdate (birthdate, postcode, surname), and each is paired with the next ``window``
      records (default _WINDOW) of each order. Such blocks are what keys with a fixed
      vocabulary turn into in a large file (a birthday is shared by ~40 people in 1M, a
      phonetic "John Smith" by hundreds), and expanding them is what makes the pairs grow
      with n²; the neighbours in those orders are the records most like each other.
    * A block over ``max_block_size`` is skipped (a default birthdate, a shop's phone).

    Built with numpy: the keys become block numbers, the (block, record) memberships are
    sorted into blocks, the blocks of one size are expanded together, and ``np.unique``
    removes the pairs two keys share; a pair costs 8 bytes (the ~70 of a set entry before).
    The orders depend on the records' contents only (ties, identical records, by position),
    so the pairs do not depend on the records' ids.
    """
    full_block_size = _FULL_BLOCK_SIZE if full_block_size is None else full_block_size
    window = _WINDOW if window is None else window
    n = len(features)
    block_of: dict[tuple[str, ...], int] = {}
    member_block = array("q")
    member_record = array("q")
    for i, f in enumerate(features):
        for key in set(_block_keys(f)):
            member_block.append(block_of.setdefault(key, len(block_of)))
            member_record.append(i)
    n_blocks = len(block_of)
    del block_of
    blocks = np.frombuffer(member_block, dtype=np.int64)
    records = np.frombuffer(member_record, dtype=np.int64)
    order = np.argsort(blocks, kind="stable")  # stable: records stay ascending within a block
    records = records[order]
    sizes = np.bincount(blocks, minlength=n_blocks)
    del order, blocks, member_block
    starts = np.cumsum(sizes) - sizes
    skipped_blocks = int((sizes > max_block_size).sum())
    parts: list[np.ndarray] = []
    ranks: list[np.ndarray] | None = None
    for size in np.unique(sizes[(sizes >= 2) & (sizes <= max_block_size)]).tolist():
        first = starts[sizes == size]
        if size <= full_block_size:
            left, right = np.triu_indices(size, 1)
        else:
            if ranks is None:
                ranks = [_rank(features, _name_order), _rank(features, _date_order)]
            left = right = np.empty(0, dtype=np.intp)
        per_block = len(left) if size <= full_block_size else 2 * size * window
        # At most ~4M pairs at a time, so the member matrix and the codes stay small.
        step = max(1, _PAIR_BATCH // max(per_block, 1))
        for b in range(0, len(first), step):
            members = records[first[b : b + step, None] + np.arange(size)]
            if size <= full_block_size:
                codes = members[:, left] * n + members[:, right]
            else:
                assert ranks is not None
                pieces = []
                for rank in ranks:
                    ordered = np.take_along_axis(members, np.argsort(rank[members], axis=1), axis=1)
                    for d in range(1, min(window, size - 1) + 1):
                        a, c = ordered[:, :-d], ordered[:, d:]
                        pieces.append((np.minimum(a, c) * n + np.maximum(a, c)).ravel())
                codes = np.concatenate(pieces)
            parts.append(np.unique(codes.ravel()))
    if not parts:
        return np.empty(0, dtype=np.int64), skipped_blocks
    return np.unique(np.concatenate(parts)), skipped_blocks


def _name_order(f: _Features) -> tuple[str, ...]:
    return (f.last, f.first, f.birthdate_digits, f.postcode, f.address_key, f.email, f.phone, f.national_id)


def _date_order(f: _Features) -> tuple[str, ...]:
    return (f.birthdate_digits, f.postcode, f.last, f.first, f.address_key, f.email, f.phone, f.national_id)


def _rank(features: Sequence[_Features], key: Any) -> np.ndarray:
    """Each record's position when all are sorted by ``key`` (ties by position)."""
    order = sorted(range(len(features)), key=lambda i: key(features[i]))
    rank = np.empty(len(features), dtype=np.int64)
    rank[order] = np.arange(len(features))
    return rank


def find_candidates(
    records: Sequence[PersonRecord],
    *,
    min_score: float = 0.5,
    max_block_size: int = 500,
    expected_duplicate_rate: float = DEFAULT_EXPECTED_DUPLICATE_RATE,
    decisions: Sequence[Decision] = (),
    learn: bool = True,
) -> DedupResult:
    """Find likely duplicate pairs among ``records``.

    ``min_score`` drops pairs below that probability. Blocks of more than
    ``max_block_size`` records are not expanded into pairs (counted in
    ``skipped_blocks``). The model is learned from the compared pairs themselves (``learn``
    False keeps the hand-set prior, for comparison); ``expected_duplicate_rate`` (share of
    records that are an extra copy of another) is where the learned match rate starts, and
    ``decisions`` are reviewers' verdicts on earlier candidates, used as labelled pairs.
    """
    if max_block_size < 2:
        raise ValueError("max_block_size must be >= 2")
    if not 0.0 < expected_duplicate_rate < 1.0:
        raise ValueError("expected_duplicate_rate must be between 0 and 1")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record ids must be unique")

    features = [_features(r) for r in records]
    n = len(records)
    candidates, skipped_blocks = _blocked_pairs(features, max_block_size)
    k = len(candidates)

    comparer = _Comparer(features)
    levels = np.empty((k, _N_COMPARISONS), dtype=np.int8)
    tf_total = np.zeros(k)
    swapped = np.zeros(k, dtype=bool)
    compare = comparer.compare
    # In slices, so that no Python list of all pairs is ever built: what a pair costs in
    # memory is its row of the arrays above (8 + 10 + 8 + 1 bytes).
    for start in range(0, k, _COMPARE_CHUNK):
        chunk = candidates[start : start + _COMPARE_CHUNK]
        rows_i, rows_j = np.divmod(chunk, n)
        chunk_levels, chunk_tf, chunk_swapped = [], [], []
        for i, j in zip(rows_i.tolist(), rows_j.tolist()):
            lv, tf, sw = compare(features[i], features[j])
            chunk_levels.append(lv)
            chunk_tf.append(sum(tf))
            chunk_swapped.append(sw)
        end = start + len(chunk)
        levels[start:end] = chunk_levels
        tf_total[start:end] = chunk_tf
        swapped[start:end] = chunk_swapped

    offsets = tf_total + np.where(swapped, _SWAP_BITS, 0.0)
    model = _Model()
    # The hand-set model's prior: r*n true pairs among all n(n-1)/2 (m0/u0 describe random pairs).
    model.match_rate = min(2.0 * expected_duplicate_rate / max(n - 1, 1), 0.5)
    if learn and k:
        u_random, random_counts, u_fixed = _random_pair_levels(features, comparer)
        model.random_pairs = int(max(random_counts))
        start = _scores(model, levels, offsets)
        decided = [(lv, d.same_person) for d in decisions if (lv := _decision_levels(d.evidence)) is not None]
        fit_levels, fit_offsets, fit_start = levels, offsets, start
        if k > _EM_MAX_PAIRS:
            sample = np.random.default_rng(0).choice(k, _EM_MAX_PAIRS, replace=False)
            fit_levels, fit_offsets, fit_start = levels[sample], offsets[sample], start[sample]
        # EM's sums in an order that depends on the pairs' contents only, so that the model (to
        # the last bit) does not depend on the records' order.
        canonical = np.lexsort((fit_offsets, *fit_levels.T))
        fit_levels, fit_offsets, fit_start = fit_levels[canonical], fit_offsets[canonical], fit_start[canonical]
        fit_labels = np.full(len(fit_levels), np.nan)
        if decided:
            fit_levels = np.vstack([fit_levels, np.array([lv for lv, _ in decided], dtype=np.int8)])
            fit_offsets = np.concatenate([fit_offsets, np.zeros(len(decided))])
            fit_start = np.concatenate([fit_start, np.zeros(len(decided))])
            fit_labels = np.concatenate([fit_labels, np.array([1.0 if same else 0.0 for _, same in decided])])
        model.fit(fit_levels, fit_offsets, fit_labels, fit_start, u_random, random_counts, model.match_rate,
                  all_pairs=n * (n - 1) / 2, compared_pairs=k, u_fixed=u_fixed)

    bits = _total_bits(model, levels, offsets)
    scores = 1.0 / (1.0 + np.exp2(-np.clip(bits, -60.0, 60.0)))

    pairs: list[CandidatePair] = []
    prior_bits = round(model.prior_bits, 2)
    for row in np.flatnonzero(scores >= min_score).tolist():
        i, j = divmod(int(candidates[row]), n)
        lv, tf, sw = compare(features[i], features[j])
        detail: dict[str, float | str] = {"prior_bits": prior_bits, "total_bits": round(float(bits[row]), 2)}
        for c, level in enumerate(lv):
            if level == _MISSING:
                continue
            name = _COMPARISONS[c].name
            detail[name] = _COMPARISONS[c].levels[level].name.split("|")[0]
            detail[f"{name}_bits"] = round(model.bits(c, level) + tf[c], 2)
        if sw:
            detail["names_swapped"] = "yes"
            detail["names_swapped_bits"] = round(_SWAP_BITS, 2)
        left, right = sorted((ids[i], ids[j]))
        pairs.append(CandidatePair(left, right, float(scores[row]), detail))

    pairs.sort(key=lambda p: (-p.score, p.left_id, p.right_id))
    return DedupResult(pairs=pairs, compared_pairs=k, skipped_blocks=skipped_blocks, model=model.describe())


def _content_key(f: _Features) -> tuple[str, ...]:
    return (f.first, f.last, f.birthdate_digits, f.email, f.phone, f.postcode, f.address_key, f.city, f.state,
            f.address2, f.national_id)


def _random_pair_levels(
    features: Sequence[_Features], comparer: _Comparer
) -> tuple[list[np.ndarray], list[float], list[np.ndarray]]:
    """Levels among random pairs (u as strangers show it) as pseudo-pairs per comparison (at
    most _RANDOM_PAIR_STRENGTH per group), how many random pairs had the field, and the u
    that the value frequencies fix (NaN for a level they do not).

    A level adjusted by term frequencies (an exact agreement, the same address or postcode,
    the same e-mail local key) takes its u from the value counts, not from the sample: the
    chance that two random records share a value (sum of squared value shares). A sample of
    thousands of pairs hardly ever sees two people at one address, while the address counts
    see every household; and it is this u that the level's frequency adjustment is relative
    to, so that the pair's evidence is log2(m / share of the shared value) whatever the
    file's size (``_Model.fit`` keeps it rather than blending it with the hand-set u0)."""
    n = len(features)
    # Reproducible: the same people learn the same model, whatever their ids or order (the
    # sample is drawn from the records sorted by content, with a fixed seed).
    canonical = sorted(features, key=_content_key)
    rng = random.Random(0)
    counts = [np.zeros(len(c.levels)) for c in _COMPARISONS]
    total_pairs = n * (n - 1) // 2
    if total_pairs <= _RANDOM_PAIRS:
        sample: Iterable[tuple[int, int]] = itertools.combinations(range(n), 2)
    else:
        sample = ((i, j if j < i else j + 1) for i, j in ((rng.randrange(n), rng.randrange(n - 1)) for _ in range(_RANDOM_PAIRS)))
    for i, j in sample:
        lv, _, _ = comparer.compare(canonical[i], canonical[j])
        for c, level in enumerate(lv):
            if level != _MISSING:
                counts[c][level] += 1
    pseudo, seen, fixed = [], [], []
    for c, comp in enumerate(_COMPARISONS):
        groups = np.array([lv.group for lv in comp.levels])
        group_totals = np.bincount(groups, weights=counts[c], minlength=groups.max() + 1)
        shares = np.divide(counts[c], group_totals[groups], out=np.zeros(len(comp.levels)), where=group_totals[groups] > 0)
        pinned = np.array([comparer.u_exact[lv.tf] if lv.tf is not None else np.nan for lv in comp.levels])
        for g in range(len(group_totals)):
            if not group_totals[g]:
                continue
            tf_levels = [j for j, lv in enumerate(comp.levels) if lv.group == g and lv.tf is not None]
            rest = [j for j, lv in enumerate(comp.levels) if lv.group == g and j not in tf_levels]
            rest_share = shares[rest].sum()
            shares[tf_levels] = pinned[tf_levels]
            if rest_share > 0:
                shares[rest] *= max(1.0 - pinned[tf_levels].sum(), 0.0) / rest_share
        # As pseudo-pairs: a group the sample saw often speaks louder than the prior.
        pseudo.append(shares * np.minimum(group_totals[groups], _RANDOM_PAIR_STRENGTH))
        seen.append(float(counts[c].sum()))
        fixed.append(pinned)
    return pseudo, seen, fixed


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
