"""Health checks and the monitor that runs them: what is read through the ports each round (pools, their last
scrub, each policy's newest owned snapshot and each target's last success, failed jobs), turned into findings
by the domain's rules, kept in an `AlertBook` (in this process: each serving process checks and keeps its own),
and every change handed to the notifier (webhooks) and the gauges (metrics).

A check that cannot read what it needs (zfs unavailable, the store down) counts as failed: its alerts are kept
as they were rather than cleared, and the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from zfsapi.domain import alerts as rules
from zfsapi.domain.alerts import Alert, AlertBook, AlertChange, CapacityLevels, FailedJob, Finding
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import NotFound
from zfsapi.domain.jobs import JobState
from zfsapi.domain.models import Pool, ScanStatus
from zfsapi.domain.names import PoolName
from zfsapi.domain.policies import Policy
from zfsapi.domain.schedules import Schedule, latest_slot, next_runs, slot_id

from .policies import policy_roots
from .policy_ports import PolicyZfs
from .policy_state import PolicyLedger
from .ports import JobStore, Pools

log = logging.getLogger("zfsapi.health")
FAILED_JOBS_READ = 500  # failed jobs read per round, newest first: the round's cost stays bounded
SCRUBBER = Principal("health:scrub", Role.ADMIN)  # the owner of the scrubs the scrub schedule starts


class PolicyHolder(Protocol):
    """An entry of the policy catalog, as the checks read it."""

    @property
    def policy(self) -> Policy: ...


class PolicyEntries(Protocol):
    """Every policy (config and API), no rights check: `PolicyCatalog.entries`."""

    async def entries(self) -> Sequence[PolicyHolder]: ...


class AlertNotifier(Protocol):
    def deliver(self, changes: Sequence[AlertChange]) -> None:
        """Queue the changes for delivery and return at once (a slow receiver never holds up the checks)."""
        ...


class HealthGauges(Protocol):
    def check_ran(self, check: str, ok: bool) -> None:
        """One check (an alert kind) ran, and could read what it needed or not."""
        ...

    def alerts_now(self, alerts: Sequence[Alert]) -> None:
        """The alerts holding after a round."""
        ...


ScrubStarter = Callable[[PoolName], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class HealthOptions:
    """`health:` of the configuration. `scrub_max_age_days` None: scrub age not checked; `scrub_schedule`:
    a cron (UTC) at which a scrub of every pool starts as a job (None: none is started)."""

    interval: float = 60.0
    scrub_max_age_days: float | None = 35.0
    capacity: CapacityLevels = field(default_factory=CapacityLevels)
    failed_job_window: float = 3600.0
    scrub_schedule: Schedule | None = None


@dataclass(slots=True)
class Round:
    """What one round found: the findings of the checks that ran, and why the others failed."""

    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def ran(self, kinds: Sequence[str], findings: Sequence[Finding]) -> None:
        self.checked.extend(kinds)
        self.findings.extend(findings)

    def fail(self, kinds: Sequence[str], exc: BaseException) -> None:
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        for kind in kinds:
            self.failed[kind] = reason


def _ts(value: object) -> float | None:
    """A ledger time: epoch seconds, or an ISO 8601 text; None when absent or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    return None


def _slots_after(schedule: Schedule | None, when: float) -> list[float]:
    if schedule is None:
        return []
    return [s.timestamp() for s in next_runs(schedule, datetime.fromtimestamp(when, timezone.utc), 2)]


def _last_scrub(scan: ScanStatus) -> float | None:
    return scan.ended if scan.function == "scrub" and scan.state == "finished" else None


class HealthChecks:
    """One round of every check, read through the ports. Policies are checked only when the catalog, the ledger
    and the policy ZFS port are given."""

    def __init__(self, pools: Pools, jobs: JobStore, options: HealthOptions, *,
                 policies: PolicyEntries | None = None, ledger: PolicyLedger | None = None,
                 policy_zfs: PolicyZfs | None = None) -> None:
        self._pools, self._jobs, self._options = pools, jobs, options
        self._policies, self._ledger, self._zfs = policies, ledger, policy_zfs

    async def run(self, book: AlertBook, now: float) -> Round:
        """Run every check once (`book`: the alerts before, which capacity's hysteresis reads)."""
        found = Round()
        pools = await self._pool_checks(found, book)
        if self._options.scrub_max_age_days is not None and pools is not None:
            await self._guard(found, ("scrub_age",), self._scrub_age(pools, now))
        if self._policies is not None and self._ledger is not None and self._zfs is not None:
            await self._guard(found, ("snapshot_freshness", "replication_lag"), self._policy_checks(now))
        await self._guard(found, ("job_failed",), self._failed_jobs(now))
        return found

    async def _guard(self, found: Round, kinds: tuple[str, ...], check: Awaitable[list[Finding]]) -> None:
        try:
            found.ran(kinds, await check)
        except Exception as exc:  # the check could not read what it needs: its alerts stay as they were
            found.fail(kinds, exc)

    async def _pool_checks(self, found: Round, book: AlertBook) -> list[Pool] | None:
        try:
            pools = await self._pools.list_pools()
        except Exception as exc:
            found.fail(("pool_health", "pool_capacity"), exc)
            return None
        findings: list[Finding | None] = []
        for p in pools:
            findings.append(rules.pool_health(p.name, p.health))
            previous = book.grade(f"pool_capacity:{p.name}")
            findings.append(rules.pool_capacity(p.name, p.capacity, previous, self._options.capacity))
        found.ran(("pool_health", "pool_capacity"), [f for f in findings if f is not None])
        return pools

    async def scans(self, pools: Sequence[Pool]) -> dict[str, ScanStatus]:
        """Each pool's last scan (a pool exported meanwhile is left out)."""
        out = {}
        for p in pools:
            try:
                out[p.name] = (await self._pools.pool_status(PoolName.parse(p.name))).scan
            except NotFound:
                continue
        return out

    async def _scrub_age(self, pools: Sequence[Pool], now: float) -> list[Finding]:
        max_age = self._options.scrub_max_age_days
        assert max_age is not None
        out = []
        for name, scan in (await self.scans(pools)).items():
            if scan.state in ("scanning", "paused") and scan.function == "scrub":
                continue  # a scrub is under way: judged when it ends
            if (f := rules.scrub_age(name, _last_scrub(scan), now, max_age)) is not None:
                out.append(f)
        return out

    async def _policy_checks(self, now: float) -> list[Finding]:
        assert self._policies is not None and self._ledger is not None and self._zfs is not None
        out: list[Finding] = []
        for entry in await self._policies.entries():
            policy = entry.policy
            if not policy.enabled:
                continue
            roots = policy_roots(policy)
            names = tuple(r.value for r in roots)
            if policy.snapshot.schedule is not None:
                owned = [s.info.creation for s in await self._zfs.snapshots(roots) if s.info.policy == policy.name]
                newest = float(max(owned)) if owned else None
                slots = _slots_after(policy.snapshot.schedule, newest) if newest is not None else []
                if (f := rules.snapshot_freshness(policy.name, newest, now, slots, names)) is not None:
                    out.append(f)
            if policy.replicate:
                out.extend(self._lags(policy, await self._ledger.notes(policy.name), now, names))
        return out

    def _lags(self, policy: Policy, notes: Mapping[str, Mapping[str, Any]], now: float,
              names: tuple[str, ...]) -> list[Finding]:
        out = []
        for target in policy.replicate:
            schedule = policy.snapshot.schedule if target.after_snapshot else target.schedule
            last = _ts(notes.get(f"target:{target.name}", {}).get("last_success"))
            slots = _slots_after(schedule, last) if last is not None else []
            f = rules.replication_lag(policy.name, target.name, last, now, slots, target.max_lag, names)
            if f is not None:
                out.append(f)
        return out

    async def _failed_jobs(self, now: float) -> list[Finding]:
        jobs, _ = await self._jobs.query(state=JobState.FAILED, limit=FAILED_JOBS_READ)
        return rules.failed_jobs(
            (FailedJob(j.job_id, j.kind, j.finished_at, j.datasets, j.error.message if j.error else "failed")
             for j in jobs if j.finished_at is not None), now, self._options.failed_job_window)


class ScrubSchedule:
    """`health.scrub_schedule`: at each slot a scrub of every pool starts as a job (kind pool_scrub_start, owned
    by `SCRUBBER`). Each (pool, slot) is claimed in the policy ledger first, so of several servers on one store
    one starts it. Slots before the first one seen are not made up; a pool scrubbing already is left alone."""

    def __init__(self, schedule: Schedule, ledger: PolicyLedger, start: ScrubStarter) -> None:
        self._schedule, self._ledger, self._start = schedule, ledger, start

    async def tick(self, scans: Mapping[str, ScanStatus], now: float) -> list[str]:
        """Start the scrubs due at `now`; the pools started."""
        slot = latest_slot(self._schedule, datetime.fromtimestamp(now, timezone.utc))
        if slot is None:
            return []
        started = []
        for pool, scan in sorted(scans.items()):
            key = f"health:scrub:{pool}"
            last = await self._ledger.last_slot(key)
            if last is not None and last >= slot_id(slot):
                continue
            if not await self._ledger.claim_slot(key, slot_id(slot)) or last is None:
                continue  # another server has it, or this is the first slot seen (a baseline, not made up)
            if scan.state in ("scanning", "paused"):
                continue
            try:
                await self._start(PoolName.parse(pool))
            except Exception as exc:
                log.warning("scheduled scrub not started", extra={"pool": pool, "reason": str(exc)})
                continue
            started.append(pool)
        return started


class HealthMonitor:
    """Runs a round of checks every `interval` seconds beside the job runner (`start`/`stop`), keeps the alerts
    holding (in this process), and hands each change to the notifier: one delivery per change, never one per
    round. `status()` is what health_status answers."""

    def __init__(self, checks: HealthChecks, notifier: AlertNotifier, gauges: HealthGauges, interval: float, *,
                 scrubs: ScrubSchedule | None = None, pools: Pools | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._checks, self._notifier, self._gauges = checks, notifier, gauges
        self._interval, self._scrubs, self._pools, self._clock = interval, scrubs, pools, clock
        self._book = AlertBook()
        self._checked_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def status(self) -> tuple[list[Alert], float | None]:
        """The alerts holding and when the last round ended (None: none has yet)."""
        return self._book.alerts, self._checked_at

    async def check_now(self) -> list[AlertChange]:
        """One round: check, update the alerts, deliver the changes; the changes."""
        async with self._lock:
            now = self._clock()
            found = await self._checks.run(self._book, now)
            for kind in found.checked:
                self._gauges.check_ran(kind, True)
            for kind, reason in found.failed.items():
                self._gauges.check_ran(kind, False)
                log.warning("health check failed", extra={"check": kind, "reason": reason})
            changes = self._book.update(found.findings, found.checked, now)
            self._checked_at = now
            self._gauges.alerts_now(self._book.alerts)
            for c in changes:
                log.info("alert " + c.change, extra={"alert": c.alert.id, "severity": c.alert.finding.severity})
            if changes:
                self._notifier.deliver(changes)
            await self._scheduled_scrubs(now)
            return changes

    async def _scheduled_scrubs(self, now: float) -> None:
        if self._scrubs is None or self._pools is None:
            return
        try:
            scans = await self._checks.scans(await self._pools.list_pools())
            started = await self._scrubs.tick(scans, now)
        except Exception as exc:  # zfs or the ledger out of reach: the next round tries again
            log.warning("scrub schedule not read", extra={"reason": str(exc) or type(exc).__name__})
            return
        if started:
            log.info("scheduled scrubs started", extra={"pools": started})

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="zfsapi-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:  # a round's bug must not end the monitor
                log.exception("health round failed")
            await asyncio.sleep(self._interval)
