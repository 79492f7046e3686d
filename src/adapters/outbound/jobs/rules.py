"""The job store's changes as pure functions of the stored record, shared by every store so they cannot drift:
a store only finds the records and makes each change atomic (a lock, a SQLite transaction, a Redis
compare-and-set). A change answers None when it does not apply."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Callable

from zfsapi.application.ports import JobStore
from zfsapi.domain.jobs import Job, JobError, JobProgress, JobState


def newest_first(job: Job) -> tuple[float, str]:
    """The listing order (reversed) and, ascending, the claim order."""
    return job.created_at, job.job_id


def matches(job: Job, state: JobState | None, kind: str | None, owner: str | None) -> bool:
    return ((state is None or job.state is state) and (kind is None or job.kind == kind)
            and (owner is None or job.owner.name == owner))


def claimed(job: Job, worker: str, now: float, lease_until: float) -> Job:
    """A queued job made running under `worker`'s lease."""
    return replace(job, state=JobState.RUNNING, started_at=now if job.started_at is None else job.started_at,
                   finished_at=None, lease_owner=worker, lease_until=lease_until, attempts=job.attempts + 1)


def _held(job: Job, worker: str) -> bool:
    return job.state is JobState.RUNNING and job.lease_owner == worker


def renewed(job: Job, worker: str, lease_until: float, progress: JobProgress) -> Job | None:
    return replace(job, lease_until=lease_until, progress=progress) if _held(job, worker) else None


def ended(job: Job, worker: str, state: JobState, now: float, progress: JobProgress,
          result: dict[str, Any] | None, error: JobError | None) -> Job | None:
    """Raises:
        ValueError: `state` is not a finished state (the job would be neither queued nor finished)."""
    if not state.finished:
        raise ValueError(f"a job cannot finish as {state.value}")
    if not _held(job, worker):
        return None
    return replace(job, progress=progress).finish(state, now, result=result, error=error)


def cancelled(job: Job, now: float) -> Job:
    """Queued: cancelled at once; running: asked to stop; finished: the job itself (unchanged)."""
    if job.state is JobState.QUEUED:
        return replace(job, cancel_requested=True).finish(JobState.CANCELLED, now)
    if job.state is JobState.RUNNING and not job.cancel_requested:
        return replace(job, cancel_requested=True)
    return job


def lapsed(job: Job, now: float) -> Job | None:
    """A running job whose lease ended before `now`, interrupted (or cancelled)."""
    if job.state is JobState.RUNNING and job.lease_until is not None and job.lease_until < now:
        return job.lapse(now)
    return None


def requeued(job: Job) -> Job | None:
    if job.state is not JobState.INTERRUPTED or job.cancel_requested:
        return None
    return replace(job, state=JobState.QUEUED, finished_at=None)


def purgeable(job: Job, finished_before: float) -> bool:
    return job.state.finished and job.finished_at is not None and job.finished_at < finished_before


class ChangesByRules(JobStore, ABC):
    """The changes of one job that every store makes the same way: read it, apply the rule, write it back if the
    rule changed it, atomically (`_change`, the store's own)."""

    @abstractmethod
    async def _change(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        """Apply `change` to the job atomically; the job as stored after it (None: no such job, or the rule
        refused)."""

    async def renew(self, job_id: str, worker: str, lease_until: float, progress: JobProgress) -> Job | None:
        return await self._change(job_id, lambda j: renewed(j, worker, lease_until, progress))

    async def finish(self, job_id: str, worker: str, state: JobState, now: float, *, progress: JobProgress,
                     result: dict[str, Any] | None = None, error: JobError | None = None) -> Job | None:
        return await self._change(job_id, lambda j: ended(j, worker, state, now, progress, result, error))

    async def cancel(self, job_id: str, now: float) -> Job | None:
        return await self._change(job_id, lambda j: cancelled(j, now))
