"""Back-pressure for ingest: 429 + Retry-After, which the Segment SDKs honour by retrying.

Two limits, both per process: requests in flight (the service is overloaded), and an optional
token bucket of messages per second per workspace.
"""

from __future__ import annotations

import math
import time
import uuid
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

from app.core.errors import TooManyRequests


class IngestGate:
    def __init__(self, *, max_concurrency: int, rate_per_second: float) -> None:
        self.max_concurrency = max_concurrency
        self.rate = rate_per_second
        self.in_flight = 0
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    @asynccontextmanager
    async def admit(self, workspace_id: uuid.UUID, messages: int) -> AsyncIterator[None]:
        if self.in_flight >= self.max_concurrency:
            raise TooManyRequests(
                f"The service is at its limit of {self.max_concurrency} ingest requests in flight; retry shortly.",
                headers={"Retry-After": "1"},
            )
        if self.rate > 0:
            self._take(workspace_id, messages)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def _take(self, workspace_id: uuid.UUID, messages: int) -> None:
        now = time.monotonic()
        capacity = max(self.rate, float(messages))  # a bucket holds one second of traffic
        tokens, last = self._buckets.get(workspace_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.rate)
        if tokens < messages:
            wait = math.ceil((messages - tokens) / self.rate)
            self._buckets[workspace_id] = (tokens, now)
            raise TooManyRequests(
                f"This workspace is limited to {self.rate:g} messages per second; retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[workspace_id] = (tokens - messages, now)
