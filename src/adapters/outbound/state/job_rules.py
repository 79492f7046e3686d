"""The job store's changes as pure functions of the stored record, shared by every store so they cannot drift:
a store only finds the records and makes each change atomic (a lock, a SQLite transaction, a Redis
compare-and-set). A change answers None when it does not apply."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Callable, Mapping

from zfsapi.application.ports import JobStore
from zfsapi.domain.authz import dataset_of
from zfsapi.domain.errors import TooManyJobs
from zfsapi.domain.jobs import Job, JobError, JobProgress, JobState


def newest_first(job: Job) -> tuple[float, str]:
    """The listing order (reversed) and, ascending, the claim order within one owner."""
    return job.created_at, job.job_id


def matches(job: Job, state: JobState | None, kind: str | None, owner: str | None) -> bool:
    return ((state is None or job.state is state) and (kind is None or job.kind == kind)
            and (owner is None or job.owner.name == owner))


def scope_names(job: Job) -> tuple[str, ...]:
    """The dataset of each name the job touches, the keys of the scope index; a job without names is indexed
    under "" (it is a candidate for every scope: `Job.visible_to` decides)."""
    return tuple(sorted({dataset_of(name) for name in job.datasets})) or ("",)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "/")


def in_scope(job: Job, scope: tuple[str, ...] | None) -> bool:
    """A candidate for a caller scoped to `scope` (None: every job): a name under one of its prefixes, or none."""
    if scope is None:
        return True
    names = scope_names(job)
    return names == ("",) or any(under(n, p) for n in names for p in scope)


def admit(owner: str, active: int, limit: int | None) -> None:
    """Raises:
        TooManyJobs: the owner has `limit` or more jobs queued or running already."""
    if limit is not None and active >= limit:
        raise TooManyJobs(owner, limit, active)


def next_owner(heads: Mapping[str, tuple[float, str]], running: Mapping[str, int]) -> str | None:
    """Whose queued job is claimed next: the owner with the fewest running jobs, then the one whose oldest queued
    job (`heads`) is oldest, so no owner's queue starves another's. None: nothing is queued."""
    if not heads:
        return None
    return min(heads, key=lambda owner: (running.get(owner, 0), heads[owner]))


def claimed(job: Job, worker: str, now: float, lease_until: float) -> Job:
    """A queued job made running under `worker`'s lease, with the next fencing token."""
    return replace(job, state=JobState.RUNNING, started_at=now if job.started_at is None else job.started_at,
                   finished_at=None, lease_owner=worker, lease_until=lease_until, attempts=job.attempts + 1,
                   fence=job.fence + 1)


def _held(job: Job, worker: str, fence: int) -> bool:
    """`worker` holds the job's lease under this token: no claim has happened since its own."""
    return job.state is JobState.RUNNING and job.lease_owner == worker and job.fence == fence


def renewed(job: Job, worker: str, fence: int, lease_until: float, progress: JobProgress) -> Job | None:
    return replace(job, lease_until=lease_until, progress=progress) if _held(job, worker, fence) else None


def ended(job: Job, worker: str, fence: int, state: JobState, now: float, progress: JobProgress,
          result: dict[str, Any] | None, error: JobError | None) -> Job | None:
    """The holder's outcome. A success that comes after the lease lapsed (the holder stalled, or the store was
    away) is still recorded when nobody has claimed the job since (the token has not moved): the work is done,
    and the job, interrupted or queued again, would only do it again.

    Raises:
        ValueError: `state` is not a finished state (the job would be neither queued nor finished)."""
    if not state.finished:
        raise ValueError(f"a job cannot finish as {state.value}")
    late = (state is JobState.SUCCEEDED and job.fence == fence
            and job.state in (JobState.INTERRUPTED, JobState.QUEUED) and not job.cancel_requested)
    if not (_held(job, worker, fence) or late):
        return None
    return replace(job, progress=progress).finish(state, now, result=result, error=error)


def cancelled(job: Job, now: float) -> Job:
    """Queued: cancelled at once; running: asked to stop; finished: the job itself (unchanged)."""
    if job.state is JobState.QUEUED:
        return replace(job, cancel_requested=True).finish(JobState.CANCELLED, now)
    if job.state is JobState.RUNNING and not job.cancel_requested:
        return replace(job, cancel_requested=True)
    return job


def lapsed(job: Job, now: float, grace: float = 0.0) -> Job | None:
    """A running job whose lease ended more than `grace` seconds before `now`, interrupted (or cancelled)."""
    if job.state is JobState.RUNNING and job.lease_until is not None and job.lease_until + grace < now:
        return job.lapse(now)
    return None


def requeued(job: Job, fence: int | None = None) -> Job | None:
    """An interrupted job queued again; with `fence`, only while no claim has moved the token past it."""
    if job.state is not JobState.INTERRUPTED or job.cancel_requested or (fence is not None and job.fence != fence):
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

    async def renew(self, job_id: str, worker: str, lease_until: float, progress: JobProgress, *,
                    fence: int) -> Job | None:
        return await self._change(job_id, lambda j: renewed(j, worker, fence, lease_until, progress))

    async def finish(self, job_id: str, worker: str, state: JobState, now: float, *, fence: int,
                     progress: JobProgress, result: dict[str, Any] | None = None,
                     error: JobError | None = None) -> Job | None:
        return await self._change(job_id, lambda j: ended(j, worker, fence, state, now, progress, result, error))

    async def requeue(self, job_id: str, *, fence: int | None = None) -> Job | None:
        return await self._change(job_id, lambda j: requeued(j, fence))

    async def cancel(self, job_id: str, now: float) -> Job | None:
        return await self._change(job_id, lambda j: cancelled(j, now))
