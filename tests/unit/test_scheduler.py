"""The policy scheduler with a fake clock, fake submitter and the in-process ledger: baseline on first sight,
hourly runs across both DST changes in Europe/Berlin (no double, no missing run), downtime made up once, two
schedulers on one store, disabled policies, own-cron targets, retry backoff, and the run() loop (a failing tick
logs one line and goes on; `changed` wakes it)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.application.scheduler import (
    NoObserver,
    PolicyScheduler,
    PolicyStatus,
    retry_backoff,
)
from zfsapi.domain.errors import NotFound, ServiceUnavailable
from zfsapi.domain.policies import Policy, parse_policy

UTC = timezone.utc
DEADLINE = 30.0


def policy(name: str = "home", schedule: str | None = "0 * * * *", tz: str = "Europe/Berlin",
           **extra: Any) -> Policy:
    raw: dict[str, Any] = {"name": name, "datasets": ["tank/home"],
                           "snapshot": {"schedule": schedule, "timezone": tz}} | extra
    return parse_policy(raw)


@dataclass(frozen=True)
class Entry:
    policy: Policy
    source: str = "config"


@dataclass
class Source:
    policies: list[Policy]
    fail: int = 0  # the next `fail` calls raise ServiceUnavailable
    calls: int = 0

    async def entries(self) -> list[Entry]:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise ServiceUnavailable("policy store", "down")
        return [Entry(p) for p in self.policies]


@dataclass(frozen=True)
class Submitted:
    policy: str
    step: str
    target: str | None
    slot: str | None
    follow: bool


@dataclass
class Submitter:
    jobs: list[Submitted] = field(default_factory=list)
    refuse: bool = False

    async def scheduled(self, entry: Entry, step: str, *, target: str | None = None, slot: str | None = None,
                        follow: bool = False) -> Any:
        if self.refuse:
            raise NotFound("user", "gone")
        self.jobs.append(Submitted(entry.policy.name, step, target, slot, follow))
        return type("Job", (), {"job_id": f"j{len(self.jobs)}"})()


@dataclass
class Clock:
    at: datetime

    def now(self) -> datetime:
        return self.at


class Observer(NoObserver):
    def __init__(self) -> None:
        self.seen: list[list[PolicyStatus]] = []

    def policies_seen(self, statuses: list[PolicyStatus], now: datetime) -> None:
        self.seen.append(statuses)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def scheduler(source: Source, store: MemoryPolicyStore | None = None, submitter: Submitter | None = None,
              **kw: Any) -> tuple[PolicyScheduler[Entry], MemoryPolicyStore, Submitter]:
    store = store or MemoryPolicyStore()
    submitter = submitter or Submitter()
    return PolicyScheduler(source, store, submitter, Clock(at("2026-01-01T00:00:00")), **kw), store, submitter


async def every(s: PolicyScheduler[Entry], start: datetime, end: datetime, step: timedelta) -> None:
    now = start
    while now <= end:
        await s.tick(now)
        now += step


async def test_first_sight_claims_the_baseline_without_running() -> None:
    s, store, sub = scheduler(Source([policy()]))
    await s.tick(at("2026-01-10T10:20:00"))
    assert sub.jobs == []
    assert await store.last_slot("home:snapshot") == "2026-01-10T10:00:00Z"
    await s.tick(at("2026-01-10T10:59:59"))
    assert sub.jobs == []
    await s.tick(at("2026-01-10T11:00:00"))
    assert sub.jobs == [Submitted("home", "snapshot", None, "2026-01-10T11:00:00Z", True)]


@pytest.mark.parametrize("start, end", [("2026-03-28T20:00:00", "2026-03-29T05:10:00"),   # spring forward
                                        ("2026-10-24T20:00:00", "2026-10-25T05:10:00")])  # fall back
async def test_hourly_across_a_dst_change_runs_once_every_real_hour(start: str, end: str) -> None:
    s, _, sub = scheduler(Source([policy()]))
    await every(s, at(start), at(end), timedelta(minutes=7))
    slots = [j.slot for j in sub.jobs]
    hours = [(at(start) + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00:00Z") for h in range(1, 10)]
    assert slots == hours  # one run per UTC hour: none doubled in the repeated hour, none lost in the skipped


async def test_a_fixed_hour_schedule_runs_once_on_both_dst_days() -> None:
    s, _, sub = scheduler(Source([policy(schedule="30 2 * * *")]))
    await every(s, at("2026-03-27T12:00:00"), at("2026-03-30T12:00:00"), timedelta(minutes=10))
    # 02:30 CET on the 28th; the 29th has no 02:30: once at the change (03:00 CEST); 02:30 CEST on the 30th
    assert [j.slot for j in sub.jobs] == ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    s, _, sub = scheduler(Source([policy(schedule="30 2 * * *")]))
    await every(s, at("2026-10-24T12:00:00"), at("2026-10-26T12:00:00"), timedelta(minutes=10))
    # the 25th repeats 02:30: the first pass (CEST) only
    assert [j.slot for j in sub.jobs] == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]


async def test_three_days_down_makes_up_exactly_one_run() -> None:
    s, _, sub = scheduler(Source([policy()]))
    await s.tick(at("2026-05-01T08:30:00"))  # baseline
    await s.tick(at("2026-05-01T09:00:05"))
    assert [j.slot for j in sub.jobs] == ["2026-05-01T09:00:00Z"]
    await every(s, at("2026-05-04T09:40:00"), at("2026-05-04T09:50:00"), timedelta(minutes=1))
    assert [j.slot for j in sub.jobs] == ["2026-05-01T09:00:00Z", "2026-05-04T09:00:00Z"]


async def test_two_schedulers_on_one_store_run_each_slot_once() -> None:
    source = Source([policy(), policy("var", "*/15 * * * *", "UTC")])
    sub = Submitter()
    one, store, _ = scheduler(source, submitter=sub)
    two, _, _ = scheduler(source, store, sub)
    now = at("2026-06-01T00:00:00")
    while now < at("2026-06-01T03:00:00"):
        await asyncio.gather(one.tick(now), two.tick(now + timedelta(seconds=3)))
        now += timedelta(minutes=4)
    keys = [(j.policy, j.slot) for j in sub.jobs]
    assert len(keys) == len(set(keys)) == 2 + 11  # after the 00:00 baseline, up to 02:56:03: 01, 02; 00:15-02:45
    assert sorted(k for k in keys if k[0] == "home") == [("home", "2026-06-01T01:00:00Z"),
                                                         ("home", "2026-06-01T02:00:00Z")]


async def test_a_disabled_policy_runs_nothing_and_claims_nothing() -> None:
    s, store, sub = scheduler(Source([policy(enabled=False)]))
    await every(s, at("2026-06-01T00:00:00"), at("2026-06-01T05:00:00"), timedelta(minutes=10))
    assert sub.jobs == [] and await store.last_slot("home:snapshot") is None


async def test_own_cron_targets_run_their_own_slots_and_after_snapshot_targets_follow_the_snapshot() -> None:
    p = policy(replicate={"nas2": {"remote": "local", "destination": "backup/home", "schedule": "15 */2 * * *"},
                          "nas3": {"remote": "local", "destination": "backup/h3", "schedule": "after_snapshot"},
                          "manual": {"remote": "local", "destination": "backup/m"}})
    s, store, sub = scheduler(Source([p]))
    await every(s, at("2026-06-01T00:00:00"), at("2026-06-01T02:30:00"), timedelta(minutes=5))
    # every other hour in Berlin (UTC+2 in June) at :15; the baseline at 00:00 UTC is 22:15 the day before
    assert sub.jobs == [Submitted("home", "replicate", "nas2", "2026-06-01T00:15:00Z", False),
                        Submitted("home", "snapshot", None, "2026-06-01T01:00:00Z", True),
                        Submitted("home", "snapshot", None, "2026-06-01T02:00:00Z", True),
                        Submitted("home", "replicate", "nas2", "2026-06-01T02:15:00Z", False)]
    assert await store.last_slot("home:replicate:nas3") is None  # run by the snapshot job's chain


def test_the_backoff_doubles_from_a_minute_up_to_an_hour() -> None:
    assert [retry_backoff(n).total_seconds() for n in range(1, 10)] == [
        60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert retry_backoff(10_000) == timedelta(hours=1)
    with pytest.raises(ValueError):
        retry_backoff(0)


async def test_a_failed_target_is_retried_once_after_each_backoff() -> None:
    p = policy(schedule="0 0 * * *", tz="UTC",
               replicate={"nas2": {"remote": "local", "destination": "b/h", "schedule": "after_snapshot"}})
    source, sub = Source([p]), Submitter()
    one, store, _ = scheduler(source, submitter=sub)
    two, _, _ = scheduler(source, store, sub)
    failed = at("2026-06-01T10:00:00")
    await store.note("home", "target:nas2", {"last_success": None, "failures": 1,
                                             "last_failure": failed.timestamp(), "last_error": "x"})
    for s in (one, two):
        await s.tick(failed + timedelta(seconds=59))
    assert sub.jobs == []
    assert one.sleep_seconds(failed + timedelta(seconds=59)) == 1.0  # wakes for the retry
    for seconds in (60, 61, 90, 600):
        for s in (one, two):
            await s.tick(failed + timedelta(seconds=seconds))
    assert sub.jobs == [Submitted("home", "replicate", "nas2", "2026-06-01T10:01:00Z", False)]
    again = failed + timedelta(seconds=700)  # the retry failed too: two in a row, 2 min
    await store.note("home", "target:nas2", {"failures": 2, "last_failure": again.isoformat(), "last_error": "y"})
    await one.tick(again + timedelta(seconds=119))
    assert len(sub.jobs) == 1
    await two.tick(again + timedelta(seconds=120))
    await one.tick(again + timedelta(seconds=121))
    assert sub.jobs[1:] == [Submitted("home", "replicate", "nas2", "2026-06-01T10:13:40Z", False)]
    await store.note("home", "target:nas2", {"failures": 0, "last_success": again.timestamp() + 500})
    await one.tick(again + timedelta(hours=2))
    assert len(sub.jobs) == 2  # a success: no more retries


async def test_no_retry_for_targets_that_run_only_when_asked() -> None:
    p = policy(replicate={"manual": {"remote": "local", "destination": "b/h"}})
    chained = policy("asked", schedule=None,  # after_snapshot, but the snapshot runs only when asked
                     replicate={"nas2": {"remote": "local", "destination": "b/h", "schedule": "after_snapshot"}})
    s, store, sub = scheduler(Source([p, chained]))
    await store.note("home", "target:manual", {"failures": 3, "last_failure": 0})
    await store.note("asked", "target:nas2", {"failures": 1, "last_failure": 0})
    await s.tick(at("2026-06-01T10:20:00"))
    assert sub.jobs == []
    await store.note("home", "target:manual", {"failures": 3, "last_failure": "not a time"})
    await s.tick(at("2026-06-01T10:21:00"))
    assert sub.jobs == []


async def test_the_observer_gets_next_runs_and_last_successes() -> None:
    p = policy(replicate={"nas2": {"remote": "local", "destination": "b/h", "schedule": "45 * * * *"},
                          "nas3": {"remote": "local", "destination": "b/i", "schedule": "after_snapshot"}})
    observer = Observer()
    s, store, _ = scheduler(Source([p, policy("off", enabled=False)]), observer=observer)
    await store.note("home", "target:nas3", {"last_success": 1_780_000_000.5, "failures": 0})
    now = at("2026-06-01T10:20:00")
    await s.tick(now)
    assert observer.seen == [[PolicyStatus("home", {"snapshot": at("2026-06-01T11:00:00"),
                                                    "replicate": at("2026-06-01T10:45:00")},
                                           {"nas3": 1_780_000_000.5})]]
    assert s.sleep_seconds(now) == 30.0  # the next slot is 25 min away: the upper bound
    assert s.sleep_seconds(at("2026-06-01T10:44:50")) == 10.0


async def test_a_refused_submission_is_logged_and_the_other_policies_still_run(caplog) -> None:
    s, _, sub = scheduler(Source([policy("a"), policy("b")]))
    await s.tick(at("2026-06-01T10:20:00"))
    sub.refuse = True
    with caplog.at_level(logging.WARNING, "zfsapi.policies"):
        await s.tick(at("2026-06-01T11:00:00"))
    refused = [r for r in caplog.records if r.getMessage().startswith("policy run not submitted")]
    assert [r.policy for r in refused] == ["a", "b"] and sub.jobs == []  # type: ignore[attr-defined]


async def test_run_survives_a_failing_tick_and_wakes_on_changed(caplog) -> None:
    source = Source([policy()], fail=1)
    s, _, _ = scheduler(source, min_sleep=0.01, max_sleep=0.01)
    loop = asyncio.get_running_loop()

    async def until(condition: Any) -> None:
        end = loop.time() + DEADLINE
        while not condition():
            assert loop.time() < end, "condition not reached"
            await asyncio.sleep(0.01)

    with caplog.at_level(logging.WARNING, "zfsapi.policies"):
        await s.start()
        try:
            await until(lambda: source.calls >= 3)
        finally:
            await s.stop()
    failures = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert len(failures) == 1
    slow, _, _ = scheduler(source, min_sleep=1000, max_sleep=1000)
    before = source.calls
    await slow.start()
    try:
        await until(lambda: source.calls == before + 1)
        slow.changed.set()
        await until(lambda: source.calls == before + 2)  # only `changed` could wake it this soon
    finally:
        await slow.stop()
