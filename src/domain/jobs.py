"""Jobs: long operations (transfers, replication, scrubs) that outlive the request that started them.

A job is a record in the job store: queued until a worker claims it (a lease the worker renews), running while
leased, and finished as succeeded, failed or cancelled. A running job whose lease lapses (its server died) is
interrupted, and queued again where it can resume. Progress comes from a meter the running work feeds with the
bytes it actually moved."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Literal

from .authz import Principal, Role

# How a job's owner called: with a token (a user of auth.users), as a local user without one (auth.local_users),
# or as a program embedding zfsapi (its own principal, in no configuration). None: a record from before.
Origin = Literal["token", "local", "embedded"]


class JobState(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})
ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})


@dataclass(frozen=True, slots=True)
class JobProgress:
    phase: str | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    rate_bytes_per_s: float | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job failed: `error` names the domain error (its type, e.g. "PermissionDenied", "NotFound"; an
    unexpected one is "InternalError"), with the message and data a call would have got. How a protocol numbers
    it is the inbound adapter's business. `code`: what records of earlier versions hold instead of `error`, the
    number their adapter answered with (rendered as it is)."""

    message: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    code: int | None = None


UNKNOWN_KIND = "UnknownJobKind"  # JobError.error of a job whose kind no worker here runs


@dataclass(frozen=True, slots=True)
class JobOwner:
    """Who started the job: the caller's name, role and dataset scope then, and where that caller is configured
    (`origin`). A job runs with its owner's rights as they are when it starts, not as recorded here."""

    name: str
    role: str
    prefixes: tuple[str, ...] = ()
    origin: Origin | None = None

    @classmethod
    def of(cls, who: Principal, origin: Origin | None = None) -> JobOwner:
        """`origin` defaults to what the principal shows: a token's user, else a local user."""
        return cls(who.name, who.role.value, who.prefixes,
                   origin or ("token" if who.token_id is not None else "local"))

    def principal(self) -> Principal:
        return Principal(self.name, Role(self.role), self.prefixes)


@dataclass(frozen=True, slots=True)
class Job:
    """One job record. `params`: its kind's spec, encoded once when it was submitted (the params of the call that
    started it; the job reruns from them, as its kind decodes them);
    `datasets` are the names the job touches, pools included (who may see it; a pool is named as its root dataset
    is, so only a scope holding the whole pool covers a pool-level job); `lease_*`, `cancel_requested`,
    `attempts` and `fence` are the store's bookkeeping."""

    job_id: str
    kind: str  # the method that runs it: "send_to_file", "migration_create", ...
    owner: JobOwner
    params: dict[str, Any]
    datasets: tuple[str, ...]
    created_at: float
    state: JobState = JobState.QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    progress: JobProgress = JobProgress()
    result: dict[str, Any] | None = None
    error: JobError | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    cancel_requested: bool = False
    attempts: int = 0  # how many times a worker has claimed it
    fence: int = 0  # the fencing token: grows on every claim; a holder's writes carry the one its claim got

    @property
    def active(self) -> bool:
        """Queued or running: what counts against its owner's bound."""
        return self.state in ACTIVE

    def visible_to(self, who: Principal) -> bool:
        """Its owner sees it; an admin sees every job on names in its scope; nobody sees a job touching a dataset
        or pool outside its own scope. A job that records no names (a record from before pools were recorded)
        is seen by its owner and by unrestricted admins only."""
        if not all(who.covers(name) for name in self.datasets):
            return False
        if who.name == self.owner.name:
            return True
        return who.role is Role.ADMIN and (bool(self.datasets) or who.unrestricted)

    def lapse(self, now: float) -> Job:
        """Its worker stopped renewing the lease (its server died): interrupted, or cancelled if asked to be."""
        return self.finish(JobState.CANCELLED if self.cancel_requested else JobState.INTERRUPTED, now)

    def finish(self, state: JobState, now: float, *, result: dict[str, Any] | None = None,
               error: JobError | None = None) -> Job:
        return replace(self, state=state, finished_at=now, result=result, error=error, lease_owner=None,
                       lease_until=None)


class ProgressMeter:
    """What running work reports: its phase, the bytes it expects and the bytes it moved (`add` may be called
    from any thread). `read()` gives the record's progress with a moving rate over the last `window` seconds and
    the ETA it implies."""

    def __init__(self, *, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._window = window
        self._phase: str | None = None
        self._done = 0
        self._total: int | None = None
        self._started = False
        self._samples: deque[tuple[float, int]] = deque()
        self._probe: Callable[[], int] | None = None

    def follow(self, probe: Callable[[], int] | None) -> None:
        """Read the bytes done from `probe` on every `read()` (work whose bytes a counter elsewhere holds, e.g. a
        file offset); None takes a last reading and stops (call it before whatever the probe reads goes away)."""
        with self._lock:
            self._probed()
            self._probe = probe

    def _probed(self) -> None:
        if self._probe is not None:
            try:
                self._add_locked(self._probe() - self._done)
            except OSError:
                pass

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name

    def expect(self, total: int | None) -> None:
        """The bytes the work will move (a send estimate); None when unknown."""
        with self._lock:
            self._total = total

    def add(self, nbytes: int) -> None:
        with self._lock:
            self._add_locked(nbytes)

    def _add_locked(self, nbytes: int) -> None:
        if not self._started:
            self._started = True
            self._samples.append((self._clock(), self._done))
        self._done += nbytes

    def reach(self, done: int) -> None:
        """The work has moved `done` bytes in all (work that reads a counter rather than counting chunks)."""
        with self._lock:
            self._add_locked(done - self._done)

    def restart(self, done: int = 0) -> None:
        """Start counting again from `done` (a transfer resumed where the receiver's token says)."""
        with self._lock:
            self._done, self._started = done, False
            self._samples.clear()

    @property
    def bytes_done(self) -> int:
        return self._done

    def read(self) -> JobProgress:
        with self._lock:
            self._probed()
            now = self._clock()
            rate = None
            if self._started:
                self._samples.append((now, self._done))
                while len(self._samples) > 2 and now - self._samples[1][0] >= self._window:
                    self._samples.popleft()
                t0, b0 = self._samples[0]
                if now > t0:
                    rate = (self._done - b0) / (now - t0)
            eta = None
            if rate and self._total is not None:
                eta = max(0.0, (self._total - self._done) / rate)
            done = self._done if self._started or self._done else None
            return JobProgress(self._phase, done, self._total, rate, eta)
