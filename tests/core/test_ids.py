"""uuid7: version-7 ids that increase strictly within a process, even inside one millisecond."""

from __future__ import annotations

import uuid

from app.core import ids


def test_ids_made_in_one_millisecond_still_increase(monkeypatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_800_000_000_000 * 1_000_000)
    made = [ids.uuid7() for _ in range(2000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert {u.version for u in made} == {7} and {u.variant for u in made} == {uuid.RFC_4122}


def test_a_clock_step_back_does_not_reorder_ids(monkeypatch) -> None:
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_800_000_000_500 * 1_000_000)
    later = ids.uuid7()
    monkeypatch.setattr(ids.time, "time_ns", lambda: 1_800_000_000_000 * 1_000_000)
    assert ids.uuid7() > later


def test_carries_never_touch_version_or_variant() -> None:
    top = (5 << 80) | (0x7 << 76) | (0xFFF << 64) | (0b10 << 62) | ((1 << 62) - 1)
    after = uuid.UUID(int=ids._next_after(top))
    assert after.int > top and after.version == 7 and after.variant == uuid.RFC_4122
    assert after.int >> 80 == 6, "rand_a and rand_b overflowed into the timestamp"
