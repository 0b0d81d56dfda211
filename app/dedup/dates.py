"""Birth dates as people and source systems write them, read without guessing.

Accepted (a time after the date is ignored, so timestamps count by their date):

* year first: ``1956-04-19``, ``1956/04/19``, ``1956.04.19``, ``19560419``, ``1956-4-19``;
* day first with dots, the European convention: ``19.04.1956``, ``19.4.1956``;
* day first or month first with ``/`` or ``-`` **only when the order is certain**: ``19/04/1956``
  (19 cannot be a month), ``04/19/1956`` (nor here), ``19-04-1956``;
* month names in English: ``19 April 1956``, ``19 Apr 1956``, ``April 19, 1956``, ``Apr 19 1956``.

Refused, with the reason: ``04/05/1956`` and ``04-05-1956`` (April or May? both readings are
dates), two-digit years (``19/04/56``: 1956 or 2056?), impossible dates (``1956-02-30``), and dates
before 1900 or in the future (placeholders, not birthdays).
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["UnreadableDate", "parse_birthdate"]

OLDEST = date(1900, 1, 1)  # before this it is a placeholder, not a birthday

_MONTHS = {
    name: i
    for i, names in enumerate(
        (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",), ("jun", "june"),
         ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")),
        start=1,
    )
    for name in names
}
_YEAR_FIRST = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})")
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DAY_OR_MONTH_FIRST = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?!\d)")
_DAY_MONTH_NAME = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[ -]([a-z]+)\.?,?[ -](\d{4})")
_MONTH_NAME_DAY = re.compile(r"([a-z]+)\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})")
# What may follow the date: a time ("T10:00:00Z", " 00:00:00").
_TIME = re.compile(r"(?:[t ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:z|[+-]\d{2}:?\d{2})?)?")  # the text is lower-cased


class UnreadableDate(ValueError):
    """The text is not a birth date this module can read for certain; the message says why."""


def parse_birthdate(text: str, *, today: date | None = None) -> date:
    """The date ``text`` means, or :class:`UnreadableDate` with the reason."""
    s = text.strip().lower()
    today = today or date.today()
    for pattern, reader in (
        (_YEAR_FIRST, lambda m: (int(m[1]), int(m[3]), int(m[4]))),
        (_COMPACT, lambda m: (int(m[1]), int(m[2]), int(m[3]))),
        (_DAY_OR_MONTH_FIRST, _day_or_month_first),
        (_DAY_MONTH_NAME, lambda m: (int(m[3]), _month(m[2]), int(m[1]))),
        (_MONTH_NAME_DAY, lambda m: (int(m[3]), _month(m[1]), int(m[2]))),
    ):
        match = pattern.match(s)
        if match is None or not _TIME.fullmatch(s, match.end()):
            continue
        year, month, day = reader(match)
        try:
            born = date(year, month, day)
        except ValueError:
            raise UnreadableDate(f"{text!r} is not a date (year {year}, month {month}, day {day})") from None
        if not OLDEST <= born <= today:
            raise UnreadableDate(f"{text!r} is before 1900 or in the future: a placeholder, not a birth date")
        return born
    raise UnreadableDate(f"{text!r} is not a date format read here (e.g. 1956-04-19, 19560419, 19.04.1956)")


def _month(name: str) -> int:
    try:
        return _MONTHS[name]
    except KeyError:
        raise UnreadableDate(f"{name!r} is not a month name") from None


def _day_or_month_first(m: re.Match[str]) -> tuple[int, int, int]:
    first, sep, second, year_text = int(m[1]), m[2], int(m[3]), m[4]
    if len(year_text) == 2:
        raise UnreadableDate(f"{m[0]!r} has a two-digit year: which century is not certain")
    year = int(year_text)
    if sep == ".":
        return year, second, first  # dotted dates are day first (19.04.1956)
    if first > 12 >= second:
        return year, second, first  # 19/04/1956: day first
    if second > 12 >= first:
        return year, first, second  # 04/19/1956: month first
    if first == second:
        return year, first, second  # 04/04/1956 reads the same both ways
    raise UnreadableDate(f"{m[0]!r} could be day/month or month/day: write it as {year}-MM-DD")
