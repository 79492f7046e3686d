"""Health checks and the monitor (application/health.py) over the fakes: pools, scrubs, policies, failed jobs,
the alert book across rounds, one delivery per change, the scrub schedule."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Sequence

import pytest

from tests.fakes import FakePolicyOps, FakeZfs
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.application.health import HealthChecks, HealthMonitor, HealthOptions, ScrubSchedule
from zfsapi.domain.alerts import Alert, AlertBook, AlertChange
from zfsapi.domain.errors import ZfsUnavailable
from zfsapi.domain.jobs import Job, JobError, JobOwner, JobState
from zfsapi.domain.models import Pool, ScanStatus
from zfsapi.domain.names import DatasetName, PoolName, SnapshotName
from zfsapi.domain.policies import Policy, parse_policy
from zfsapi.domain.schedules import Schedule

H, DAY = 3600.0, 86400.0
NOW = datetime(2026, 12, 6, 12, 30, tzinfo=timezone.utc).timestamp()


class Zfs(FakeZfs):
    """FakeZfs whose pools' capacity is set by the test, and whose pool list can be made to fail."""

    def __init__(self) -> None:
        super().__init__(pools=["tank"])
        self.capacity: dict[str, int] = {}
        self.down = False

    async def list_pools(self) -> list[Pool]:
        if self.down:
            raise ZfsUnavailable("zpool not found")
        return [replace(p, capacity=self.capacity.get(p.name, p.capacity)) for p in await super().list_pools()]


@dataclass(frozen=True)
class Entry:
    policy: Policy


class Catalog:
    def __init__(self, *policies: Policy) -> None:
        self.policies = list(policies)

    async def entries(self) -> list[Entry]:
        return [Entry(p) for p in self.policies]


class Notifier:
    def __init__(self) -> None:
        self.delivered: list[AlertChange] = []

    def deliver(self, changes: Sequence[AlertChange]) -> None:
        self.delivered.extend(changes)


class Gauges:
    def __init__(self) -> None:
        self.ran: list[tuple[str, bool]] = []
        self.alerts: list[Alert] = []

    def check_ran(self, check: str, ok: bool) -> None:
        self.ran.append((check, ok))

    def alerts_now(self, alerts: Sequence[Alert]) -> None:
        self.alerts = list(alerts)


def scrubbed(ended: float) -> ScanStatus:
    return ScanStatus("scrub", "finished", 100.0, None, None, 0, ended)


class World:
    def __init__(self, *policies: Policy, **options: Any) -> None:
        self.zfs = Zfs()
        self.zfs.pools["tank"].scan = scrubbed(NOW - DAY)
        self.ops = FakePolicyOps(self.zfs, now=lambda: int(self.now))
        self.ledger = MemoryPolicyStore()
        self.jobs = MemoryJobStore()
        self.catalog = Catalog(*policies)
        self.now = NOW
        self.checks = HealthChecks(self.zfs, self.jobs, HealthOptions(**options), policies=self.catalog,
                                   ledger=self.ledger, policy_zfs=self.ops)
        self.notifier, self.gauges = Notifier(), Gauges()
        self.monitor = HealthMonitor(self.checks, self.notifier, self.gauges, 60.0, clock=lambda: self.now)

    async def ids(self) -> list[str]:
        await self.monitor.check_now()
        return [a.id for a in self.monitor.status()[0]]


async def test_pool_health_and_capacity_with_hysteresis() -> None:
    w = World()
    assert await w.ids() == []
    w.zfs.pools["tank"].health = "DEGRADED"
    w.zfs.capacity["tank"] = 85
    assert await w.ids() == ["pool_capacity:tank", "pool_health:tank"]
    w.zfs.capacity["tank"] = 77  # below 80, above 75: held
    assert await w.ids() == ["pool_capacity:tank", "pool_health:tank"]
    w.zfs.capacity["tank"] = 74
    w.zfs.pools["tank"].health = "ONLINE"
    assert await w.ids() == []
    assert [(c.change, c.alert.id) for c in w.notifier.delivered] == [
        ("raised", "pool_capacity:tank"), ("raised", "pool_health:tank"),
        ("cleared", "pool_capacity:tank"), ("cleared", "pool_health:tank")]


async def test_a_failed_check_keeps_its_alerts_and_counts_the_failure() -> None:
    w = World()
    w.zfs.pools["tank"].health = "FAULTED"
    assert await w.ids() == ["pool_health:tank"]
    w.zfs.down = True
    assert await w.ids() == ["pool_health:tank"]  # not cleared: it could not be checked
    assert ("pool_health", False) in w.gauges.ran and ("job_failed", True) in w.gauges.ran
    assert len(w.notifier.delivered) == 1


async def test_scrub_age() -> None:
    w = World(scrub_max_age_days=30)
    w.zfs.pools["tank"].scan = scrubbed(NOW - 31 * DAY)
    assert await w.ids() == ["scrub_age:tank"]
    w.zfs.pools["tank"].scan = ScanStatus("scrub", "scanning", 5.0, None, None, 0)
    assert await w.ids() == []  # a scrub under way is judged when it ends
    w.zfs.pools["tank"].scan = scrubbed(NOW)
    assert await w.ids() == []
    w.zfs.pools["tank"].scan = ScanStatus(None, None, None, None, None, None)
    assert await w.ids() == ["scrub_age:tank"]
    assert "no finished scrub" in w.monitor.status()[0][0].finding.message
    off = World(scrub_max_age_days=None)
    off.zfs.pools["tank"].scan = ScanStatus(None, None, None, None, None, None)
    assert await off.ids() == []


HOURLY = parse_policy({"name": "home", "datasets": ["tank/home"], "snapshot": {"schedule": "0 * * * *"},
                       "replicate": {"nas": {"remote": "local", "destination": "tank/backup",
                                             "schedule": "after_snapshot"},
                                     "far": {"remote": "local", "destination": "tank/far", "max_lag": 600}}})


async def test_snapshot_freshness_and_replication_lag() -> None:
    w = World(HOURLY)
    await w.zfs.create_dataset(DatasetName.parse("tank/home"), properties={}, parents=False)
    w.now = datetime(2026, 12, 6, 10, 0, 5, tzinfo=timezone.utc).timestamp()
    await w.ops.take([SnapshotName.parse("tank/home@auto-1")], recursive=False, policy="home")
    await w.zfs.create_snapshot(SnapshotName.parse("tank/home@by-hand"), recursive=False, properties={})
    await w.ledger.note("home", "target:nas", {"last_success": w.now, "base_snapshot": "auto-1", "failures": 0})
    await w.ledger.note("home", "target:far", {"last_success": "2026-12-06T10:00:05Z"})
    w.now += 300
    assert await w.ids() == []
    w.now = datetime(2026, 12, 6, 12, 0, 30, tzinfo=timezone.utc).timestamp()  # two hourly slots missed
    assert await w.ids() == ["replication_lag:home:far", "replication_lag:home:nas", "snapshot_freshness:home"]
    freshness = w.monitor.status()[0][2]
    assert freshness.finding.datasets == ("tank/home",) and freshness.finding.severity == "warning"
    # a fresh owned snapshot and a fresh success clear them (a snapshot made by hand never counted)
    await w.ops.take([SnapshotName.parse("tank/home@auto-2")], recursive=False, policy="home")
    await w.ledger.note("home", "target:nas", {"last_success": w.now})
    assert await w.ids() == ["replication_lag:home:far"]
    w.catalog.policies = [replace(HOURLY, enabled=False)]
    assert await w.ids() == []


async def test_failed_jobs_in_the_window() -> None:
    w = World(failed_job_window=3600)
    owner = JobOwner("alice", "admin")
    for job_id, finished in (("j1", NOW - 60), ("j2", NOW - 7200)):
        await w.jobs.add(Job(job_id, "policy_snapshot", owner, {}, ("tank/home",), NOW - 8000,
                             state=JobState.FAILED, finished_at=finished, error=JobError("disk on fire")))
    assert await w.ids() == ["job_failed:policy_snapshot"]
    assert "j1: disk on fire" in w.monitor.status()[0][0].finding.message
    w.now += 3600
    assert await w.ids() == []


async def test_scrub_schedule_claims_each_slot_once_and_never_makes_one_up() -> None:
    ledger = MemoryPolicyStore()
    started: list[str] = []

    async def start(pool: PoolName) -> None:
        started.append(pool.value)

    daily = Schedule.parse("0 3 * * *")
    one, other = ScrubSchedule(daily, ledger, start), ScrubSchedule(daily, ledger, start)
    idle = {"tank": scrubbed(0), "busy": ScanStatus("scrub", "scanning", 1.0, None, None, 0)}
    assert await one.tick(idle, NOW) == []  # the first slot seen is a baseline
    assert await one.tick(idle, NOW + 60) == []
    tomorrow = NOW + DAY
    assert await one.tick(idle, tomorrow) == ["tank"]  # a pool scrubbing already is left alone
    assert await other.tick(idle, tomorrow) == []  # another server: the slot is claimed
    assert started == ["tank"]


async def test_the_monitor_loop_runs_beside_the_runner_until_stopped() -> None:
    w = World()
    w.zfs.pools["tank"].health = "UNAVAIL"
    monitor = HealthMonitor(w.checks, w.notifier, w.gauges, 0.01)
    await monitor.start()
    deadline = time.monotonic() + 30
    while monitor.status()[1] is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await monitor.stop()
    assert [a.id for a in monitor.status()[0]] == ["pool_health:tank"]
    assert len(w.notifier.delivered) == 1  # however many rounds ran


@pytest.mark.parametrize("health", ["ONLINE", "DEGRADED"])
async def test_book_given_to_checks_is_only_read(health: str) -> None:
    w = World()
    w.zfs.pools["tank"].health = health
    book = AlertBook()
    found = await w.checks.run(book, NOW)
    assert book.alerts == [] and "pool_health" in found.checked
