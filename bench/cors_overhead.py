"""CPU cost of the CORS layer (app.core.cors.PublicCorsMiddleware) for a tracking request
without `Origin` (server SDKs: the hot path), beside a bare pass-through ASGI layer.

    .venv/bin/python bench/cors_overhead.py [--calls 300000] [--repeats 5]

Reports process CPU time per call (not wall time: the host is usually shared), the median of
the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from app.core.cors import PublicCorsMiddleware
from app.ingest.router import TRACKING_PATHS

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"analytics-python/2.3"),
           (b"content-type", b"application/json"), (b"content-length", b"60000"), (b"authorization", b"Basic abc"),
           (b"accept-encoding", b"gzip"), (b"accept", b"*/*"), (b"connection", b"keep-alive")]
SCOPE = {"type": "http", "method": "POST", "path": "/v1/batch", "headers": HEADERS}


async def endpoint(scope, receive, send) -> None:
    return None


async def bare(scope, receive, send) -> None:
    await endpoint(scope, receive, send)


async def per_call(app, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await app(SCOPE, None, None)
    return (time.process_time() - started) / calls


async def main(calls: int, repeats: int) -> None:
    cors = PublicCorsMiddleware(endpoint, paths=TRACKING_PATHS)
    bare_ns, cors_ns = [], []
    for _ in range(repeats):
        bare_ns.append(await per_call(bare, calls) * 1e9)
        cors_ns.append(await per_call(cors, calls) * 1e9)
    b, c = statistics.median(bare_ns), statistics.median(cors_ns)
    print(f"bare layer {b:.0f} ns, CORS layer {c:.0f} ns per call: the CORS check adds {c - b:.0f} ns")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.repeats))
