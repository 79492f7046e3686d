"""policy_list, policy_get, policy_create, policy_update, policy_delete, policy_run, policy_preview: the policies
(config-declared, read-only here, and API-created) and their runs, each a row. Admins only (a scoped admin: the
policies inside its scope, with "local" targets only); the catalog checks, since a policy names many datasets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from msgspec import Meta
from zfsapi.application.policy_catalog import PolicyCatalog, PolicyEntry, PolicyStatus
from zfsapi.application.policy_jobs import PreviewPolicy, StartPolicyRun
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    StateConflict,
)
from zfsapi.domain.policies import Policy, RetentionCounts, parse_snapshot_time
from zfsapi.domain.schedules import Schedule, next_runs

from .job_methods import origin_of
from .method_common import ZFS_ERRORS, iso
from .registry import CallContext, JobStarted, NoParams, Params, Registry, Result, Table

POLICIES = Table(errors=(PermissionDenied, ServiceUnavailable))
STORE_ERRORS = (InvalidArgument, NotFound, StateConflict)

PolicyName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$(?!\n)",
                                 description="The policy's name ([a-z0-9_-]).")]
Definition = Annotated[dict[str, Any], Meta(description=(
    "A policy: {name, datasets: [\"tank/home\", \"!tank/home/tmp\"], snapshot: {schedule (cron, 5 fields, or "
    "null: only when run), timezone, prefix, recursive_atomic, min_written}, retention: {keep_last, hourly, "
    "daily, weekly, monthly, yearly} (absent: never prune), replicate: {target: {remote: \"local\" or a "
    "replication.remotes name, destination, schedule: \"after_snapshot\" | cron | null, retention: "
    "\"same_as_source\" | counts | \"none\", limit (MB/s), compression}}, enabled}. Every key but name and "
    "datasets is optional; an error names its key path, e.g. policy.retention.daily."))]


# ---- the policy as listed ----

class SnapshotOut(Result, frozen=True, kw_only=True):
    schedule: str | None
    timezone: str
    prefix: str
    recursive_atomic: bool
    min_written: int


class RetentionOut(Result, frozen=True, kw_only=True):
    keep_last: int
    hourly: int
    daily: int
    weekly: int
    monthly: int
    yearly: int


class TargetOut(Result, frozen=True, kw_only=True):
    remote: str
    destination: str
    schedule: str | None
    retention: RetentionOut | str  # counts, "same_as_source" or "none"
    limit: float | None
    compression: str | None


class NextRunsOut(Result, frozen=True, kw_only=True):
    snapshot: str | None
    replicate: dict[str, str | None]


class PolicyOut(Result, frozen=True, kw_only=True):
    name: str
    source: Literal["config", "api"]
    enabled: bool
    datasets: list[str]
    snapshot: SnapshotOut
    retention: RetentionOut | None
    replicate: dict[str, TargetOut]
    next_runs: NextRunsOut


def _counts(c: RetentionCounts) -> RetentionOut:
    return RetentionOut(**c.to_dict())


def _next(schedule: Schedule | None, now: datetime) -> str | None:
    runs = [] if schedule is None else next_runs(schedule, now, 1)
    return runs[0].astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if runs else None


def next_runs_of(policy: Policy, now: datetime) -> NextRunsOut:
    """The next scheduled run of the snapshot and of each target (after_snapshot: the snapshot's); none for a
    disabled policy or a step without a schedule."""
    if not policy.enabled:
        return NextRunsOut(snapshot=None, replicate={t.name: None for t in policy.replicate})
    snapshot = _next(policy.snapshot.schedule, now)
    return NextRunsOut(snapshot=snapshot, replicate={
        t.name: snapshot if t.after_snapshot else _next(t.schedule, now) for t in policy.replicate})


def policy_out(entry: PolicyEntry, now: datetime) -> PolicyOut:
    p, d = entry.policy, entry.policy.to_dict()
    return PolicyOut(
        name=p.name, source=entry.source, enabled=p.enabled, datasets=d["datasets"],
        snapshot=SnapshotOut(**d["snapshot"]), retention=None if p.retention is None else _counts(p.retention),
        replicate={t.name: TargetOut(
            remote=t.remote, destination=t.destination.value, schedule=d["replicate"][t.name]["schedule"],
            retention=_counts(t.retention) if isinstance(t.retention, RetentionCounts) else t.retention,
            limit=t.limit, compression=t.compression) for t in p.replicate},
        next_runs=next_runs_of(p, now))


def _now(catalog: PolicyCatalog) -> datetime:
    return datetime.fromtimestamp(catalog.now(), timezone.utc)


class PolicyList(Result, frozen=True, kw_only=True):
    policies: list[PolicyOut]


@POLICIES.method(Action.READ)
async def policy_list(uc: PolicyCatalog, p: NoParams, ctx: CallContext) -> PolicyList:
    """Every policy the caller may see (admins only; a scoped admin: those inside its scope), in name order, with
    the next run of each schedule."""
    now = _now(uc)
    return PolicyList(policies=[policy_out(e, now) for e in await uc.visible(ctx.caller)])


# ---- one policy and its status ----

class NameParams(Params, frozen=True, forbid_unknown_fields=True):
    name: PolicyName


class LastRunOut(Result, frozen=True, kw_only=True):
    job_id: str
    state: str
    finished_at: str | None


class TargetStatusOut(Result, frozen=True, kw_only=True):
    last_success: str | None
    lag_seconds: float | None
    base_snapshot: str | None
    failures: int
    last_error: str | None


class StatusOut(Result, frozen=True, kw_only=True):
    last: dict[str, LastRunOut]
    targets: dict[str, TargetStatusOut]


class PolicyDetail(PolicyOut, frozen=True, kw_only=True):
    status: StatusOut


def _time(value: Any) -> str | None:
    return iso(float(value)) if isinstance(value, (int, float)) else None


def status_out(status: PolicyStatus) -> StatusOut:
    """The ledger's notes as policy_get shows them. A target's lag: now less the time of its base snapshot
    (from the snapshot's name), else of its last success."""
    policy, notes = status.entry.policy, status.notes
    last = {step: LastRunOut(job_id=str(n.get("job_id")), state=str(n.get("state")),
                             finished_at=_time(n.get("finished_at")))
            for step in ("snapshot", "replicate", "prune") if (n := notes.get(f"last:{step}")) is not None}
    targets = {}
    for t in policy.replicate:
        n = notes.get(f"target:{t.name}", {})
        success, base = n.get("last_success"), n.get("base_snapshot")
        since = parse_snapshot_time(base, policy.snapshot.prefix) if isinstance(base, str) else None
        reference = since.timestamp() if since is not None else success
        lag = None if not isinstance(reference, (int, float)) else round(max(0.0, status.now - reference), 1)
        targets[t.name] = TargetStatusOut(last_success=_time(success), lag_seconds=lag,
                                          base_snapshot=base if isinstance(base, str) else None,
                                          failures=int(n.get("failures") or 0), last_error=n.get("last_error"))
    return StatusOut(last=last, targets=targets)


@POLICIES.method(Action.READ, errors=(NotFound, StateConflict))
async def policy_get(uc: PolicyCatalog, p: NameParams, ctx: CallContext) -> PolicyDetail:
    """One policy with its status: the last run of each step (job id, state, end) and each target's last
    success, lag and base snapshot."""
    status = await uc.status(ctx.caller, p.name)
    listed = policy_out(status.entry, datetime.fromtimestamp(status.now, timezone.utc))
    return PolicyDetail(**{f: getattr(listed, f) for f in PolicyOut.__struct_fields__}, status=status_out(status))


# ---- create, update, delete ----

class CreateParams(Params, frozen=True, forbid_unknown_fields=True):
    policy: Definition


@POLICIES.method(Action.CHANGE, errors=(InvalidArgument, AlreadyExists))
async def policy_create(uc: PolicyCatalog, p: CreateParams, ctx: CallContext) -> PolicyOut:
    """Create a policy (kept in the job store's backend; its scheduled runs run as the caller, with the rights
    the caller has when each starts)."""
    entry = await uc.create(ctx.caller, p.policy, origin=origin_of(ctx))
    return policy_out(entry, _now(uc))


class UpdateParams(Params, frozen=True, forbid_unknown_fields=True):
    name: PolicyName
    policy: Annotated[Definition, Meta(description=(
        "The whole new definition (as for policy_create; `name` may be left out, it cannot change)."))]


@POLICIES.method(Action.CHANGE, errors=STORE_ERRORS)
async def policy_update(uc: PolicyCatalog, p: UpdateParams, ctx: CallContext) -> PolicyOut:
    """Replace an API-created policy's definition (config-declared ones are read-only: -32602 naming `name`); two
    updates at once: the later one fails with -32015, read it again. The caller becomes its owner."""
    entry = await uc.update(ctx.caller, p.name, p.policy, origin=origin_of(ctx))
    return policy_out(entry, _now(uc))


class Deleted(Result, frozen=True, kw_only=True):
    deleted: Literal[True] = True


@POLICIES.method(Action.CHANGE, errors=(InvalidArgument, NotFound))
async def policy_delete(uc: PolicyCatalog, p: NameParams, ctx: CallContext) -> Deleted:
    """Delete an API-created policy and its status. Its snapshots, holds and bookmarks stay (nothing is
    destroyed); config-declared policies: -32602 naming `name`."""
    await uc.delete(ctx.caller, p.name)
    return Deleted()


# ---- runs ----

class RunParams(Params, frozen=True, forbid_unknown_fields=True):
    name: PolicyName
    step: Annotated[Literal["snapshot", "replicate", "prune"], Meta(description="The step to run now.")]
    target: Annotated[Annotated[str, Meta(min_length=1, max_length=64)] | None, Meta(
        description="replicate only: the one target to run (null: every target).")] = None


@POLICIES.method(Action.CHANGE, errors=(InvalidArgument, NotFound, StateConflict))
async def policy_run(uc: StartPolicyRun, p: RunParams, ctx: CallContext) -> JobStarted:
    """Run one step of a policy now, outside its schedule, as a job run as the caller (only that step: nothing
    follows it). Answered at once with its job id."""
    job = await uc.execute(who=ctx.caller, name=p.name, step=p.step, target=p.target, origin=origin_of(ctx))
    return JobStarted(job_id=job.job_id)


class PreviewParams(Params, frozen=True, forbid_unknown_fields=True):
    name: PolicyName
    at: Annotated[Annotated[str, Meta(max_length=64)] | None, Meta(description=(
        "The time to decide at: ISO 8601 with its zone, e.g. 2026-12-06T12:00:00Z (null: now)."))] = None


class SnapshotDecisionOut(Result, frozen=True, kw_only=True):
    snapshot: str
    created: str
    action: Literal["keep", "destroy"]
    reasons: list[str]


class DatasetPreviewOut(Result, frozen=True, kw_only=True):
    dataset: str
    snapshots: list[SnapshotDecisionOut]


class PreviewOut(Result, frozen=True, kw_only=True):
    datasets: list[DatasetPreviewOut]


def parse_at(value: str | None) -> datetime | None:
    """`at` as an aware time. Raises InvalidArgument naming `at` (not ISO 8601, or without a zone)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("at", "not an ISO 8601 time, e.g. 2026-12-06T12:00:00Z") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidArgument("at", "give the time's zone (Z or an offset such as +01:00)")
    return when


@POLICIES.method(Action.READ, errors=(InvalidArgument, NotFound, StateConflict, *ZFS_ERRORS))
async def policy_preview(uc: PreviewPolicy, p: PreviewParams, ctx: CallContext) -> PreviewOut:
    """Exactly what a prune of the policy would do at `at`: every snapshot of its datasets, kept or destroyed,
    with the reasons (counts, a target's base, a hold, not owned). Nothing is destroyed."""
    at = parse_at(p.at)
    plans = await uc(ctx.caller, p.name, at)
    return PreviewOut(datasets=[DatasetPreviewOut(dataset=plan.dataset.value, snapshots=[SnapshotDecisionOut(
        snapshot=d.snapshot.name, created=iso(d.snapshot.creation), action=d.action.value,
        reasons=list(d.reasons)) for d in plan.decisions]) for plan in plans])


@dataclass(frozen=True, slots=True)
class PolicyUseCases:
    """What the policy methods call."""

    catalog: PolicyCatalog
    start: StartPolicyRun
    preview: PreviewPolicy


def register_policies(registry: Registry, uc: PolicyUseCases) -> None:
    by_type: dict[type[Any], Any] = {PolicyCatalog: uc.catalog, StartPolicyRun: uc.start, PreviewPolicy: uc.preview}
    registry.include(POLICIES, by_type.__getitem__)
