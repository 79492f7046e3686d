"""Jobs: long work that outlives the request. `Jobs` starts, lists, cancels and waits for jobs in the job store;
`JobRunner` runs the store's queued jobs in this process (at most `workers` at once), under a lease it renews
with the job's progress, so that every worker sharing the store sees them and a job runs exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Awaitable, Callable, Mapping

from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import NotFound
from zfsapi.domain.jobs import Job, JobError, JobOwner, JobState, ProgressMeter

from .ports import JobStore

log = logging.getLogger("zfsapi.jobs")

# What a job kind runs: the job (its params and owner) and the meter it reports to -> its result.
JobWork = Callable[[Job, ProgressMeter], Awaitable[dict[str, Any]]]
Describe = Callable[[BaseException], JobError]

POLL = 0.5  # seconds between store reads while waiting for a change (job_wait, events, queued work)
MAX_WAIT = 300.0


def _internal(exc: BaseException) -> JobError:
    return JobError(-32603, "Internal error")


class Jobs:
    """Start, find, cancel and wait for jobs. Callers see their own jobs (admins: every job), and only jobs on
    datasets their scope covers."""

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self.submitted = asyncio.Event()  # set on every submit: wakes this process's runner at once
        self.closing = asyncio.Event()  # set when the server shuts down: long polls and event streams end first

    async def submit(self, kind: str, who: Principal, params: dict[str, Any], datasets: tuple[str, ...]) -> Job:
        job = Job(job_id=secrets.token_hex(16), kind=kind, owner=JobOwner.of(who), params=params,
                  datasets=datasets, created_at=self._clock())
        await self._store.add(job)
        self.submitted.set()
        log.info("job queued", extra={"job_id": job.job_id, "kind": kind, "user": who.name})
        return job

    async def check_store(self) -> None:
        """Read the job store once (for /health). Raises ServiceUnavailable when it cannot be used."""
        await self._store.get("health-check")

    async def get(self, who: Principal, job_id: str) -> Job:
        job = await self._store.get(job_id)
        if job is None or not job.visible_to(who):
            raise NotFound("job", job_id)
        return job

    async def list(self, who: Principal, *, state: JobState | None = None, kind: str | None = None,
                   limit: int = 100, offset: int = 0) -> tuple[list[Job], int]:
        """Newest first, the page and the total visible to `who`."""
        owner = None if who.role is Role.ADMIN else who.name
        if who.unrestricted:
            return await self._store.query(state=state, kind=kind, owner=owner, limit=limit, offset=offset)
        found, _ = await self._store.query(state=state, kind=kind, owner=owner, limit=1 << 30, offset=0)
        visible = [j for j in found if j.visible_to(who)]
        return visible[offset:offset + limit], len(visible)

    async def cancel(self, who: Principal, job_id: str) -> Job:
        """Cancel a queued job at once, or ask the worker running it to stop (it kills and reaps its children);
        a finished job stays as it is."""
        await self.get(who, job_id)
        job = await self._store.cancel(job_id, self._clock())
        if job is None:
            raise NotFound("job", job_id)
        log.info("job cancel", extra={"job_id": job_id, "user": who.name, "state": job.state.value})
        return job

    async def wait(self, who: Principal, job_id: str, timeout: float) -> Job:
        """The job once it has finished, or as it is when `timeout` seconds have passed."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT)
        job = await self.get(who, job_id)
        while not job.state.finished and time.monotonic() < deadline and not self.closing.is_set():
            with contextlib.suppress(TimeoutError):  # a shutdown answers at once, with the job as it is
                await asyncio.wait_for(self.closing.wait(), min(POLL, max(0.0, deadline - time.monotonic())))
            job = await self.get(who, job_id)
        return job

    async def watch(self, who: Principal, job_id: str) -> AsyncGenerator[Job, None]:
        """The job now, then on every change of state or progress, until it has finished."""
        job = await self.get(who, job_id)
        yield job
        last = job
        while not job.state.finished:
            await asyncio.sleep(POLL)
            job = await self.get(who, job_id)
            if (job.state, job.progress, job.cancel_requested) != (last.state, last.progress, last.cancel_requested):
                yield job
                last = job


@dataclass(slots=True)
class _Running:
    job: Job
    task: asyncio.Task[dict[str, Any]]
    meter: ProgressMeter
    cancelled: bool = False  # stopped on a cancel request (not because the lease was lost or we stop)


class JobRunner:
    """Runs queued jobs of the store in this process.

    Every `lease / 3` seconds it renews each running job's lease with its progress (a renewal that shows a
    cancel request cancels the job's task, whose children are killed and reaped), marks jobs whose lease lapsed
    (their server died) as interrupted and queues those of resumable kinds again, and purges finished jobs older
    than `retention`.
    """

    def __init__(self, store: JobStore, jobs: Jobs, *, kinds: Mapping[str, JobWork], workers: int = 4, lease: float = 30.0,
                 retention: float = 7 * 86400.0, resumable: frozenset[str] = frozenset(), max_attempts: int = 6,
                 describe: Describe = _internal, clock: Callable[[], float] = time.time,
                 ended: Callable[[str, str, int], None] | None = None) -> None:
        self._store, self._jobs = store, jobs
        self._workers, self._lease, self._retention = workers, lease, retention
        self._resumable, self._max_attempts = resumable, max_attempts
        self._describe, self._clock = describe, clock
        self._ended = ended  # (kind, end state, bytes moved) of each job run here, e.g. for a metrics counter
        self._kinds = dict(kinds)
        self._running: dict[str, _Running] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.worker_id = f"{secrets.token_hex(4)}"
        self._tick = max(0.2, min(2.0, lease / 3))

    @property
    def running(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="zfsapi-jobs")

    async def stop(self) -> None:
        """Stop claiming; the jobs running here are stopped (children reaped) and queued again when resumable,
        else marked interrupted."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        running = list(self._running.values())
        for r in running:
            r.task.cancel()
        await asyncio.gather(*(r.task for r in running), return_exceptions=True)
        for r in running:
            self._running.pop(r.job.job_id, None)
            done = await self._store.finish(r.job.job_id, self.worker_id, JobState.INTERRUPTED, self._clock(),
                                            progress=r.meter.read())
            if done is not None:
                await self._resume(done)

    async def _loop(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await self._renew()
                if time.monotonic() - last_sweep >= self._tick:
                    last_sweep = time.monotonic()
                    await self._sweep()
                await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is unreachable for a moment: try again on the next tick
                log.exception("job runner tick failed")
            self._jobs.submitted.clear()
            try:
                await asyncio.wait_for(self._jobs.submitted.wait(), timeout=min(self._tick, 1.0))
            except TimeoutError:
                pass

    async def _claim(self) -> None:
        while len(self._running) < self._workers:
            now = self._clock()
            job = await self._store.claim(self.worker_id, now, now + self._lease)
            if job is None:
                return
            work = self._kinds.get(job.kind)
            if work is None:
                await self._store.finish(job.job_id, self.worker_id, JobState.FAILED, self._clock(),
                                         progress=job.progress,
                                         error=JobError(-32601, f"no worker here runs jobs of kind {job.kind}"))
                continue
            meter = ProgressMeter()
            task = asyncio.ensure_future(work(job, meter))
            self._running[job.job_id] = _Running(job, task, meter)
            task.add_done_callback(self._wake)
            log.info("job started", extra={"job_id": job.job_id, "kind": job.kind, "attempt": job.attempts})

    def _wake(self, _task: object) -> None:
        self._jobs.submitted.set()

    async def _renew(self) -> None:
        for job_id, r in list(self._running.items()):
            if r.task.done():
                await self._finish(r)
                continue
            now = self._clock()
            stored = await self._store.renew(job_id, self.worker_id, now + self._lease, r.meter.read())
            if stored is None:  # the lease was lost (we stalled past it): another worker may resume it
                log.warning("job lease lost", extra={"job_id": job_id})
                r.task.cancel()
                await asyncio.gather(r.task, return_exceptions=True)
                self._running.pop(job_id, None)
            elif stored.cancel_requested and not r.cancelled:
                r.cancelled = True
                r.task.cancel()

    async def _finish(self, r: _Running) -> None:
        self._running.pop(r.job.job_id, None)
        progress = r.meter.read()
        result, error, state = None, None, JobState.SUCCEEDED
        if r.task.cancelled():
            state = JobState.CANCELLED
        elif (exc := r.task.exception()) is not None:
            state, error = JobState.FAILED, self._describe(exc)
        else:
            result = r.task.result()
        if state is JobState.CANCELLED and not r.cancelled:
            state = JobState.INTERRUPTED
        await self._store.finish(r.job.job_id, self.worker_id, state, self._clock(), progress=progress,
                                 result=result, error=error)
        if self._ended is not None:
            self._ended(r.job.kind, state.value, progress.bytes_done or 0)
        log.info("job finished", extra={"job_id": r.job.job_id, "kind": r.job.kind, "state": state.value,
                                        **({"code": error.code, "reason": error.message} if error else {})})

    async def _sweep(self) -> None:
        now = self._clock()
        for job in await self._store.interrupt_lapsed(now):
            log.warning("job interrupted (its worker stopped renewing)", extra={"job_id": job.job_id})
            await self._resume(job)
        if self._retention:
            await self._store.purge(now - self._retention)

    async def _resume(self, job: Job) -> None:
        if job.state is JobState.INTERRUPTED and job.kind in self._resumable and job.attempts < self._max_attempts:
            if await self._store.requeue(job.job_id) is not None:
                log.info("job queued to resume", extra={"job_id": job.job_id, "attempt": job.attempts + 1})
                self._jobs.submitted.set()
