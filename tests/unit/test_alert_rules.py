"""health_status and the alert pipeline end to end, in process: the real container with fakes at the ports,
alerts raised through them, health_status as callers see it, a real scrape of /metrics, and
packaging/prometheus/zfsapi-alerts.yml checked (`promtool check rules`) and tested over the scraped series
(`promtool test rules`): the alerts the fakes raise fire, the others do not. Without promtool the test fails
in CI (the CI variable set) and is skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from dependency_injector import providers
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import http_client
from tests.fakes import FakePolicyOps, FakeZfs
from zfsapi.adapters.inbound.jsonrpc.health_methods import health_status
from zfsapi.adapters.inbound.jsonrpc.registry import CallContext, NoParams
from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.bootstrap.health_wiring import health_monitor
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.jobs import Job, JobError, JobOwner, JobState
from zfsapi.domain.models import Pool, ScanStatus
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.policies import Policy, parse_policy

RULES = Path(__file__).resolve().parents[2] / "packaging" / "prometheus" / "zfsapi-alerts.yml"
HOUR = 3600.0


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (Debian: apt-get install prometheus; scripts/test installs it)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


class Zfs(FakeZfs):
    """Two pools: tank DEGRADED, never scrubbed and 91 % full; pool2 ONLINE, freshly scrubbed."""

    def __init__(self) -> None:
        super().__init__(pools=["tank", "pool2"])
        self.pools["tank"].health = "DEGRADED"
        self.pools["pool2"].scan = ScanStatus("scrub", "finished", 100.0, None, None, 0, time.time())

    async def list_pools(self) -> list[Pool]:
        return [replace(p, capacity=91) if p.name == "tank" else p for p in await super().list_pools()]


@dataclass(frozen=True)
class Entry:
    policy: Policy


class Catalog:
    def __init__(self, *policies: Policy) -> None:
        self.policies = policies

    async def entries(self) -> list[Entry]:
        return [Entry(p) for p in self.policies]


POLICY = parse_policy({"name": "home", "datasets": ["tank/home"], "snapshot": {"schedule": "0 * * * *"},
                       "replicate": {"nas": {"remote": "local", "destination": "pool2/home", "max_lag": 3600}}})


async def alerting_container(container: Any, zfs: Zfs) -> Any:
    """The container, its health monitor given a policy catalog, and state behind every kind of alert."""
    ledger = MemoryPolicyStore()
    ops = FakePolicyOps(zfs, now=lambda: int(time.time() - 5 * HOUR))
    await zfs.create_dataset(DatasetName.parse("tank/home"), properties={}, parents=False)
    await ops.take([SnapshotName.parse("tank/home@auto-old")], recursive=False, policy="home")
    await ledger.note("home", "target:nas", {"last_success": time.time() - 3 * HOUR})
    store = container.job_store()
    await store.add(Job("f1", "send_to_file", JobOwner("root", "admin"), {}, ("pool2/data",), time.time() - 60,
                        state=JobState.FAILED, finished_at=time.time() - 30, error=JobError("no space left")))
    monitor = health_monitor(container.settings(), zfs, store, container.metrics(), container.alert_notifier(),
                             container.jobs(), policies=Catalog(POLICY), ledger=ledger, policy_zfs=ops)
    container.health.override(providers.Object(monitor))
    return monitor


EXPECTED = ["job_failed:send_to_file", "pool_capacity:tank", "pool_health:tank", "replication_lag:home:nas",
            "scrub_age:tank", "snapshot_freshness:home"]


@pytest.fixture
def zfs() -> Zfs:
    return Zfs()


@pytest.fixture
def fake_zfs(zfs: Zfs) -> FakeZfs:
    return zfs


async def test_health_status_shows_each_caller_what_it_may_see(container: Any, zfs: Zfs) -> None:
    monitor = await alerting_container(container, zfs)
    async with http_client(http_app(container)) as client:
        before = (await client.post("/", json={"jsonrpc": "2.0", "method": "health_status", "id": 1})).json()
        assert before["result"] == {"alerts": [], "checked_at": None}
        changes = await monitor.check_now()
        assert sorted(c.alert.id for c in changes) == EXPECTED
        body = (await client.post("/", json={"jsonrpc": "2.0", "method": "health_status", "id": 2})).json()
    result = body["result"]
    assert [a["id"] for a in result["alerts"]] == EXPECTED and result["checked_at"].endswith("Z")
    tank = next(a for a in result["alerts"] if a["id"] == "pool_health:tank")
    assert tank == {"id": "pool_health:tank", "kind": "pool_health", "severity": "warning", "subject": "tank",
                    "message": "pool tank is DEGRADED", "since": tank["since"]}
    datetime.fromisoformat(tank["since"].replace("Z", "+00:00"))

    async def seen_by(who: Principal) -> list[str]:
        ctx = CallContext(request_id="t", peer="test", principal=who)
        return [a.id for a in (await health_status(monitor, NoParams(), ctx)).alerts]

    assert await seen_by(Principal("home", Role.READONLY, ("tank/home",))) == [
        "pool_capacity:tank", "pool_health:tank", "replication_lag:home:nas", "scrub_age:tank",
        "snapshot_freshness:home"]
    assert await seen_by(Principal("data", Role.READONLY, ("pool2/data",))) == ["job_failed:send_to_file"]
    assert await seen_by(Principal("other", Role.OPERATOR, ("pool3",))) == []


def series_of(scrape: str, extra: dict[str, str]) -> dict[str, float]:
    """Every sample of a Prometheus text scrape as `name{labels}` -> value, with the labels a scrape adds."""
    out = {}
    for family in text_string_to_metric_families(scrape):
        for s in family.samples:
            labels = {**s.labels, **extra}
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            out[f"{s.name}{{{text}}}"] = float(s.value)
    return out


def annotations(alertname: str, labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for an alert with `labels` (only `$labels.x`
    templates: the alerts tested here use no other)."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    rule = next(r for r in rules if r["alert"] == alertname)
    out = {}
    for key, text in rule.get("annotations", {}).items():
        for name, value in labels.items():
            text = text.replace("{{ $labels.%s }}" % name, value)
        assert "{{" not in text, f"{alertname}.{key}: a template this test does not render: {text}"
        out[key] = text
    return out


def promtool_test(series: dict[str, float], expected: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    """A promtool test file: the series constant for 30 minutes, each rule's alerts expected at 20 minutes."""
    return {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": name, "values": f"{value:.3f}+0x30"} for name, value in series.items()],
            "alert_rule_test": [{"eval_time": "20m", "alertname": name,
                                 "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations(name, labels)}
                                                for labels in alerts]}
                                for name, alerts in expected.items()],
        }],
    }


def run_promtool(tmp_path: Path, test: dict[str, Any]) -> None:
    path = tmp_path / "zfsapi-alerts-test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_file_is_valid() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


async def test_the_alert_rules_fire_over_a_real_scrape(container: Any, zfs: Zfs, tmp_path: Path) -> None:
    monitor = await alerting_container(container, zfs)
    await monitor.check_now()
    async with http_client(http_app(container)) as client:
        scrape = (await client.get("/metrics")).text
    at = {"job": "zfsapi", "instance": "test"}
    series = {**series_of(scrape, at), 'up{instance="test",job="zfsapi"}': 1.0}
    assert 'zfsapi_alert_active{instance="test",job="zfsapi",kind="pool_health",severity="warning",' \
           'subject="tank"}' in series

    def active(kind: str, subject: str, severity: str) -> dict[str, str]:
        return {**at, "kind": kind, "subject": subject, "severity": severity}

    expected = {
        "ZfsPoolDegraded": [{**at, "pool": "tank", "health": "DEGRADED", "severity": "warning"}],
        "ZfsPoolFaulted": [],
        "ZfsPoolCapacity": [active("pool_capacity", "tank", "critical")],
        "ZfsScrubOverdue": [active("scrub_age", "tank", "warning")],
        "ZfsapiSnapshotsStale": [active("snapshot_freshness", "home", "critical")],
        "ZfsapiReplicationLag": [active("replication_lag", "home:nas", "critical")],
        "ZfsapiJobsFailed": [active("job_failed", "send_to_file", "warning")],
        "ZfsapiDown": [],
        "ZfsapiJobStoreDown": [],
        "ZfsapiHealthChecksFailing": [],
        "ZfsapiHealthChecksStalled": [],
    }
    run_promtool(tmp_path, promtool_test(series, expected))

    # the same scrape with the server and its job store down: those two fire
    store = next(name for name in series if name.startswith("zfsapi_store_up{"))
    down = {**series, 'up{instance="test",job="zfsapi"}': 0.0, store: 0.0}
    backend = container.http_options().jobs_backend
    run_promtool(tmp_path, promtool_test(down, {
        "ZfsapiDown": [{**at, "severity": "critical"}],
        "ZfsapiJobStoreDown": [{**at, "store": "jobs", "backend": backend, "severity": "critical"}],
    }))


async def test_the_rules_and_the_dashboard_read_only_metrics_the_server_serves(container: Any, zfs: Zfs) -> None:
    """Every zfsapi_* name in the rules file and the Grafana dashboard is a sample of a real scrape (the job
    gauges, histograms and counters all present once something was recorded)."""
    import json
    import re

    monitor = await alerting_container(container, zfs)
    await monitor.check_now()
    metrics = container.metrics()
    metrics.job_ended("send_to_file", "failed", 0)
    metrics.check_ran("scrub_age", False)
    metrics.zfs_duration.labels("zfs", "list").observe(0.01)
    await container.job_store().add(Job("m1", "migration_create", JobOwner("root", "admin"),
                                        {"destination": "pool2/copy"}, ("pool2/copy",), time.time() - 60,
                                        state=JobState.SUCCEEDED, finished_at=time.time() - 30))
    async with http_client(http_app(container)) as client:
        await client.post("/", json={"jsonrpc": "2.0", "method": "pool_list", "id": 1})
        scrape = (await client.get("/metrics")).text
    served = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
    dashboard = Path(__file__).resolve().parents[2] / "packaging" / "grafana" / "zfsapi-dashboard.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = {name for e in exprs for name in re.findall(r"\bzfsapi_[a-z_]+", e)}
    assert used and not used - served, sorted(used - served)


async def test_health_status_over_http_for_a_scoped_readonly_token(tmp_path: Path, zfs: Zfs) -> None:
    """Through the dispatcher (token, role, scope): a readonly user scoped to tank/home may call health_status
    and gets the alerts of tank and of the policy on tank/home, not the failed job on pool2."""
    from tests.unit.test_job_rights import login, settings
    from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
    from zfsapi.bootstrap import build_container

    (tmp_path / "files").mkdir()
    c = build_container(settings(tmp_path, {"role": "readonly", "datasets": ["tank/home"]}))
    c.zfs.override(providers.Object(zfs))
    c.job_store.override(providers.Object(MemoryJobStore()))
    monitor = await alerting_container(c, zfs)
    await monitor.check_now()
    async with http_client(http_app(c), peer="192.0.2.7") as client:
        token = await login(client, "ops")
        answer = (await client.post("/", json={"jsonrpc": "2.0", "method": "health_status", "id": 1},
                                    headers={"Authorization": f"Bearer {token}"})).json()
        anonymous = (await client.post("/", json={"jsonrpc": "2.0", "method": "health_status", "id": 2})).json()
    assert [a["id"] for a in answer["result"]["alerts"]] == [
        "pool_capacity:tank", "pool_health:tank", "replication_lag:home:nas", "scrub_age:tank",
        "snapshot_freshness:home"]
    assert anonymous["error"]["code"] == -32001
