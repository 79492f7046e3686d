"""The policy scheduler: one per server, run beside the job runner, it turns policies' schedules into jobs.

Each tick reads every policy (config and API) and, for each enabled one, its snapshot schedule (ledger key
`<policy>:snapshot`) and each replication target with a cron of its own (`<policy>:replicate:<target>`):

- Slots are the domain's (schedules.py): UTC instants, DST-correct. The newest slot at or before now is
  compared with the last slot the ledger holds for the key.
- First sight (no slot recorded: a new policy, a new target, or the first start on an empty store): that slot
  is claimed as the baseline WITHOUT a run. A policy created at 10:20 on an hourly schedule first runs at
  11:00, not at once; a fresh store does not fire every policy on its first start.
- A later slot is claimed (`PolicyLedger.claim_slot`, atomic) and only the server that gets True submits one
  job: `policy_snapshot` with follow=True (the job chains the after_snapshot targets and the prune), or
  `policy_replicate` for an own-cron target. However many slots passed while every server was down, only the
  newest runs (once); several servers on one store run each (policy, slot) once.
- A schedule that changed since its last slot: the new schedule's newest passed slot is later than the one
  recorded, so it runs once at the next tick (it is a slot of the schedule that has not run).
- Targets with `after_snapshot` run in the snapshot job's follow chain, never here; targets without a schedule
  run only when asked (policy_run).
- A disabled policy claims nothing and runs nothing; enabled again, its newest passed slot runs once (like a
  server that was down). A submission the submitter refuses (e.g. the owner lost its rights) is logged and
  counted as a failure of that step; its slot stays claimed, so the next slot is the next try.

Retries: a scheduled target (own cron, or after_snapshot with a snapshot schedule) whose last run failed is run again once its backoff has
passed since the failure: 60 s * 2^(failures - 1), at most 1 h (the jobs' own retries, `jobs.retries`, already
handle short outages inside one run, so the scheduler starts coarser; for comparison zrepl retries a temporary
error within one attempt after a fixed 4 s, ZREPL_REPLICATION_RETRY_INTERVAL, and otherwise waits for the next
interval; sanoid/syncoid do not retry at all). The retry claims `<policy>:retry:<target>` with the due time's
slot id, so of several servers one retries, once per failure. The failure comes from the ledger note
`target:<target>` ({last_success, base_snapshot, failures, last_failure, last_error}) the job kinds write; a
success resets `failures` to 0 there. No retry when the regular run of that target is submitted in the same
tick.

`run()` ticks, then sleeps until the nearest next slot or retry (at least 1 s, at most 30 s, so a clock jump or
a missed wake-up costs at most 30 s), woken early by `changed` (a policy created, updated, or reloaded). A tick
that fails (the store unreachable) logs one line and the loop goes on. Each tick reports to a
`PolicyObserver` (metrics): next runs and each target's last success.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Mapping, Protocol, Sequence, TypeVar

from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.policies import Policy
from zfsapi.domain.schedules import Schedule, latest_slot, next_runs, slot_id

from .policy_state import PolicyLedger
from .ports import Clock

log = logging.getLogger("zfsapi.policies")

UTC = timezone.utc
RETRY_BASE = timedelta(seconds=60)
RETRY_CAP = timedelta(hours=1)
MIN_SLEEP = 1.0
MAX_SLEEP = 30.0


class ScheduledEntry(Protocol):
    """What the scheduler reads of a catalog entry (policy_catalog.PolicyEntry)."""

    @property
    def policy(self) -> Policy: ...


E = TypeVar("E", bound=ScheduledEntry)
E_co = TypeVar("E_co", bound=ScheduledEntry, covariant=True)
E_contra = TypeVar("E_contra", bound=ScheduledEntry, contravariant=True)


class PolicySource(Protocol[E_co]):
    """Every policy, config and API, in name order, no rights check (policy_catalog.PolicyCatalog)."""

    async def entries(self) -> Sequence[E_co]: ...


class RunSubmitter(Protocol[E_contra]):
    """Queues one policy job as the entry's owner (policy_jobs.StartPolicyRun); returns the job (any record)."""

    async def scheduled(self, entry: E_contra, step: str, *, target: str | None = None, slot: str | None = None,
                        follow: bool = False) -> Any: ...


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """What one tick saw of one enabled policy: the next slot of its snapshot schedule and the nearest next slot
    of its own-cron targets (None: not scheduled), and each target's last success (epoch seconds; absent
    when it never succeeded)."""

    policy: str
    next_runs: Mapping[str, datetime | None]  # "snapshot", "replicate"
    last_success: Mapping[str, float] = field(default_factory=dict)


class PolicyObserver(Protocol):
    """Where the scheduler and the policy job kinds report (the Prometheus metrics adapter implements it)."""

    def policies_seen(self, statuses: list[PolicyStatus], now: datetime) -> None:
        """Every enabled policy as one tick saw it (the scheduler; replaces what the last tick reported)."""
        ...

    def snapshots_owned(self, policy: str, count: int) -> None:
        """The snapshots the policy owns now, over all its datasets (a snapshot or prune job, after listing)."""
        ...

    def snapshots_destroyed(self, policy: str, count: int) -> None:
        """A prune of this policy destroyed `count` snapshots (a prune job, on source or target)."""
        ...

    def step_failed(self, policy: str, step: str) -> None:
        """A job of this policy failed: step "snapshot", "replicate" or "prune"."""
        ...


class NoObserver:
    """The observer that records nothing (tests, embedding without metrics)."""

    def policies_seen(self, statuses: list[PolicyStatus], now: datetime) -> None:
        return None

    def snapshots_owned(self, policy: str, count: int) -> None:
        return None

    def snapshots_destroyed(self, policy: str, count: int) -> None:
        return None

    def step_failed(self, policy: str, step: str) -> None:
        return None


def retry_backoff(failures: int) -> timedelta:
    """How long after the `failures`-th failure in a row the target is tried again: 60 s, 2 min, 4 min, ...,
    at most 1 h."""
    if failures < 1:
        raise ValueError("failures must be at least 1")
    if failures > 7:  # 60 s * 2^6 = 64 min: the cap from here on (and no huge powers)
        return RETRY_CAP
    return min(RETRY_BASE * (1 << (failures - 1)), RETRY_CAP)


def _instant(value: object) -> datetime | None:
    """A note's time: epoch seconds or an ISO 8601 string (UTC when it names no offset); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


class PolicyScheduler(Generic[E]):
    """Submits the policies' scheduled runs and retries (see the module). `changed.set()` wakes `run()` early."""

    def __init__(self, source: PolicySource[E], ledger: PolicyLedger, submitter: RunSubmitter[E], clock: Clock,
                 observer: PolicyObserver | None = None, *, min_sleep: float = MIN_SLEEP,
                 max_sleep: float = MAX_SLEEP) -> None:
        self._source, self._ledger, self._submitter, self._clock = source, ledger, submitter, clock
        self._observer: PolicyObserver = observer or NoObserver()
        self._min_sleep, self._max_sleep = min_sleep, max_sleep
        self.changed = asyncio.Event()
        self._wake: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def tick(self, now: datetime) -> None:
        """Submit every run due at `now`. A policy whose runs cannot be submitted is logged and skipped; the
        store being unreachable raises (ServiceUnavailable)."""
        self._wake = None
        statuses: list[PolicyStatus] = []
        for entry in await self._source.entries():
            if entry.policy.enabled:
                statuses.append(await self._policy(entry, now))
        self._observer.policies_seen(statuses, now)

    async def _policy(self, entry: E, now: datetime) -> PolicyStatus:
        policy = entry.policy
        name = policy.name
        submitted: set[str] = set()  # targets whose run was submitted this tick
        snapshot = policy.snapshot.schedule
        slot = await self._due(f"{name}:snapshot", snapshot, now) if snapshot is not None else None
        if slot is not None and await self._submit(entry, "snapshot", slot=slot, follow=True):
            submitted |= {t.name for t in policy.replicate if t.after_snapshot}
        replicate_next: datetime | None = None
        for target in policy.replicate:
            if target.after_snapshot or target.schedule is None:
                continue
            key = f"{name}:replicate:{target.name}"
            slot = await self._due(key, target.schedule, now)
            if slot is not None and await self._submit(entry, "replicate", target=target.name, slot=slot):
                submitted.add(target.name)
            upcoming = self._next(target.schedule, now)
            if upcoming is not None and (replicate_next is None or upcoming < replicate_next):
                replicate_next = upcoming
        notes = await self._ledger.notes(name)
        for target in policy.replicate:
            scheduled = target.schedule is not None or (target.after_snapshot and snapshot is not None)
            if scheduled and target.name not in submitted:
                await self._retry(entry, target.name, notes.get(f"target:{target.name}", {}), now)
        last_success = {}
        for target in policy.replicate:
            success = _instant(notes.get(f"target:{target.name}", {}).get("last_success"))
            if success is not None:
                last_success[target.name] = success.timestamp()
        next_snapshot = self._next(snapshot, now) if snapshot is not None else None
        return PolicyStatus(name, {"snapshot": next_snapshot, "replicate": replicate_next}, last_success)

    async def _due(self, key: str, schedule: Schedule, now: datetime) -> str | None:
        """The slot id to run for `key` now, claimed; None when nothing is due (or another server claimed it).
        On first sight the newest slot (now, when the schedule has none yet) is claimed as the baseline."""
        newest = latest_slot(schedule, now)
        current = slot_id(newest if newest is not None else now)
        last = await self._ledger.last_slot(key)
        if last is None:
            await self._ledger.claim_slot(key, current)
            log.info("policy schedule baseline", extra={"key": key, "slot": current})
            return None
        if newest is None or current <= last:
            return None
        return current if await self._ledger.claim_slot(key, current) else None

    async def _retry(self, entry: E, target: str, note: Mapping[str, Any], now: datetime) -> None:
        failures = note.get("failures")
        failed_at = _instant(note.get("last_failure"))
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1 or failed_at is None:
            return
        due = failed_at + retry_backoff(failures)
        if now < due:
            self._wake_at(due)
            return
        key = f"{entry.policy.name}:retry:{target}"
        if await self._ledger.claim_slot(key, slot_id(due)):
            await self._submit(entry, "replicate", target=target, slot=slot_id(due), retry=failures)

    async def _submit(self, entry: E, step: str, *, target: str | None = None, slot: str | None = None,
                      follow: bool = False, retry: int = 0) -> bool:
        """One job queued; False (logged) when the submitter refused it (e.g. the owner lost its rights)."""
        extra = {"policy": entry.policy.name, "step": step, "target": target, "slot": slot}
        try:
            job = await self._submitter.scheduled(entry, step, target=target, slot=slot, follow=follow)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _unreachable(exc):
                raise
            log.warning("policy run not submitted: %s", exc, extra=extra)
            self._observer.step_failed(entry.policy.name, step)
            return False
        log.info("policy run submitted" + (f" (retry after {retry} failures)" if retry else ""),
                 extra=extra | {"job_id": getattr(job, "job_id", None)})
        return True

    def _next(self, schedule: Schedule, now: datetime) -> datetime | None:
        upcoming = next_runs(schedule, now, 1)
        if upcoming:
            self._wake_at(upcoming[0])
        return upcoming[0] if upcoming else None

    def _wake_at(self, when: datetime) -> None:
        if self._wake is None or when < self._wake:
            self._wake = when

    def sleep_seconds(self, now: datetime) -> float:
        """How long `run()` sleeps after a tick at `now`: until the nearest next slot or retry, in bounds."""
        if self._wake is None:
            return self._max_sleep
        return min(self._max_sleep, max(self._min_sleep, (self._wake - now).total_seconds()))

    async def run(self) -> None:
        """Tick, sleep, repeat, until cancelled."""
        while True:
            self.changed.clear()  # a change during the tick is seen by the next one
            now = self._clock.now()
            try:
                await self.tick(now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("policy scheduler tick failed: %s", exc)
            try:
                await asyncio.wait_for(self.changed.wait(), self.sleep_seconds(now))
            except asyncio.TimeoutError:
                pass

    async def start(self) -> None:
        """Start `run()` as a task (an app's startup hook, after the job runner's start)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="zfsapi-policy-scheduler")

    async def stop(self) -> None:
        """Stop the loop (an app's shutdown hook, before the job runner's stop): queued jobs stay queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _unreachable(exc: Exception) -> bool:
    """The store is down: the whole tick fails (one line in `run()`), rather than one line per policy."""
    return isinstance(exc, ServiceUnavailable)
