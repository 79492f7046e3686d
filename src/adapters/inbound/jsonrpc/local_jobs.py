"""Jobs for programs that embed zfsapi: start any long call (a background-capable method or a migration) as a
job with the same params, checks and records as over HTTP, then await it, follow its progress or cancel it."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

import msgspec

from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.domain.authz import LOCALHOST, Principal
from zfsapi.domain.errors import InvalidArgument, ZfsApiError
from zfsapi.domain.jobs import Job, JobProgress, JobState

from .access import require_permission
from .dispatcher import param_error
from .errors import RpcError
from .job_methods import error_code, submit
from .registry import CallContext, Registry


class JobFailed(ZfsApiError):
    """The job ended without success: its state and its error as a call would have got it."""

    def __init__(self, job: Job) -> None:
        self.job = job
        error = job.error
        self.code = None if error is None else error_code(error)
        self.data = {} if error is None else error.data
        super().__init__(f"job {job.job_id} {job.state.value}" + (f": {error.message}" if error else ""))


class LocalJobs:
    """`async with open_jobs() as jobs:` runs this process's job runner for the block::

        job = await jobs.start("migration_create", source="tank/a@s1", destination="backup/a")
        async for record in jobs.follow(job.job_id):
            print(record.progress.bytes_done, record.progress.eta_seconds)
        result = await jobs.result(job.job_id)      # the call's result, or JobFailed
    """

    def __init__(self, registry: Registry, jobs: Jobs, runner: JobRunner, *, who: Principal = LOCALHOST) -> None:
        self._registry, self._jobs, self._runner, self._who = registry, jobs, runner, who

    async def __aenter__(self) -> LocalJobs:
        await self._runner.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.stop()

    async def start(self, method: str, /, **params: Any) -> Job:
        """Queue `method` (send_to_file, receive_from_file, pool_scrub_start, migration_create) as a job.
        Raises InvalidArgument for unknown methods and bad params, PermissionDenied as a call would."""
        m = self._registry.get(method)
        if m is None or not (m.background or method == "migration_create"):
            raise InvalidArgument("method", f"{method!r} does not run as a job")
        try:
            args = msgspec.convert({**params, "background": True}, m.params, strict=True)
        except msgspec.ValidationError as exc:
            raise _invalid(param_error(exc)) from None
        ctx = CallContext(request_id="local", peer="local", principal=self._who, via="embedded")
        await require_permission(m, args, ctx)
        answer = await (submit(self._jobs, m, args, ctx) if m.background else m.handler(args, ctx))
        return await self._jobs.get(self._who, answer.job_id)

    async def get(self, job_id: str) -> Job:
        return await self._jobs.get(self._who, job_id)

    async def cancel(self, job_id: str) -> Job:
        return await self._jobs.cancel(self._who, job_id)

    async def wait(self, job_id: str, timeout: float = 300.0) -> Job:
        return await self._jobs.wait(self._who, job_id, timeout)

    async def follow(self, job_id: str,
                     on_progress: Callable[[JobProgress], None] | None = None) -> AsyncIterator[Job]:
        """The record now and on every change until the job ends (`on_progress` gets each progress too)."""
        async for job in self._jobs.watch(self._who, job_id):
            if on_progress is not None:
                on_progress(job.progress)
            yield job

    async def result(self, job_id: str, on_progress: Callable[[JobProgress], None] | None = None) -> dict[str, Any]:
        """Wait for the job to end: its result, or JobFailed."""
        last = None
        async for last in self.follow(job_id, on_progress):
            pass
        assert last is not None
        if last.state is not JobState.SUCCEEDED or last.result is None:
            raise JobFailed(last)
        return last.result


def _invalid(error: RpcError) -> InvalidArgument:
    data = error.data or {}
    return InvalidArgument(str(data.get("param", "params")), str(data.get("reason", error.message)))
