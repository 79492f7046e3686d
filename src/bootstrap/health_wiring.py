"""The health monitor and the alert webhooks, built from the settings (`health:`, `alerts:`) and the ports the
container provides: what containers.py and lifecycle.py call (kept here so their edits stay a few lines)."""

from __future__ import annotations

from typing import Any

from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.alerts.webhooks import Webhook, WebhookNotifier
from zfsapi.application.health import (
    SCRUBBER,
    HealthChecks,
    HealthMonitor,
    HealthOptions,
    PolicyEntries,
    ScrubSchedule,
)
from zfsapi.application.jobs import Jobs
from zfsapi.application.policy_ports import PolicyZfs
from zfsapi.application.policy_state import PolicyLedger
from zfsapi.application.ports import JobStore, Pools
from zfsapi.domain.alerts import CapacityLevels
from zfsapi.domain.names import PoolName
from zfsapi.domain.schedules import Schedule

from .settings import Settings


def health_options(settings: Settings) -> HealthOptions:
    """`health:` (checked by load_settings) as the checks take it."""
    h = settings.health
    return HealthOptions(
        interval=h.interval, scrub_max_age_days=h.scrub_max_age_days,
        capacity=CapacityLevels(h.capacity.warning, h.capacity.critical, h.capacity.full),
        failed_job_window=h.failed_job_window,
        scrub_schedule=None if h.scrub_schedule is None else Schedule.parse(h.scrub_schedule, "UTC"))


def webhook_notifier(settings: Settings) -> WebhookNotifier:
    a = settings.alerts
    return WebhookNotifier([Webhook(w.url, tuple(w.kinds), w.min_severity) for w in a.webhooks],
                           attempts=a.attempts, timeout=a.timeout)


def health_monitor(settings: Settings, pools: Pools, store: JobStore, metrics: Metrics, notifier: WebhookNotifier,
                   jobs: Jobs, *, policies: PolicyEntries | None = None, ledger: PolicyLedger | None = None,
                   policy_zfs: PolicyZfs | None = None) -> HealthMonitor:
    """The monitor of this process. Policies are checked once the catalog, the ledger and the policy ZFS port
    are all given; the scrub schedule needs the ledger (each slot claimed there once)."""
    options = health_options(settings)
    checks = HealthChecks(pools, store, options, policies=policies, ledger=ledger, policy_zfs=policy_zfs)

    async def start_scrub(pool: PoolName) -> Any:
        return await jobs.submit("pool_scrub_start", SCRUBBER, {"pool": pool.value, "background": False},
                                 (pool.value,), origin="embedded")

    scrubs = None
    if options.scrub_schedule is not None and ledger is not None:
        scrubs = ScrubSchedule(options.scrub_schedule, ledger, start_scrub)
    return HealthMonitor(checks, notifier, metrics, options.interval, scrubs=scrubs, pools=pools)
