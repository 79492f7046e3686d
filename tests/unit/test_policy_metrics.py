"""The policy metrics in the exposition text: what a scheduler tick reports (last success, lag, next runs), what
the job kinds report (owned, destroyed, failures), and series dropping out with their policy or target."""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import generate_latest

from tests.unit.test_scheduler import Source, Submitter, policy
from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.application.scheduler import PolicyObserver, PolicyScheduler

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 10, 20, tzinfo=UTC)


class Clock:
    def now(self) -> datetime:
        return NOW


def lines(metrics: Metrics, prefix: str) -> list[str]:
    """The exposition's sample lines starting with `prefix`, sorted."""
    text = generate_latest(metrics.registry).decode()
    return sorted(line for line in text.splitlines() if line.startswith(prefix))


def values(metrics: Metrics, name: str) -> dict[str, float]:
    """`{'{policy="home",target="nas2"}': 1.7e9}` of one metric's sample lines."""
    out = {}
    for line in lines(metrics, name + "{"):
        labels, value = line[len(name):].rsplit(" ", 1)
        out[labels] = float(value)
    return out


async def test_a_tick_exposes_last_success_lag_and_next_runs() -> None:
    metrics = Metrics()
    observer: PolicyObserver = metrics  # the adapter implements the application's port
    home = policy(replicate={"nas2": {"remote": "local", "destination": "b/h", "schedule": "45 * * * *"},
                             "nas3": {"remote": "local", "destination": "b/i", "schedule": "after_snapshot"}})
    source = Source([home, policy("var", schedule=None, tz="UTC")])
    store = MemoryPolicyStore()
    await store.note("home", "target:nas2", {"last_success": NOW.timestamp() - 90, "failures": 0})
    await store.note("home", "target:nas3", {"last_success": "2026-06-01T10:00:00Z", "failures": 0})
    scheduler = PolicyScheduler(source, store, Submitter(), Clock(), observer)
    await scheduler.tick(NOW)
    t = NOW.timestamp()
    assert values(metrics, "zfsapi_policy_last_success_timestamp_seconds") == {
        '{policy="home",target="nas2"}': t - 90, '{policy="home",target="nas3"}': t - 1200}
    assert values(metrics, "zfsapi_policy_target_lag_seconds") == {
        '{policy="home",target="nas2"}': 90.0, '{policy="home",target="nas3"}': 1200.0}
    assert values(metrics, "zfsapi_policy_next_run_timestamp_seconds") == {
        '{policy="home",step="replicate"}': t + 25 * 60, '{policy="home",step="snapshot"}': t + 40 * 60}
    assert "# TYPE zfsapi_policy_target_lag_seconds gauge" in generate_latest(metrics.registry).decode()
    source.policies = [policy("var", schedule=None, tz="UTC")]  # home removed: its series go
    await scheduler.tick(NOW)
    assert lines(metrics, "zfsapi_policy_") == []


def test_the_job_kinds_report_owned_destroyed_and_failures() -> None:
    metrics = Metrics()
    metrics.snapshots_owned("home", 40)
    metrics.snapshots_owned("home", 37)
    metrics.snapshots_destroyed("home", 3)
    metrics.snapshots_destroyed("home", 2)
    metrics.step_failed("home", "replicate")
    metrics.step_failed("home", "replicate")
    metrics.step_failed("var", "prune")
    assert lines(metrics, "zfsapi_policy_snapshots_owned") == ['zfsapi_policy_snapshots_owned{policy="home"} 37.0']
    assert lines(metrics, "zfsapi_policy_snapshots_destroyed_total") == [
        'zfsapi_policy_snapshots_destroyed_total{policy="home"} 5.0']
    assert lines(metrics, "zfsapi_policy_failures_total") == [
        'zfsapi_policy_failures_total{policy="home",step="replicate"} 2.0',
        'zfsapi_policy_failures_total{policy="var",step="prune"} 1.0']
