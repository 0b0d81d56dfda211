"""Birth dates in the forms people write them; what is ambiguous is refused with the reason."""

from __future__ import annotations

from datetime import date

import pytest

from app.dedup.dates import UnreadableDate, parse_birthdate

TODAY = date(2026, 12, 4)


@pytest.mark.parametrize("text", [
    "1956-04-19", "1956/04/19", "1956.04.19", "19560419", "1956-4-19", "19.04.1956", "19.4.1956",
    "19/04/1956", "04/19/1956", "19-04-1956", "19 April 1956", "19 Apr 1956", "April 19, 1956", "apr 19 1956",
    "1956-04-19T10:00:00Z", "1956-04-19 00:00:00", "  1956-04-19 ",
])
def test_unambiguous_forms_are_read(text: str) -> None:
    assert parse_birthdate(text, today=TODAY) == date(1956, 4, 19)


def test_same_day_and_month_read_the_same_both_ways() -> None:
    assert parse_birthdate("04/04/1956", today=TODAY) == date(1956, 4, 4)


@pytest.mark.parametrize(("text", "reason"), [
    ("04/05/1956", "day/month or month/day"),
    ("04-05-1956", "day/month or month/day"),
    ("19/04/56", "two-digit year"),
    ("1956-02-30", "not a date"),
    ("1850-01-01", "before 1900 or in the future"),
    ("2027-01-01", "before 1900 or in the future"),
    ("19 Foo 1956", "not a month name"),
    ("soon", "not a date format"),
    ("1956-04-19 and more", "not a date format"),
])
def test_ambiguous_or_impossible_forms_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(UnreadableDate, match=reason):
        parse_birthdate(text, today=TODAY)
