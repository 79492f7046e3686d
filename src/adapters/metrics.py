"""Prometheus metrics shared by the adapters. Labels are bounded: never a dataset name, except the replication
destinations (as many as the replications set up, read from at most `RECENT_JOBS` records); the policy metrics
are labelled by configured policy and target names and the steps (snapshot, replicate, prune) only."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from zfsapi.application.jobs import Jobs
from zfsapi.application.scheduler import PolicyStatus
from zfsapi.domain.alerts import Alert
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.jobs import JobState

RECENT_JOBS = 1000  # succeeded migrations read per scrape, newest first: the scrape's cost stays bounded
_SCRAPER = Principal("metrics", Role.ADMIN)  # sees every job
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """One registry per app instance (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # outcome: ok, client_error (bad params, not found, exists, busy, conflict), auth (authentication required,
        # invalid token or credentials, permission denied), zfs_error (zfs failed or unavailable), internal
        self.rpc_requests = Counter(
            "zfsapi_rpc_requests", "JSON-RPC calls by method and outcome", ["method", "outcome"], registry=r
        )
        self.rpc_latency = Histogram(
            "zfsapi_rpc_latency_seconds", "JSON-RPC call latency", ["method", "outcome"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.zfs_commands = Counter(
            "zfsapi_zfs_commands", "zfs/zpool commands run, by binary, verb and outcome",
            ["binary", "verb", "outcome"], registry=r,
        )
        self.zfs_duration = Histogram(
            "zfsapi_zfs_command_seconds", "zfs/zpool command durations", ["binary", "verb"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.stream_bytes = Counter(
            "zfsapi_stream_bytes", "Bytes moved by HTTP streams", ["direction"], registry=r
        )
        self.file_bytes = Counter(
            "zfsapi_transfer_file_bytes", "Bytes written by send_to_file and read by receive_from_file",
            ["direction"], registry=r,
        )
        self.streams_active = Gauge("zfsapi_streams_active", "Streams transferring now", registry=r)
        self.stream_duration = Histogram(
            "zfsapi_stream_duration_seconds", "HTTP stream transfer durations by operation and outcome",
            ["operation", "outcome"], buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400), registry=r,
        )
        self.rate_limited = Counter(
            "zfsapi_rate_limit_refusals", "Requests refused by a rate limit, by limit (requests, login)", ["limit"],
            registry=r,
        )
        self.logins = Counter("zfsapi_logins", "auth_login attempts by outcome", ["outcome"], registry=r)
        self.pool_size = Gauge("zfsapi_pool_size_bytes", "Pool size", ["pool"], registry=r)
        self.pool_allocated = Gauge("zfsapi_pool_allocated_bytes", "Pool allocated space", ["pool"], registry=r)
        self.pool_free = Gauge("zfsapi_pool_free_bytes", "Pool free space", ["pool"], registry=r)
        self.pool_health = Gauge(
            "zfsapi_pool_health", "1 for the pool's current health state", ["pool", "health"], registry=r
        )
        self.job_bytes = Counter(
            "zfsapi_job_bytes", "Bytes moved by jobs this process ran, by kind and end state", ["kind", "state"],
            registry=r,
        )
        self.store_up = Gauge("zfsapi_store_up", "1 when the store answered its last check (/health, /metrics)",
                              ["store", "backend"], registry=r)
        self.jobs = Gauge("zfsapi_jobs", "Jobs in the job store by state (every worker's)", ["state"], registry=r)
        self.replication_last_success = Gauge(
            "zfsapi_replication_last_success_timestamp_seconds",
            "When the newest successful migration to the destination ended", ["destination"], registry=r,
        )
        self.replication_since_success = Gauge(
            "zfsapi_replication_seconds_since_success",
            "Seconds since the newest successful migration to the destination ended", ["destination"], registry=r,
        )

        self._policy_metrics(r)

    def _policy_metrics(self, r: CollectorRegistry) -> None:
        self.policy_last_success = Gauge(
            "zfsapi_policy_last_success_timestamp_seconds",
            "When the policy's newest successful replication to the target ended", ["policy", "target"],
            registry=r,
        )
        self.policy_target_lag = Gauge(
            "zfsapi_policy_target_lag_seconds", "Seconds since the policy's newest successful replication to the "
            "target ended", ["policy", "target"], registry=r,
        )
        self.policy_next_run = Gauge(
            "zfsapi_policy_next_run_timestamp_seconds", "The policy's next scheduled run of the step (replicate: "
            "the nearest of its targets with a cron of their own)", ["policy", "step"], registry=r,
        )
        self.policy_snapshots_owned = Gauge(
            "zfsapi_policy_snapshots_owned", "Snapshots the policy owns, as its newest snapshot or prune job in "
            "this process counted them", ["policy"], registry=r,
        )
        self.policy_snapshots_destroyed = Counter(
            "zfsapi_policy_snapshots_destroyed", "Snapshots the policy's prunes in this process destroyed",
            ["policy"], registry=r,
        )
        self.policy_failures = Counter(
            "zfsapi_policy_failures", "Failed runs of the policy's steps in this process", ["policy", "step"],
            registry=r,
        )
        # health checks (application/health.py): the alerts of this process's monitor, 1 while holding, 0 once
        # cleared (labels bounded: subjects are pools, policies, policy:target and job kinds)
        self.alert_active = Gauge("zfsapi_alert_active", "1 while the alert holds, 0 once it cleared",
                                  ["kind", "subject", "severity"], registry=r)
        self.health_checks = Counter("zfsapi_health_checks", "Health checks run, by check (alert kind)", ["check"],
                                     registry=r)
        self.health_check_failures = Counter(
            "zfsapi_health_check_failures", "Health checks that could not read what they need, by check", ["check"],
            registry=r)
        self.health_last_round = Gauge("zfsapi_health_last_round_timestamp_seconds",
                                       "When the last round of health checks ended", registry=r)
        self._alert_labels: set[tuple[str, str, str]] = set()

    # ---- PolicyObserver (application/scheduler.py): the scheduler's ticks and the policy job kinds ----
    def policies_seen(self, statuses: list[PolicyStatus], now: datetime) -> None:
        """The enabled policies as the scheduler's tick saw them: their series replace the last tick's (a policy
        or target removed, or disabled, drops out; a target that never succeeded has no series)."""
        gauges = (self.policy_last_success, self.policy_target_lag, self.policy_next_run)
        for gauge in gauges:
            gauge.clear()
        at = now.timestamp()
        for status in statuses:
            for target, success in status.last_success.items():
                self.policy_last_success.labels(status.policy, target).set(success)
                self.policy_target_lag.labels(status.policy, target).set(max(0.0, at - success))
            for step, when in status.next_runs.items():
                if when is not None:
                    self.policy_next_run.labels(status.policy, step).set(when.timestamp())

    def snapshots_owned(self, policy: str, count: int) -> None:
        self.policy_snapshots_owned.labels(policy).set(count)

    def snapshots_destroyed(self, policy: str, count: int) -> None:
        self.policy_snapshots_destroyed.labels(policy).inc(count)

    def step_failed(self, policy: str, step: str) -> None:
        self.policy_failures.labels(policy, step).inc()

    def check_ran(self, check: str, ok: bool) -> None:
        """A health check ran (HealthGauges)."""
        self.health_checks.labels(check).inc()
        if not ok:
            self.health_check_failures.labels(check).inc()

    def alerts_now(self, alerts: Sequence[Alert]) -> None:
        """The alerts holding after a round (HealthGauges): 1 for each, 0 for those seen before that cleared."""
        holding = {(a.finding.kind, a.finding.subject, a.finding.severity) for a in alerts}
        for labels in self._alert_labels - holding:
            self.alert_active.labels(*labels).set(0)
        for labels in holding:
            self.alert_active.labels(*labels).set(1)
        self._alert_labels |= holding
        self.health_last_round.set(time.time())

    def job_ended(self, kind: str, state: str, nbytes: int) -> None:
        """A job this process ran has ended, having moved `nbytes`."""
        self.job_bytes.labels(kind, state).inc(nbytes)

    async def observe_jobs(self, jobs: Jobs, now: float | None = None) -> None:
        """Read the job gauges from the store (shared by every worker, so every worker's scrape agrees): the
        queued and running jobs, and per replication destination (`host:pool/ds` for a remote, the dataset on
        this host) its newest success among the newest `RECENT_JOBS` successful migrations. When the store
        cannot be read the gauges are dropped (absent, not stale) and the error raised."""
        gauges = (self.jobs, self.replication_last_success, self.replication_since_success)
        for gauge in gauges:
            gauge.clear()
        counts = {state: (await jobs.list(_SCRAPER, state=state, limit=1))[1]
                  for state in (JobState.QUEUED, JobState.RUNNING)}
        succeeded, _ = await jobs.list(_SCRAPER, state=JobState.SUCCEEDED, kind="migration_create",
                                       limit=RECENT_JOBS)
        now = time.time() if now is None else now
        for state, total in counts.items():
            self.jobs.labels(state.value).set(total)
        newest: dict[str, float] = {}
        for job in succeeded:
            remote, destination = job.params.get("remote"), job.params.get("destination")
            if job.finished_at is None or not isinstance(destination, str):
                continue
            label = f"{remote}:{destination}" if remote else destination
            newest[label] = max(newest.get(label, 0.0), job.finished_at)
        for label, finished in newest.items():
            self.replication_last_success.labels(label).set(finished)
            self.replication_since_success.labels(label).set(max(0.0, now - finished))
