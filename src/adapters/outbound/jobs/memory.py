"""The job store of one process (tests and embedders that need no persistence): the reference for the others."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from zfsapi.application.ports import JobStore
from zfsapi.domain.jobs import Job, JobError, JobProgress, JobState


class MemoryJobStore(JobStore):
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = asyncio.Lock()

    async def add(self, job: Job) -> None:
        async with self._lock:
            if job.job_id in self._jobs:
                raise ValueError(f"job {job.job_id} exists")
            self._jobs[job.job_id] = job

    async def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   limit: int = 100, offset: int = 0) -> tuple[list[Job], int]:
        found = [j for j in self._jobs.values()
                 if (state is None or j.state is state) and (kind is None or j.kind == kind)
                 and (owner is None or j.owner.name == owner)]
        found.sort(key=lambda j: (j.created_at, j.job_id), reverse=True)
        return found[offset:offset + limit], len(found)

    async def claim(self, worker: str, now: float, lease_until: float) -> Job | None:
        async with self._lock:
            queued = [j for j in self._jobs.values() if j.state is JobState.QUEUED]
            if not queued:
                return None
            job = min(queued, key=lambda j: (j.created_at, j.job_id))
            job = self._jobs[job.job_id] = replace(
                job, state=JobState.RUNNING, started_at=job.started_at or now, lease_owner=worker,
                lease_until=lease_until, attempts=job.attempts + 1, finished_at=None)
            return job

    def _held(self, job_id: str, worker: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.state is JobState.RUNNING and job.lease_owner == worker else None

    async def renew(self, job_id: str, worker: str, lease_until: float, progress: JobProgress) -> Job | None:
        async with self._lock:
            job = self._held(job_id, worker)
            if job is None:
                return None
            job = self._jobs[job_id] = replace(job, lease_until=lease_until, progress=progress)
            return job

    async def finish(self, job_id: str, worker: str, state: JobState, now: float, *, progress: JobProgress,
                     result: dict[str, Any] | None = None, error: JobError | None = None) -> Job | None:
        async with self._lock:
            job = self._held(job_id, worker)
            if job is None:
                return None
            job = self._jobs[job_id] = replace(job, progress=progress).finish(state, now, result=result, error=error)
            return job

    async def cancel(self, job_id: str, now: float) -> Job | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state.finished:
                return job
            if job.state is JobState.QUEUED:
                job = replace(job, cancel_requested=True).finish(JobState.CANCELLED, now)
            else:
                job = replace(job, cancel_requested=True)
            self._jobs[job_id] = job
            return job

    async def interrupt_lapsed(self, now: float) -> list[Job]:
        async with self._lock:
            lapsed = [j for j in self._jobs.values()
                      if j.state is JobState.RUNNING and j.lease_until is not None and j.lease_until < now]
            for job in lapsed:
                self._jobs[job.job_id] = job.lapse(now)
            return [self._jobs[j.job_id] for j in lapsed]

    async def requeue(self, job_id: str) -> Job | None:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state is not JobState.INTERRUPTED or job.cancel_requested:
                return None
            job = self._jobs[job_id] = replace(job, state=JobState.QUEUED, finished_at=None)
            return job

    async def purge(self, finished_before: float) -> int:
        async with self._lock:
            old = [k for k, j in self._jobs.items()
                   if j.state.finished and j.finished_at is not None and j.finished_at < finished_before]
            for k in old:
                del self._jobs[k]
            return len(old)
