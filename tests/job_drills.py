"""What the fencing and outcome drills share (tests/unit/test_job_fencing.py over the memory and embedded stores,
tests/faults/test_fencing.py and test_outcomes.py over real Redis): job work with a real child process, a store
whose calls one runner can have stall or fail, and a sampler that proves no two holders' children live at once."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Awaitable, Callable, Mapping

from zfsapi.application.job_kinds import JobContext, JobKind, JobKinds
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import Job, ProgressMeter

CHILD = [sys.executable, "-c", "import time; time.sleep(600)"]
Work = Callable[[Job, ProgressMeter], Awaitable[dict[str, Any]]]


def toy_kinds(works: Mapping[str, Work], resumable: frozenset[str] = frozenset()) -> JobKinds:
    """Job kinds for tests: the spec is the params dict, and each work takes the job's record (as it was claimed,
    the owner with the rights they have now) and its meter."""
    def row(name: str, work: Work) -> JobKind[dict[str, Any]]:
        async def run(spec: dict[str, Any], ctx: JobContext, meter: ProgressMeter) -> dict[str, Any]:
            return await work(ctx.job, meter)
        return JobKind(name, dict, run, resumable=name in resumable)

    return JobKinds(row(name, work) for name, work in works.items())


class ChildWork:
    """A job kind whose run keeps one real child process alive until its gate opens (then it ends it and answers)
    or its task is cancelled (then it kills and reaps it first, as the zfs pipelines do)."""

    def __init__(self) -> None:
        self.alive: dict[int, str] = {}  # pid -> the worker whose run started it, while not reaped
        self.started: list[tuple[str, int]] = []  # (job id, fence) of each run
        self.gate = asyncio.Event()
        self.peak = 0  # the most children alive at once
        self.pad = ""  # added to each result (a big one needs pages a full file does not have)

    def kind(self, worker: str) -> Any:
        async def work(job: Job, meter: ProgressMeter) -> dict[str, Any]:
            proc = await asyncio.create_subprocess_exec(*CHILD)
            self.alive[proc.pid] = worker
            self.peak = max(self.peak, len(self.alive))
            self.started.append((job.job_id, job.fence))
            meter.phase("sending")
            meter.add(1)
            try:
                await self.gate.wait()
                return {"fence": job.fence, "worker": worker, **({"pad": self.pad} if self.pad else {})}
            finally:
                proc.kill()
                await proc.wait()
                del self.alive[proc.pid]
        return work

    def holders(self) -> set[str]:
        """The workers with a child alive now (checked with the kernel too: a pid not reaped still exists)."""
        return {w for pid, w in list(self.alive.items()) if os.path.exists(f"/proc/{pid}")}


class Sampler:
    """Samples `ChildWork.holders()` every few ms in the background; `most` is the largest set seen."""

    def __init__(self, work: ChildWork) -> None:
        self.work = work
        self.most: set[str] = set()
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            seen = self.work.holders()
            self.samples += 1
            if len(seen) > len(self.most):
                self.most = seen
            await asyncio.sleep(0.005)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


class Faulty:
    """A job store as one runner sees it: `stall` makes its renewals wait (a process stopped past its lease),
    `down` makes every call fail as an unreachable store does; the calls refused are counted."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.stall = asyncio.Event()
        self.stall.set()  # set: no stall
        self.down = False
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if name == "renew":
                await self.stall.wait()
            if self.down:
                self.refused.append(name)
                raise ServiceUnavailable("job store", "ConnectionError")
            return await real(*args, **kwargs)
        return call


def runner(store: Any, work: ChildWork, name: str, *, lease: float = 1.0, grace: float = 0.5) -> tuple[Jobs, JobRunner]:
    jobs = Jobs(store)
    return jobs, JobRunner(store, jobs, kinds=toy_kinds({"copy": work.kind(name)}, frozenset({"copy"})),
                           lease=lease, grace=grace)
