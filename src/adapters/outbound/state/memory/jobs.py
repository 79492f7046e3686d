"""The job store of one process (tests and embedders that need no persistence): the reference for the others."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Callable

from zfsapi.domain.jobs import Job, JobState

from .. import job_rules as rules


class MemoryJobStore(rules.ChangesByRules):
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = asyncio.Lock()

    async def add(self, job: Job, *, max_per_owner: int | None = None) -> None:
        async with self._lock:
            if job.job_id in self._jobs:
                raise ValueError(f"job {job.job_id} exists")
            active = sum(j.active and j.owner.name == job.owner.name for j in self._jobs.values())
            rules.admit(job.owner.name, active, max_per_owner)
            self._jobs[job.job_id] = job

    async def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   scope: tuple[str, ...] | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[Job], int]:
        found = sorted((j for j in self._jobs.values()
                        if rules.matches(j, state, kind, owner) and rules.in_scope(j, scope)),
                       key=rules.newest_first, reverse=True)
        offset, limit = max(0, offset), max(0, limit)
        return found[offset:offset + limit], len(found)

    async def _change(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            new = None if job is None else change(job)
            if new is not None:
                self._jobs[job_id] = new
            return new

    async def claim(self, worker: str, now: float, lease_until: float) -> Job | None:
        async with self._lock:
            heads: dict[str, Job] = {}
            for j in self._jobs.values():
                if j.state is JobState.QUEUED and (
                        j.owner.name not in heads or rules.newest_first(j) < rules.newest_first(heads[j.owner.name])):
                    heads[j.owner.name] = j
            running = Counter(j.owner.name for j in self._jobs.values() if j.state is JobState.RUNNING)
            owner = rules.next_owner({o: rules.newest_first(j) for o, j in heads.items()}, running)
            if owner is None:
                return None
            job = rules.claimed(heads[owner], worker, now, lease_until)
            self._jobs[job.job_id] = job
            return job

    async def interrupt_lapsed(self, now: float, *, grace: float = 0.0) -> list[Job]:
        async with self._lock:
            lapsed = [new for new in (rules.lapsed(j, now, grace) for j in self._jobs.values()) if new is not None]
            self._jobs.update((j.job_id, j) for j in lapsed)
            return lapsed

    async def purge(self, finished_before: float) -> int:
        async with self._lock:
            old = [k for k, j in self._jobs.items() if rules.purgeable(j, finished_before)]
            for k in old:
                del self._jobs[k]
            return len(old)
