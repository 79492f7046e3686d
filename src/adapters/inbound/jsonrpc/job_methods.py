"""Jobs on the wire: job_list, job_get, job_cancel, job_wait (one row each), `background: true` on the methods
that allow it (the call becomes a job of the method's kind, whose row runs the same handler), and a job's error
as a call would have got it (its JSON-RPC code added here, where the record is rendered)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from zfsapi.application.job_kinds import JobContext, JobKind
from zfsapi.application.jobs import Jobs
from zfsapi.domain.authz import AccessRequest, Action
from zfsapi.domain.errors import NotFound, ZfsApiError
from zfsapi.domain.jobs import (
    UNKNOWN_KIND,
    Job,
    JobError,
    JobState,
    Origin,
    ProgressMeter,
)

from .access import access_request
from .errors import INTERNAL_ERROR, METHOD_NOT_FOUND, RpcError, code_of, to_rpc_error
from .method_common import iso
from .registry import (
    ID_PATTERN,
    MAX_OFFSET,
    CallContext,
    JobStarted,
    Method,
    Params,
    Registry,
    Result,
    Table,
)

JOBS = Table()

JobId = Annotated[str, Meta(min_length=1, max_length=64, pattern=ID_PATTERN,
                            description="The job's id, as the call that started it answered.")]
StateName = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class ProgressOut(msgspec.Struct, frozen=True, kw_only=True):
    phase: str | None
    bytes_done: int | None
    bytes_total: int | None
    rate_bytes_per_s: float | None
    eta_seconds: float | None


class ErrorOut(msgspec.Struct, frozen=True, kw_only=True):
    code: int
    message: str
    data: dict[str, Any]


class JobRecord(Result, frozen=True, kw_only=True):
    job_id: str
    kind: str
    state: StateName
    owner: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    params: dict[str, Any]
    progress: ProgressOut
    result: dict[str, Any] | None
    error: ErrorOut | None
    cancel_requested: bool
    attempts: int


def record(job: Job) -> JobRecord:
    p, e = job.progress, job.error
    rate = None if p.rate_bytes_per_s is None else round(p.rate_bytes_per_s, 1)
    eta = None if p.eta_seconds is None else round(p.eta_seconds, 1)
    return JobRecord(
        job_id=job.job_id, kind=job.kind, state=job.state.value, owner=job.owner.name,
        created_at=iso(job.created_at), started_at=None if job.started_at is None else iso(job.started_at),
        finished_at=None if job.finished_at is None else iso(job.finished_at), params=job.params,
        progress=ProgressOut(phase=p.phase, bytes_done=p.bytes_done, bytes_total=p.bytes_total,
                             rate_bytes_per_s=rate, eta_seconds=eta),
        result=job.result, error=None if e is None else error_out(e),
        cancel_requested=job.cancel_requested, attempts=job.attempts)


class JobListParams(Params, frozen=True, forbid_unknown_fields=True):
    state: Annotated[StateName | None, Meta(description="Only jobs in this state.")] = None
    kind: Annotated[Annotated[str, Meta(max_length=64)] | None, Meta(
        description="Only jobs of this kind (the method that started them).")] = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, Meta(ge=0, le=MAX_OFFSET)] = 0


class JobListResult(Result, frozen=True, kw_only=True):
    jobs: list[JobRecord]
    total: int


@JOBS.method(Action.READ)
async def job_list(uc: Jobs, p: JobListParams, ctx: CallContext) -> JobListResult:
    """The caller's jobs (an admin's: every job in its scope), newest first."""
    jobs, total = await uc.list(ctx.caller, state=None if p.state is None else JobState(p.state), kind=p.kind,
                                limit=p.limit, offset=p.offset)
    return JobListResult(jobs=[record(j) for j in jobs], total=total)


class JobIdParams(Params, frozen=True, forbid_unknown_fields=True):
    job_id: JobId


@JOBS.method(Action.READ, errors=(NotFound,))
async def job_get(uc: Jobs, p: JobIdParams, ctx: CallContext) -> JobRecord:
    """One job's record: its state, progress (bytes, rate, ETA), result or error."""
    return record(await uc.get(ctx.caller, p.job_id))


class JobCancelResult(Result, frozen=True, kw_only=True):
    job_id: str
    cancelled: Literal[True] = True
    state: StateName


@JOBS.method(Action.CHANGE, errors=(NotFound,))
async def job_cancel(uc: Jobs, p: JobIdParams, ctx: CallContext) -> JobCancelResult:
    """Cancel a job: a queued one at once; a running one is stopped by the worker running it (its zfs processes
    killed and reaped; a resumable receive keeps its token). A finished job stays as it is."""
    job = await uc.cancel(ctx.caller, p.job_id)
    return JobCancelResult(job_id=job.job_id, state=job.state.value)


class JobWaitParams(Params, frozen=True, forbid_unknown_fields=True):
    job_id: JobId
    timeout: Annotated[float, Meta(ge=0, le=300, description="Seconds to wait at most.")] = 30.0


@JOBS.method(Action.READ, errors=(NotFound,))
async def job_wait(uc: Jobs, p: JobWaitParams, ctx: CallContext) -> JobRecord:
    """The job's record once it has finished, or when `timeout` seconds have passed (a long poll)."""
    return record(await uc.wait(ctx.caller, p.job_id, p.timeout))


def register_jobs(registry: Registry, jobs: Jobs) -> None:
    registry.include(JOBS, lambda _type: jobs)


def origin_of(ctx: CallContext) -> Origin | None:
    """Where the caller of a job-starting call is configured: a program embedding zfsapi is in no configuration
    (its jobs keep the principal it gave); otherwise the principal tells (a token's user, else a local user)."""
    return "embedded" if ctx.via == "embedded" else None


def touched(request: AccessRequest) -> tuple[str, ...]:
    """Every name a call touches, as its job records them: datasets, snapshots, bookmarks and pools."""
    return request.datasets + request.pools


async def submit(jobs: Jobs, method: Method, args: Any, ctx: CallContext) -> JobStarted:
    """`background: true`: queue the call as a job of its method's kind, with its params as converted (positional
    ones by name), and answer with the job's id. What the method checks before its work (its `check`) refuses
    the call now, not the job later."""
    if method.check is not None:
        await method.check(args, ctx)
    params = msgspec.to_builtins(msgspec.structs.replace(args, background=False))
    job = await jobs.submit(method.name, ctx.caller, params, touched(access_request(method, args)),
                            origin=origin_of(ctx))
    return JobStarted(job_id=job.job_id)


def method_kinds(registry: Registry) -> list[JobKind[Any]]:
    """A job kind for every background method: its params as the spec, its own handler as the work (run as the
    job's owner, reporting to the job's meter), its access request as the call's."""
    return [_kind(m) for m in registry if m.background]


def _kind(method: Method) -> JobKind[Any]:
    def decode(params: Any) -> Any:
        return msgspec.convert(params, method.params)

    async def run(args: Any, job: JobContext, meter: ProgressMeter) -> dict[str, Any]:
        ctx = CallContext(request_id=job.job.job_id, peer="job", principal=job.who, via="job", progress=meter,
                          job_id=job.job.job_id)
        result: dict[str, Any] = msgspec.to_builtins(await method.handler(args, ctx))
        return result

    def access(args: Any) -> AccessRequest:
        return access_request(method, args)

    return JobKind(method.name, decode, run, access, resumable=method.name in RESUMABLE)


RESUMABLE = frozenset({"send_to_file"})  # its work recognises the file an interrupted run wrote


def describe(exc: BaseException) -> JobError:
    """A job's failure as its record keeps it: the error's type, and the message and data a call would get."""
    error = to_rpc_error(exc, "job")
    if isinstance(exc, RpcError):  # already in wire form: its code kept, as records of before keep theirs
        return JobError(error.message, dict(error.data or {}), code=error.code)
    name = type(exc).__name__ if isinstance(exc, ZfsApiError) else "InternalError"
    return JobError(error.message, dict(error.data or {}), error=name)


def _error_types(root: type[BaseException]) -> dict[str, type[BaseException]]:
    found = {root.__name__: root}
    for sub in root.__subclasses__():
        found.update(_error_types(sub))
    return found


def error_code(error: JobError) -> int:
    """The JSON-RPC code of a job's error: the one a call failing with that error type gets (a record written by a
    version that stored the code keeps it)."""
    if error.code is not None:
        return error.code
    if error.error == UNKNOWN_KIND:
        return METHOD_NOT_FOUND
    found = _error_types(ZfsApiError).get(error.error or "")
    return INTERNAL_ERROR if found is None else code_of(found)


def error_out(error: JobError) -> ErrorOut:
    return ErrorOut(code=error_code(error), message=error.message, data=error.data)
