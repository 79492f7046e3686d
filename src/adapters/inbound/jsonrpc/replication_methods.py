"""migration_create, migration_list, migration_get, migration_cancel, migration_progress: the old server's
replication methods, each a row; a migration is a job of kind "migration_create" running `Replicate`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from zfsapi.application.jobs import Jobs
from zfsapi.application.migrations import replication_spec
from zfsapi.application.replication import StartMigration
from zfsapi.domain.authz import Action, Carries
from zfsapi.domain.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.jobs import Job, JobState
from zfsapi.domain.replication import MAX_LIMIT, MIN_LIMIT, ReplicationSpec

from .job_methods import ErrorOut, ProgressOut, origin_of, record
from .method_common import Name
from .registry import ID_PATTERN, CallContext, Params, Registry, Result, Table

REPLICATION = Table()
KIND = "migration_create"
ZFS = (ZfsCommandFailed, ZfsUnavailable)

# The old server's words for a task's state.
STATUS = {JobState.QUEUED: "pending", JobState.RUNNING: "running", JobState.SUCCEEDED: "completed",
          JobState.FAILED: "failed", JobState.CANCELLED: "cancelled", JobState.INTERRUPTED: "failed"}
Status = Literal["pending", "running", "completed", "failed", "cancelled"]
BY_STATUS = {"pending": JobState.QUEUED, "running": JobState.RUNNING, "completed": JobState.SUCCEEDED,
             "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}
TaskId = Annotated[str, Meta(min_length=1, max_length=64, pattern=ID_PATTERN,
                             description="The migration's task id (its job id).")]


class MigrationCreate(Params, frozen=True, forbid_unknown_fields=True):
    source: Annotated[Name, Meta(description=(
        "What to replicate: a snapshot 'pool/ds@snap', or a dataset (a snapshot of it is taken now)."))]
    destination: Annotated[Name, Meta(description=(
        "The dataset to replicate into (on `remote` when given): created by a full send when missing, else "
        "brought up to date incrementally from the newest snapshot both sides share."))]
    remote: Annotated[Annotated[str, Meta(max_length=300)] | None, Meta(description=(
        "null: this host. Else a remote listed in replication.remotes, by its name or by its URL or ssh string "
        "('user@host'): over SSH (zfs receive runs there) or on another zfsapi (its stream_init and POST "
        "/stream). Other SSH hosts only for an unrestricted admin where replication.allow_unlisted_remotes is on."))
    ] = None
    limit: Annotated[Annotated[float, Meta(ge=MIN_LIMIT, le=MAX_LIMIT)] | None, Meta(
        description="Cap the transfer at this many MB/s (10^6 bytes per second), from 0.001024 (1 KiB/s).")] = None
    compression: Annotated[Literal["lz4", "zstd", "gzip"] | None, Meta(
        description="Compress on the wire to a remote.")] = None
    recursive: Annotated[bool, Meta(description="Also every descendant, kept in step (-R).")] = False
    sync: Annotated[bool, Meta(description=(
        "Hold the replicated snapshot on both sides (tag zfsapi:replication), release the previous one's "
        "hold, and keep a bookmark of it on the source: the next incremental always has its base."))] = True
    background: Annotated[bool, Meta(description=(
        "Accepted as on the other long calls: a migration always runs as a job, answered at once."))] = False


class MigrationCreated(Result, frozen=True, kw_only=True):
    task_id: str
    job_id: str
    status: Literal["created"] = "created"
    params: dict[str, Any]


def spec_of(p: MigrationCreate) -> ReplicationSpec:
    """The replication the params ask for, every name and number validated (errors name the param), as the job
    reads them back from its record."""
    return replication_spec(msgspec.to_builtins(p))


@REPLICATION.method(Action.CHANGE, carries={"source": Carries.DATASET, "destination": Carries.DATASET},
                    errors=(InvalidArgument, PermissionDenied))
async def migration_create(uc: StartMigration, p: MigrationCreate, ctx: CallContext) -> MigrationCreated:
    """Replicate a snapshot (full, or incremental from the newest common one) to another dataset here, on an
    SSH host or on another zfsapi, as a job: answered at once; follow it with migration_progress or the job
    methods. Migrations always run as jobs."""
    params = msgspec.to_builtins(p)
    job = await uc.execute(who=ctx.caller, spec=spec_of(p), params=params,  # bad params refused now, not in the job
                           origin=origin_of(ctx))
    return MigrationCreated(task_id=job.job_id, job_id=job.job_id, params=params)


class MigrationTask(Result, frozen=True, kw_only=True):
    task_id: str
    job_id: str
    status: Status
    params: dict[str, Any]
    progress: ProgressOut
    error: ErrorOut | None
    result: dict[str, Any] | None
    created_at: str
    started_at: str | None
    completed_at: str | None


def task(job: Job) -> MigrationTask:
    r = record(job)
    return MigrationTask(task_id=job.job_id, job_id=job.job_id, status=STATUS[job.state],  # type: ignore[arg-type]
                         params=job.params, progress=r.progress, error=r.error, result=job.result,
                         created_at=r.created_at, started_at=r.started_at, completed_at=r.finished_at)


class MigrationListParams(Params, frozen=True, forbid_unknown_fields=True):
    status: Annotated[Status | None, Meta(description="Only tasks in this state.")] = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class MigrationList(Result, frozen=True, kw_only=True):
    tasks: list[MigrationTask]
    total: int


@REPLICATION.method(Action.READ)
async def migration_list(uc: Jobs, p: MigrationListParams, ctx: CallContext) -> MigrationList:
    """The caller's migrations (an admin's: every one in its scope), newest first."""
    state = None if p.status is None else BY_STATUS[p.status]
    jobs, total = await uc.list(ctx.caller, state=state, kind=KIND, limit=p.limit)
    return MigrationList(tasks=[task(j) for j in jobs], total=total)


class TaskParams(Params, frozen=True, forbid_unknown_fields=True):
    task_id: TaskId


async def _task(uc: Jobs, ctx: CallContext, task_id: str) -> Job:
    job = await uc.get(ctx.caller, task_id)
    if job.kind != KIND:
        raise NotFound("task", task_id)
    return job


@REPLICATION.method(Action.READ, errors=(NotFound,))
async def migration_get(uc: Jobs, p: TaskParams, ctx: CallContext) -> MigrationTask:
    """One migration: its state, progress (bytes, rate, ETA), result or error."""
    return task(await _task(uc, ctx, p.task_id))


class MigrationCancelled(Result, frozen=True, kw_only=True):
    task_id: str
    cancelled: Literal[True] = True


@REPLICATION.method(Action.CHANGE, errors=(NotFound,))
async def migration_cancel(uc: Jobs, p: TaskParams, ctx: CallContext) -> MigrationCancelled:
    """Cancel a migration: its zfs send and receive are killed and reaped; the destination keeps its resume
    token, so creating the same migration again continues where it stopped."""
    await _task(uc, ctx, p.task_id)
    await uc.cancel(ctx.caller, p.task_id)
    return MigrationCancelled(task_id=p.task_id)


class MigrationProgress(Result, frozen=True, kw_only=True):
    task_id: str
    status: Status
    progress: ProgressOut
    error: ErrorOut | None


@REPLICATION.method(Action.READ, errors=(NotFound,))
async def migration_progress(uc: Jobs, p: TaskParams, ctx: CallContext) -> MigrationProgress:
    """A migration's state and progress."""
    t = task(await _task(uc, ctx, p.task_id))
    return MigrationProgress(task_id=t.task_id, status=t.status, progress=t.progress, error=t.error)


def register_replication(registry: Registry, jobs: Jobs, start: StartMigration) -> None:
    registry.include(REPLICATION, lambda use_case: start if use_case is StartMigration else jobs)

