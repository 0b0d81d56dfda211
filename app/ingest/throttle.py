"""Back-pressure for ingest: 429 + Retry-After, which the Segment SDKs honour by retrying.

Two limits, both per process: requests in flight (the service is overloaded), and an optional
token bucket of messages per second per workspace. Admitted requests then take one of a few
database slots: ingest transactions are CPU-bound in PostgreSQL, so running more of them at
once than the database has cores only adds contention (and starves this process of the CPU
it needs to parse the next batches); the others wait their turn, parsed and ready.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.core.errors import TooManyRequests


class IngestGate:
    def __init__(self, *, max_concurrency: int, rate_per_second: float, db_concurrency: int = 4) -> None:
        self.max_concurrency = max_concurrency
        self.rate = rate_per_second
        self.in_flight = 0
        self._db_slots = asyncio.Semaphore(db_concurrency)
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    @asynccontextmanager
    async def admit(self, workspace_id: uuid.UUID, messages: int, rate: float | None = None) -> AsyncIterator[None]:
        """`rate` is the workspace's own limit (messages/s), overriding the process default."""
        if self.in_flight >= self.max_concurrency:
            raise TooManyRequests(
                f"The service is at its limit of {self.max_concurrency} ingest requests in flight; retry shortly.",
                headers={"Retry-After": "1"},
            )
        effective = self.rate if rate is None else rate
        if effective > 0:
            self._take(workspace_id, messages, effective)
        self.in_flight += 1
        try:
            async with self._db_slots:
                yield
        finally:
            self.in_flight -= 1

    def _take(self, workspace_id: uuid.UUID, messages: int, rate: float) -> None:
        now = time.monotonic()
        capacity = max(rate, float(messages))  # a bucket holds one second of traffic
        tokens, last = self._buckets.get(workspace_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < messages:
            wait = math.ceil((messages - tokens) / rate)
            self._buckets[workspace_id] = (tokens, now)
            raise TooManyRequests(
                f"This workspace is limited to {rate:g} messages per second; retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        self._buckets[workspace_id] = (tokens - messages, now)
