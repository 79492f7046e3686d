"""Use cases for pools: listing, properties, scrubs, status, and a cached view for health and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from zfsapi.domain.errors import StateConflict
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.models import Pool, PoolStatus, PropertyEntry, ScanStatus
from zfsapi.domain.names import PoolName, PropertyName

from .ports import Pools


class ListPools:
    """Every imported pool with size, allocation, capacity, health and fragmentation."""

    def __init__(self, pools: Pools) -> None:
        self._pools = pools

    async def execute(self) -> list[Pool]:
        return await self._pools.list_pools()


class GetPoolProperties:
    """One pool property or all (`zpool get -H -p`).

    Raises:
        NotFound: the pool does not exist.
        InvalidArgument: zpool knows no property of that name.
    """

    def __init__(self, pools: Pools) -> None:
        self._pools = pools

    async def execute(self, *, pool: PoolName, property: PropertyName | None = None) -> dict[str, PropertyEntry]:
        return await self._pools.pool_properties(pool, property=property)


class StartScrub:
    """Start (or resume a paused) scrub.

    Raises:
        NotFound: the pool does not exist.
        Busy: a scrub or resilver runs already.
    """

    def __init__(self, pools: Pools, *, poll: float = 2.0) -> None:
        self._pools = pools
        self._poll = poll

    async def execute(self, *, pool: PoolName, progress: ProgressMeter | None = None) -> ScanStatus | None:
        """Start the scrub. With `progress` (a job), follow it until it ends, reporting the scan's progress, and
        return how it ended; a cancelled job stops the scrub."""
        await self._pools.scrub(pool, stop=False)
        if progress is None:
            return None
        progress.phase("scrubbing")
        try:
            while True:
                scan = (await self._pools.pool_status(pool)).scan
                if scan.total is not None:
                    progress.expect(scan.total)
                if scan.examined is not None:
                    progress.reach(scan.examined)
                if scan.percent is not None:
                    progress.phase(f"scrubbing {scan.percent:.1f}%")
                if scan.state != "scanning" and scan.state != "paused":
                    progress.phase(scan.state or "finished")
                    return scan
                await asyncio.sleep(self._poll)
        except asyncio.CancelledError:
            await asyncio.shield(self._stop_quietly(pool))
            raise

    async def _stop_quietly(self, pool: PoolName) -> None:
        try:
            await self._pools.scrub(pool, stop=True)
        except StateConflict:  # it ended meanwhile
            pass


class StopScrub:
    """Cancel the running scrub.

    Raises:
        NotFound: the pool does not exist.
        StateConflict: no scrub is running.
    """

    def __init__(self, pools: Pools) -> None:
        self._pools = pools

    async def execute(self, *, pool: PoolName) -> None:
        await self._pools.scrub(pool, stop=True)


class GetPoolStatus:
    """`zpool status` as raw text plus the parsed state, scan progress and vdev tree.

    Raises:
        NotFound: the pool does not exist.
    """

    def __init__(self, pools: Pools) -> None:
        self._pools = pools

    async def execute(self, *, pool: PoolName) -> PoolStatus:
        return await self._pools.pool_status(pool)


class PoolOverview:
    """The pool list for health checks and gauges, refreshed at most every `max_age` seconds.

    Concurrent callers within the window share one `zpool list`.
    """

    def __init__(self, pools: Pools, max_age: float = 5.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pools = pools
        self._max_age = max_age
        self._monotonic = monotonic
        self._cached: tuple[float, list[Pool], str] | None = None
        self._lock = asyncio.Lock()

    async def execute(self) -> tuple[list[Pool], str]:
        """(pools, zfs version). Raises ZfsUnavailable."""
        async with self._lock:
            cached = self._cached
            if cached is not None and self._monotonic() - cached[0] < self._max_age:
                return cached[1], cached[2]
            version = cached[2] if cached else await self._pools.version()
            pools = await self._pools.list_pools()
            self._cached = (self._monotonic(), pools, version)
            return pools, version
