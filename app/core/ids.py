"""Time-ordered UUIDs (RFC 9562 version 7): index-friendly primary keys generated in Python.

Within one process the ids are strictly increasing, even inside one millisecond (RFC 9562
section 6.2, method 2: the random part is incremented when the clock has not moved), so
"the oldest profile survives a merge" holds between profiles made by one batch too."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = 0


def uuid7() -> uuid.UUID:
    global _last
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b (62 bits)
    with _lock:
        if value <= _last:
            value = _next_after(_last)  # same millisecond, or the clock stepped back
        _last = value
    return uuid.UUID(int=value)


def _next_after(previous: int) -> int:
    """The smallest version-7 value above ``previous``: rand_b + 1, carrying into rand_a and
    then into the timestamp, never into the version or variant bits."""
    ms, rand_a, rand_b = previous >> 80, (previous >> 64) & 0xFFF, previous & ((1 << 62) - 1)
    rand_b += 1
    if rand_b == 1 << 62:
        rand_b, rand_a = 0, rand_a + 1
        if rand_a == 1 << 12:
            rand_a, ms = 0, ms + 1
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
