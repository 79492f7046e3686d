"""job_list of a dataset-scoped admin at 10,000 records: through the scope index (the store reads the records of
its scope only) vs reading every record and filtering (what it did before), side by side in one run, on the
embedded SQLite store and, given a Redis port, on Redis; one caller and 20 at once.

    .venv/bin/python -m bench.bench_job_list [RECORDS] [REDIS_PORT]

The records spread over 100 datasets; the scoped admin's prefix covers one of them (1 % of the records).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from typing import Any

from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore
from zfsapi.application.jobs import Jobs
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.jobs import Job, JobOwner, JobState

SCOPED = Principal("ops", Role.ADMIN, ("tank/d7",))


async def fill(store: Any, records: int) -> None:
    owner = JobOwner("root", "admin")
    for n in range(records):
        await store.add(Job(f"{n:08x}", "send_to_file", owner, {"n": n}, (f"tank/d{n % 100}@s{n}",), 1e9 + n,
                            state=JobState.SUCCEEDED, finished_at=1e9 + n + 1))


async def unindexed(store: Any) -> tuple[list[Job], int]:
    """Before: every record read, then the visibility check."""
    found, _ = await store.query(limit=1 << 30)
    visible = [j for j in found if j.visible_to(SCOPED)]
    return visible[:100], len(visible)


async def timed(call: Any, rounds: int, concurrent: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        await asyncio.gather(*(call() for _ in range(concurrent)))
        best = min(best, time.perf_counter() - start)
    return best


async def compare(name: str, store: Any) -> None:
    jobs = Jobs(store)
    indexed = (await jobs.list(SCOPED))[1]
    assert indexed == (await unindexed(store))[1] == len([1 for _ in range(0, RECORDS, 100)]), indexed
    for concurrent in (1, 20):
        after = await timed(lambda: jobs.list(SCOPED), 5, concurrent)
        before = await timed(lambda: unindexed(store), 3, concurrent)
        print(f"{name}: {RECORDS} records, {indexed} in scope, {concurrent} at once: index {after * 1000:.1f} ms,"
              f" every record {before * 1000:.1f} ms ({before / after:.1f}x)")


async def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        store = EmbeddedJobStore(state)
        await fill(store, RECORDS)
        await compare("embedded", store)
        store.close()
    if REDIS_PORT:
        from zfsapi.adapters.outbound.state.redis.jobs import RedisJobStore
        from zfsapi.adapters.outbound.state.redis.client import connect
        client = connect("127.0.0.1", REDIS_PORT, 0, None)
        await client.flushdb()
        store = RedisJobStore(client)
        await fill(store, RECORDS)
        await compare("redis", store)
        await client.flushdb()
        await client.aclose()


RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
REDIS_PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0

if __name__ == "__main__":
    asyncio.run(main())
