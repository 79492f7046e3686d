"""Jobs: long work that outlives the request. `Jobs` starts, lists, cancels and waits for jobs in the job store;
`JobRunner` runs the store's queued jobs in this process (at most `workers` at once), each by its kind's row
(see job_kinds), under a lease it renews with the job's progress, so that every worker sharing the store sees
them and a job runs exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncGenerator, Callable, Mapping, Protocol

from zfsapi.domain.authz import AccessRequest, Principal, Role, authorize
from zfsapi.domain.errors import NotFound, PermissionDenied
from zfsapi.domain.jobs import (
    UNKNOWN_KIND,
    Job,
    JobError,
    JobOwner,
    JobProgress,
    JobState,
    Origin,
    ProgressMeter,
)

from .job_kinds import JobKinds
from .ports import JobStore

log = logging.getLogger("zfsapi.jobs")

# A failure as a job's record keeps it: the domain error's type, message and data (see JobError).
Describe = Callable[[BaseException], JobError]
# What a job asks of its owner's rights, as the dispatcher checks the call it runs (method, action, names...).
JobAccess = Callable[[Job], AccessRequest]

POLL = 0.5  # seconds between store reads while waiting for a change (job_wait, events, queued work)
MAX_WAIT = 300.0


def _internal(exc: BaseException) -> JobError:
    return JobError("Internal error")


class JobOwners(Protocol):
    """Who a job's owner is now: users and local users as the running configuration has them (reloaded)."""

    def current(self, owner: JobOwner) -> Principal | None:
        """The owner with its current role and scope, or None when it is no longer configured."""
        ...


def rights_now(owners: JobOwners, access: JobAccess, job: Job) -> Job:
    """The job as its owner may run it now: with the owner's current role and scope, checked by the same
    `authorize` as a call. Raises PermissionDenied naming why: "owner removed", "role" (the current role no
    longer allows the job) or "scope narrowed" (a name the job touches is outside the owner's scope now)."""
    who = owners.current(job.owner)
    if who is None:
        raise PermissionDenied(job.kind, None, f"owner removed: {job.owner.name} is no longer configured")
    request = access(job)
    try:
        authorize(replace(who, prefixes=()), request)
    except PermissionDenied as exc:
        raise PermissionDenied(job.kind, exc.dataset, f"role: {job.owner.name} is {who.role.value} now "
                                                      f"(was {job.owner.role}): {exc.reason}") from None
    try:
        authorize(who, request)
    except PermissionDenied as exc:
        raise PermissionDenied(job.kind, exc.dataset, f"scope narrowed: {exc.dataset} is {exc.reason} now") from None
    return replace(job, owner=JobOwner.of(who, job.owner.origin))


class Jobs:
    """Start, find, cancel and wait for jobs. Callers see their own jobs (admins: every job), and only jobs on
    datasets their scope covers."""

    def __init__(self, store: JobStore, *, clock: Callable[[], float] = time.time,
                 max_per_owner: int | None = None) -> None:
        self._store = store
        self._clock = clock
        self._max_per_owner = max_per_owner  # queued + running jobs per owner (None: no bound)
        self.submitted = asyncio.Event()  # set on every submit: wakes this process's runner at once
        self.closing = asyncio.Event()  # set when the server shuts down: long polls and event streams end first

    async def submit(self, kind: str, who: Principal, spec: Mapping[str, Any], datasets: tuple[str, ...], *,
                     origin: Origin | None = None) -> Job:
        """Queue a job of `kind` whose spec is `spec` as encoded once by the caller (the kind's row decodes it when
        the job runs). `datasets`: every name it touches, pools included; `origin`: where its owner is configured
        (default: a token's user, else a local user).

        Raises:
            TooManyJobs: the caller has `max_per_owner` jobs queued or running already."""
        job = Job(job_id=secrets.token_hex(16), kind=kind, owner=JobOwner.of(who, origin), params=dict(spec),
                  datasets=datasets, created_at=self._clock())
        await self._store.add(job, max_per_owner=self._max_per_owner)
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
        found, _ = await self._store.query(state=state, kind=kind, owner=owner, scope=who.prefixes, limit=1 << 30,
                                           offset=0)  # the scope's candidates only (an index), then the check
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
    job: Job  # as claimed: its fence is the token of this run's writes
    task: asyncio.Task[dict[str, Any]]
    meter: ProgressMeter
    renewed: float  # monotonic time just before the last claim or renewal the store took: the lease holds till
    #                 renewed + lease here (the store's clock may say a little later; the others wait a grace more)
    cancelled: bool = False  # stopped on a cancel request (not because the lease was lost or we stop)
    fenced: bool = False  # the lease is lost: children killed, nothing more written


@dataclass(slots=True)
class _Outcome:
    """A job's end, kept here until the store has taken it (the store may be unreachable for a while)."""

    job: Job
    state: JobState
    finished_at: float
    progress: JobProgress
    result: dict[str, Any] | None
    error: JobError | None
    tries: int = 0
    next_try: float = 0.0  # monotonic


class _Outcomes:
    """The ends of jobs run here, written to the store with backoff until it takes them."""

    def __init__(self, store: JobStore, worker_id: str) -> None:
        self._store, self._worker_id = store, worker_id
        self.pending: dict[str, _Outcome] = {}

    def keep(self, outcome: _Outcome) -> None:
        self.pending[outcome.job.job_id] = outcome

    async def flush(self, *, force: bool = False) -> list[Job]:
        """Write the outcomes that are due (one the store cannot take now is tried again later, with backoff);
        the jobs the store recorded as interrupted (to queue again when resumable)."""
        interrupted = []
        for job_id, o in list(self.pending.items()):
            if not force and o.next_try > time.monotonic():
                continue
            try:
                stored = await self._store.finish(job_id, self._worker_id, o.state, o.finished_at,
                                                  fence=o.job.fence, progress=o.progress, result=o.result,
                                                  error=o.error)
            except Exception as exc:
                o.tries += 1
                o.next_try = time.monotonic() + min(30.0, 0.25 * 2 ** o.tries)
                log.warning("job outcome not recorded yet", extra={"job_id": job_id, "state": o.state.value,
                                                                   "tries": o.tries, "reason": str(exc)})
                continue
            del self.pending[job_id]
            _log_end(o, stored)
            if stored is not None and stored.state is JobState.INTERRUPTED:
                interrupted.append(stored)
        return interrupted


def _log_end(o: _Outcome, stored: Job | None) -> None:
    error = o.error
    extra = {"job_id": o.job.job_id, "kind": o.job.kind, "state": o.state.value, "fence": o.job.fence,
             **({"error": error.error, "reason": error.message} if error else {})}
    if stored is None:
        log.warning("job outcome refused: the job was claimed again since, or lapsed", extra=extra)
    else:
        log.info("job finished", extra=extra)


class _Requeue:
    """Interrupted jobs of resumable kinds queued again (at most `max_attempts` runs in all): at once, or `grace`
    seconds after their lease lapsed, so that a holder that finished while the store was away has that long to
    write its success before another run starts."""

    def __init__(self, store: JobStore, jobs: Jobs, resumable: frozenset[str], max_attempts: int,
                 grace: float) -> None:
        self._store, self._jobs, self._resumable = store, jobs, resumable
        self._max_attempts, self._grace = max_attempts, grace
        self._due: dict[str, tuple[Job, float]] = {}  # lapsed jobs to queue again at (monotonic) time

    def later(self, job: Job) -> None:
        self._due[job.job_id] = (job, time.monotonic() + self._grace)

    async def due(self, *, everything: bool = False) -> None:
        """Queue the jobs whose grace has passed (`everything`: all of them now, nobody here will be back)."""
        for job_id, (job, due) in list(self._due.items()):
            if everything or due <= time.monotonic():
                del self._due[job_id]
                await asyncio.gather(self.now(job), return_exceptions=everything)

    async def now(self, job: Job) -> None:
        if job.state is JobState.INTERRUPTED and job.kind in self._resumable and job.attempts < self._max_attempts:
            if await self._store.requeue(job.job_id, fence=job.fence) is not None:
                log.info("job queued to resume", extra={"job_id": job.job_id, "attempt": job.attempts + 1})
                self._jobs.submitted.set()


class JobRunner:
    """Runs queued jobs of the store in this process, each by its kind's row in `kinds`.

    Every `lease / 3` seconds it renews each running job's lease with its progress (a renewal that shows a
    cancel request cancels the job's task, whose children are killed and reaped), marks jobs whose lease lapsed
    more than `grace` seconds ago (their server died) as interrupted and queues those of resumable kinds again,
    and purges finished jobs older than `retention`.

    Fencing: each claim gives the job a new token, and every write of this runner carries the one its claim got.
    A job whose renewal is refused (another worker claimed it) or whose lease ran out here without a renewal the
    store took (a stall, the store away) is fenced: its task is cancelled and its children reaped before anything
    else, and nothing more is written for it. A watchdog task does the second even while the loop waits on the
    store. Since other workers take a lapsed job only `grace` seconds after its lease ended, the children of two
    holders never run at once while clocks agree within `grace` (a process stopped outside its own control, e.g.
    SIGSTOP, kills its children the moment it runs again).

    Outcomes: a job's end is kept in memory and written with backoff until the store takes it; a success written
    after the lease lapsed still counts while nobody claimed the job since (the store's rule).
    """

    def __init__(self, store: JobStore, jobs: Jobs, *, kinds: JobKinds, workers: int = 4, lease: float = 30.0,
                 retention: float = 7 * 86400.0, max_attempts: int = 6, describe: Describe = _internal,
                 clock: Callable[[], float] = time.time, ended: Callable[[str, str, int], None] | None = None,
                 grace: float | None = None, owners: JobOwners | None = None) -> None:
        self._store, self._jobs, self._kinds = store, jobs, kinds
        self._workers, self._lease, self._retention = workers, lease, retention
        self._grace = lease / 2 if grace is None else grace
        self._describe, self._clock = describe, clock
        self._ended = ended  # (kind, end state, bytes moved) of each job run here, e.g. for a metrics counter
        self._owners = owners  # None: jobs run with the rights recorded at submit
        self._running: dict[str, _Running] = {}
        self._requeue = _Requeue(store, jobs, kinds.resumable, max_attempts, self._grace)
        self._reachable = True  # the store answered the last tick
        self._tasks: tuple[asyncio.Task[None], ...] = ()  # the loop and the watchdog
        self.worker_id = f"{secrets.token_hex(4)}"
        self._outcomes = _Outcomes(store, self.worker_id)
        self._tick = max(0.2, min(2.0, lease / 3))

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def unwritten(self) -> int:
        """Outcomes the store has not taken yet."""
        return len(self._outcomes.pending)

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = (asyncio.create_task(self._loop(), name="zfsapi-jobs"),
                           asyncio.create_task(self._watch(), name="zfsapi-jobs-watchdog"))

    async def stop(self) -> None:
        """Stop claiming; the jobs running here are stopped (children reaped) and queued again when resumable,
        else marked interrupted; outcomes not yet written get one more try (then they are logged, and lost)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = ()
        running = list(self._running.values())
        for r in running:
            r.task.cancel()
        await asyncio.gather(*(r.task for r in running), return_exceptions=True)
        for r in running:
            self._running.pop(r.job.job_id, None)
            self._keep(r, JobState.INTERRUPTED, None, None)
        await self._flush(force=True)
        await self._requeue.due(everything=True)
        for o in self._outcomes.pending.values():
            log.error("job outcome not recorded (job store unreachable)",
                      extra={"job_id": o.job.job_id, "state": o.state.value})

    async def _loop(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await self._renew()
                await self._flush()
                if time.monotonic() - last_sweep >= self._tick:
                    last_sweep = time.monotonic()
                    await self._sweep()
                    if not self._reachable:  # the store is back: our outcomes first, before others claim
                        self._reachable = True
                        await self._flush(force=True)
                await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is unreachable for a moment: try again on the next tick
                self._reachable = False
                log.exception("job runner tick failed")
            self._jobs.submitted.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._jobs.submitted.wait(), timeout=min(self._tick, 1.0))

    async def _watch(self) -> None:
        """Fence every job whose lease ran out here, whatever the loop is waiting for."""
        while True:
            now = time.monotonic()
            for r in list(self._running.values()):
                if not r.task.done() and now - r.renewed >= self._lease:
                    log.warning("job lease ran out without a renewal", extra={"job_id": r.job.job_id})
                    await self._fence(r)
            await asyncio.sleep(min(self._tick, 0.25))

    async def _fence(self, r: _Running) -> None:
        """The lease is lost: kill and reap the job's children (cancel its task and wait), then forget it."""
        if r.fenced:
            return
        r.fenced = True
        r.task.cancel()
        await asyncio.gather(r.task, return_exceptions=True)
        if self._running.get(r.job.job_id) is r:
            del self._running[r.job.job_id]
        log.warning("job fenced: children stopped, nothing more written", extra={"job_id": r.job.job_id})

    async def _claim(self) -> None:
        while len(self._running) < self._workers:
            now, mono = self._clock(), time.monotonic()
            job = await self._store.claim(self.worker_id, now, now + self._lease)
            if job is None:
                return
            if (job := await self._admit(job)) is None:
                continue
            meter = ProgressMeter()
            task = asyncio.ensure_future(self._kinds[job.kind].start(job, meter))
            self._running[job.job_id] = _Running(job, task, meter, mono)
            task.add_done_callback(self._wake)
            log.info("job started", extra={"job_id": job.job_id, "kind": job.kind, "attempt": job.attempts,
                                           "fence": job.fence})

    async def _admit(self, job: Job) -> Job | None:
        """The claimed job with its owner's rights now (a resumed job is checked again too); None when it may not
        run: then it has failed, and nothing ran. It fails when no worker here runs its kind (UNKNOWN_KIND), or
        when its owner lost the right to run it (the refusal naming why)."""
        kind = self._kinds.get(job.kind)
        if kind is None:
            error = JobError(f"no worker here runs jobs of kind {job.kind}", error=UNKNOWN_KIND)
        elif self._owners is None:
            return job
        else:
            try:
                return rights_now(self._owners, kind.request, job)
            except PermissionDenied as exc:
                error = self._describe(exc)
                log.warning("job refused at start", extra={"job_id": job.job_id, "kind": job.kind,
                                                            "user": job.owner.name, "reason": exc.reason})
        await self._store.finish(job.job_id, self.worker_id, JobState.FAILED, self._clock(), fence=job.fence,
                                 progress=job.progress, error=error)
        if self._ended is not None and kind is not None:
            self._ended(job.kind, JobState.FAILED.value, 0)
        return None

    def _wake(self, _task: object) -> None:
        self._jobs.submitted.set()

    async def _renew(self) -> None:
        for r in list(self._running.values()):
            if r.fenced:
                continue
            if r.task.done():
                self._done(r)
                continue
            now, mono = self._clock(), time.monotonic()
            try:
                stored = await self._store.renew(r.job.job_id, self.worker_id, now + self._lease, r.meter.read(),
                                                 fence=r.job.fence)
            except Exception as exc:  # the store is away: the watchdog fences the job if it stays away too long
                self._reachable = False
                log.warning("job lease not renewed", extra={"job_id": r.job.job_id, "reason": str(exc)})
                continue
            if r.fenced:
                continue
            if stored is None:  # another worker claimed it, or it lapsed (we stalled past it): fenced
                log.warning("job lease lost", extra={"job_id": r.job.job_id})
                await self._fence(r)
                continue
            r.renewed = max(r.renewed, mono)
            if stored.cancel_requested and not r.cancelled:
                r.cancelled = True
                r.task.cancel()

    def _done(self, r: _Running) -> None:
        """The job's task has ended: its outcome, kept until written."""
        self._running.pop(r.job.job_id, None)
        result, error, state = None, None, JobState.SUCCEEDED
        if r.task.cancelled():
            state = JobState.CANCELLED if r.cancelled else JobState.INTERRUPTED
        elif (exc := r.task.exception()) is not None:
            state, error = JobState.FAILED, self._describe(exc)
        else:
            result = r.task.result()
        progress = self._keep(r, state, result, error).progress
        if self._ended is not None:
            self._ended(r.job.kind, state.value, progress.bytes_done or 0)

    def _keep(self, r: _Running, state: JobState, result: dict[str, Any] | None,
              error: JobError | None) -> _Outcome:
        outcome = _Outcome(r.job, state, self._clock(), r.meter.read(), result, error)
        self._outcomes.keep(outcome)
        return outcome

    async def _flush(self, *, force: bool = False) -> None:
        for job in await self._outcomes.flush(force=force):
            await self._requeue.now(job)

    async def _sweep(self) -> None:
        """Lapsed jobs become interrupted (resumable ones are queued again after the grace); old ones purged."""
        now = self._clock()
        for job in await self._store.interrupt_lapsed(now, grace=self._grace):
            log.warning("job interrupted (its worker stopped renewing)", extra={"job_id": job.job_id})
            self._requeue.later(job)
        await self._requeue.due()
        if self._retention:
            await self._store.purge(now - self._retention)
