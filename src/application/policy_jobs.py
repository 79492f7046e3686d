"""A policy's runs as jobs: policy_snapshot, policy_replicate and policy_prune (one row each), how they are
queued (`StartPolicyRun`: by the scheduler as the policy's owner, by policy_run as the caller) and a prune's
preview (`PreviewPolicy`).

Every job names its policy only ({"policy", "target", "slot", "follow"}) and loads it from the catalog when it
runs: a policy deleted since fails the job (NotFound); a policy disabled since makes it succeed doing nothing
({"disabled": true}). `follow` chains the steps of a scheduled run: a snapshot queues one policy_replicate of its
`after_snapshot` targets, which queues the prune; without such targets the snapshot queues the prune itself (a
policy without retention is never pruned: nothing is queued). Each run notes its end in the ledger
(`last:<step>`: {job_id, state, finished_at}) and each target's outcome (`target:<t>`: {last_success,
base_snapshot, failures (consecutive), last_failure, last_error}); times are epoch seconds."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping, Protocol

from zfsapi.domain.authz import AccessRequest, Action, Principal, Role
from zfsapi.domain.errors import InvalidArgument, PermissionDenied, StateConflict
from zfsapi.domain.jobs import Job, Origin, ProgressMeter
from zfsapi.domain.policies import LOCAL, Policy, ReplicationTarget, check_policy_name, check_target_name

from .job_kinds import JobContext, JobKind
from .jobs import Jobs
from .policies import DatasetPlan, PreviewPrune, Progress, Prune, TakePolicySnapshots
from .policy_catalog import PolicyCatalog, PolicyEntry, within_scope
from .policy_state import PolicyLedger
from .scheduler import NoObserver, PolicyObserver

SNAPSHOT, REPLICATE, PRUNE = "snapshot", "replicate", "prune"
KINDS = {SNAPSHOT: "policy_snapshot", REPLICATE: "policy_replicate", PRUNE: "policy_prune"}
STEPS = {kind: step for step, kind in KINDS.items()}


@dataclass(frozen=True, slots=True)
class PolicyRunSpec:
    """A policy job's params: the policy by name, the one target (replicate; None: every target, or with
    `follow` the after_snapshot ones), the schedule slot that queued it (None: run by hand), and whether the
    next step follows."""

    policy: str
    target: str | None = None
    slot: str | None = None
    follow: bool = False

    def params(self) -> dict[str, Any]:
        return {"policy": self.policy, "target": self.target, "slot": self.slot, "follow": self.follow}


def decode_spec(params: Mapping[str, Any]) -> PolicyRunSpec:
    target, slot, follow = params.get("target"), params.get("slot"), params.get("follow", False)
    if slot is not None and not isinstance(slot, str):
        raise InvalidArgument("slot", "must be a slot id or null")
    if not isinstance(follow, bool):
        raise InvalidArgument("follow", "must be true or false")
    return PolicyRunSpec(check_policy_name(params.get("policy"), "policy"),
                         None if target is None else check_target_name(target), slot, follow)


class TargetRunResult(Protocol):
    """What one target's replication reports (p-repl's TargetRun, a dataclass)."""

    @property
    def base_snapshot(self) -> str | None: ...

    @property
    def bytes(self) -> int: ...


class ReplicateTarget(Protocol):
    """Bring one target of a policy up to date (policy_replication.ReplicatePolicyTarget)."""

    async def __call__(self, policy: Policy, target: str, *, who: Principal,
                       progress: ProgressMeter) -> TargetRunResult: ...


def touched(policy: Policy, step: str) -> tuple[str, ...]:
    """The names a job of `step` records (who may see it, what its owner's rights must cover when it starts):
    the include datasets, and for replicate the local targets' destinations."""
    names = [r.dataset.value for r in policy.datasets.rules if not r.exclude]
    if step == REPLICATE:
        names += [t.destination.value for t in policy.replicate if t.remote == LOCAL]
    return tuple(dict.fromkeys(names))


class StartPolicyRun:
    """Queue a step of a policy as a job."""

    def __init__(self, jobs: Jobs, catalog: PolicyCatalog) -> None:
        self._jobs, self._catalog = jobs, catalog

    async def scheduled(self, entry: PolicyEntry, step: str, *, target: str | None = None, slot: str | None = None,
                        follow: bool = False) -> Job:
        """A run of the schedule (or of a followed step), as the policy's owner."""
        spec = PolicyRunSpec(entry.policy.name, target, slot, follow)
        return await self._jobs.submit(KINDS[step], entry.owner.principal(), spec.params(),
                                       touched(entry.policy, step), origin=entry.owner.origin)

    async def execute(self, *, who: Principal, name: str, step: str, target: str | None,
                      origin: Origin | None = None) -> Job:
        """policy_run: one step now, as the caller (its rights checked now and again when the job starts).
        Raises InvalidArgument (`step`, `target`), NotFound, PermissionDenied, StateConflict (disabled)."""
        if step not in KINDS:
            raise InvalidArgument("step", "must be snapshot, replicate or prune")
        entry = await self._catalog.find(who, name, "policy_run")
        if target is not None:
            if step != REPLICATE:
                raise InvalidArgument("target", "only the replicate step takes a target")
            if entry.policy.target(check_target_name(target)) is None:
                raise InvalidArgument("target", f"policy {name!r} has no target {target!r}")
        if not entry.policy.enabled:
            raise StateConflict(f"policy {name} is disabled", policy=name)
        spec = PolicyRunSpec(name, target)
        return await self._jobs.submit(KINDS[step], who, spec.params(), touched(entry.policy, step), origin=origin)


class PreviewPolicy:
    """What a prune of a policy would do at a time (default now), destroying nothing. A snapshot holding one
    of the policy's target tags is kept as that target's base."""

    def __init__(self, catalog: PolicyCatalog, preview: PreviewPrune) -> None:
        self._catalog, self._preview = catalog, preview

    async def __call__(self, who: Principal, name: str, at: datetime | None = None) -> list[DatasetPlan]:
        entry = await self._catalog.find(who, name, "policy_preview")
        return await self._preview(entry.policy, at=at)


def _counted(meter: ProgressMeter, phase: str) -> Progress:
    """A step's (done, total) as the job's phase, e.g. "prune 3/12" (the meter's bytes stay a transfer's)."""
    def progress(done: int, total: int) -> None:
        meter.phase(f"{phase} {done}/{total}")
    return progress


Work = Callable[[PolicyEntry, PolicyRunSpec, JobContext, ProgressMeter], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class _PolicyKind(JobKind[PolicyRunSpec]):
    """A policy kind: its access request is `action` on the names the job recorded (see `touched`)."""

    action: Action = Action.CHANGE

    def request(self, job: Job) -> AccessRequest:
        return AccessRequest(job.kind, self.action, job.datasets)


class PolicyKinds:
    """The three rows and what they run. `clock` gives epoch seconds for the ledger's notes."""

    def __init__(self, catalog: PolicyCatalog, ledger: PolicyLedger, start: StartPolicyRun,
                 take: TakePolicySnapshots, prune: Prune, replicate: ReplicateTarget, *,
                 clock: Callable[[], float] = time.time, observer: PolicyObserver | None = None) -> None:
        self._catalog, self._ledger, self._start = catalog, ledger, start
        self._take, self._prune, self._replicate, self._clock = take, prune, replicate, clock
        self._observer: PolicyObserver = observer or NoObserver()  # failures, destroyed and owned counts

    def rows(self) -> list[JobKind[Any]]:
        return [_PolicyKind(KINDS[SNAPSHOT], decode_spec, self._step(SNAPSHOT, self._snapshot)),
                _PolicyKind(KINDS[REPLICATE], decode_spec, self._step(REPLICATE, self._replicate_step)),
                _PolicyKind(KINDS[PRUNE], decode_spec, self._step(PRUNE, self._prune_step), action=Action.DESTROY)]

    def _step(self, step: str, work: Work) -> Callable[[PolicyRunSpec, JobContext, ProgressMeter],
                                                       Awaitable[dict[str, Any]]]:
        async def run(spec: PolicyRunSpec, ctx: JobContext, meter: ProgressMeter) -> dict[str, Any]:
            entry = await self._catalog.entry(spec.policy)  # deleted since: the job fails, nothing is noted
            try:
                _may_run(ctx.who, entry.policy, ctx.job.kind)
                result: dict[str, Any] = {"policy": spec.policy, "disabled": True}
                if entry.policy.enabled:
                    result = await work(entry, spec, ctx, meter)
            except Exception:
                self._observer.step_failed(spec.policy, step)
                await self._note_last(spec.policy, step, ctx.job, "failed")
                raise
            await self._note_last(spec.policy, step, ctx.job, "succeeded")
            return result
        return run

    async def _note_last(self, policy: str, step: str, job: Job, state: str) -> None:
        await self._ledger.note(policy, f"last:{step}", {"job_id": job.job_id, "state": state,
                                                         "finished_at": self._clock()})

    async def _snapshot(self, entry: PolicyEntry, spec: PolicyRunSpec, ctx: JobContext,
                        meter: ProgressMeter) -> dict[str, Any]:
        run = await self._take(entry.policy, _counted(meter, "snapshot"))
        if spec.follow:
            after = [t for t in entry.policy.replicate if t.after_snapshot]
            if after:
                await self._start.scheduled(entry, REPLICATE, slot=spec.slot, follow=True)
            else:
                await self._follow_prune(entry, spec)
        return {"policy": entry.policy.name, "snapshot": run.short, "taken": [str(s) for s in run.taken],
                "skipped": [{"dataset": str(s.dataset), "reason": s.reason} for s in run.skipped],
                "failed": [{"snapshot": str(f.snapshot), "reason": f.reason} for f in run.failed]}

    async def _follow_prune(self, entry: PolicyEntry, spec: PolicyRunSpec) -> None:
        if entry.policy.retention is not None:
            await self._start.scheduled(entry, PRUNE, slot=spec.slot, follow=True)

    async def _prune_step(self, entry: PolicyEntry, spec: PolicyRunSpec, ctx: JobContext,
                          meter: ProgressMeter) -> dict[str, Any]:
        run = await self._prune(entry.policy, progress=_counted(meter, "prune"))
        self._observer.snapshots_destroyed(entry.policy.name, len(run.destroyed))
        self._observer.snapshots_owned(entry.policy.name, run.owned)
        return {"policy": entry.policy.name, "destroyed": [str(s) for s in run.destroyed],
                "failed": [{"snapshot": str(f.snapshot), "reason": f.reason} for f in run.failed], "kept": run.kept}

    async def _replicate_step(self, entry: PolicyEntry, spec: PolicyRunSpec, ctx: JobContext,
                              meter: ProgressMeter) -> dict[str, Any]:
        """Every target asked for, one after the other (a target's failure does not stop the others); the
        job fails with the first target's error when any failed, after the followed prune is queued."""
        targets = _targets(entry.policy, spec)
        results: dict[str, Any] = {}
        first_error: Exception | None = None
        for i, target in enumerate(targets, start=1):
            meter.phase(f"replicate {target.name} {i}/{len(targets)}")
            try:
                run = await self._replicate(entry.policy, target.name, who=ctx.who, progress=meter)
            except Exception as exc:
                first_error = first_error or exc
                await self._note_target(entry.policy.name, target.name, None, str(exc))
                results[target.name] = {"error": str(exc)}
            else:
                await self._note_target(entry.policy.name, target.name, run.base_snapshot, None)
                results[target.name] = _jsonable(run)
        if spec.follow:
            await self._follow_prune(entry, spec)
        if first_error is not None:
            raise first_error
        return {"policy": entry.policy.name, "targets": results}

    async def _note_target(self, policy: str, target: str, base: str | None, error: str | None) -> None:
        field = f"target:{target}"
        before = (await self._ledger.notes(policy)).get(field, {})
        now = self._clock()
        if error is None:
            note = {**before, "last_success": now, "base_snapshot": base, "failures": 0}
        else:
            note = {"last_success": before.get("last_success"), "base_snapshot": before.get("base_snapshot"),
                    "failures": int(before.get("failures") or 0) + 1, "last_failure": now, "last_error": error}
        note.setdefault("last_failure", None)
        note.setdefault("last_error", None)
        await self._ledger.note(policy, field, note)


def _targets(policy: Policy, spec: PolicyRunSpec) -> list[ReplicationTarget]:
    if spec.target is not None:
        target = policy.target(spec.target)
        if target is None:
            raise InvalidArgument("target", f"policy {policy.name!r} has no target {spec.target!r} (changed since)")
        return [target]
    return [t for t in policy.replicate if t.after_snapshot or not spec.follow]


def _may_run(who: Principal, policy: Policy, kind: str) -> None:
    """The job's owner, with the rights it has now, may still run this policy as it reads now (its datasets
    may have changed since the job was queued)."""
    if who.role is not Role.ADMIN:
        raise PermissionDenied(kind, None, f"policies run as admins only: {who.name} is {who.role.value} now")
    outside = within_scope(who, policy)
    if outside is not None:
        raise PermissionDenied(kind, outside, f"scope narrowed: {outside} is outside the datasets this user may "
                                              "touch now")


def _jsonable(run: object) -> Any:
    """A target's run as the job's result keeps it (a dataclass's fields; names as strings)."""
    if dataclasses.is_dataclass(run) and not isinstance(run, type):
        return _plain(run)
    return {"base_snapshot": getattr(run, "base_snapshot", None), "bytes": getattr(run, "bytes", 0)}


def _plain(value: Any) -> Any:
    """JSON-able: records (dataclasses without their own str) as objects, value objects (names) as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__str__ is object.__str__:
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
