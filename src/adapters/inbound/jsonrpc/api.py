"""Every method in one registry: auth, the core, transfers, jobs, migrations, policies, and rpc.discover (which describes the rest)."""

from __future__ import annotations

from zfsapi import __version__
from zfsapi.adapters.metrics import Metrics
from zfsapi.application.auth import AuthUseCases
from zfsapi.application.catalog import UseCases
from zfsapi.application.health import HealthMonitor
from zfsapi.application.jobs import Jobs
from zfsapi.application.ports import RateLimiter
from zfsapi.application.replication import StartMigration

from ..http.live import Access, Live

from .auth_methods import register_auth
from .health_methods import HEALTH
from .job_methods import register_jobs
from .methods import register_core
from .openrpc import register_discover
from .policy_methods import PolicyUseCases, register_policies
from .replication_methods import register_replication
from .registry import Registry
from .transfer_methods import register_transfers


def build_registry(uc: UseCases, auth: AuthUseCases, limiter: RateLimiter, access: Live[Access], metrics: Metrics,
                   jobs: Jobs, start_migration: StartMigration, policies: PolicyUseCases,
                   health: HealthMonitor | None = None) -> Registry:
    registry = Registry()
    register_auth(registry, auth.login, auth.logout, limiter, lambda: access.current.login_limit, metrics)
    register_core(registry, uc)
    register_transfers(registry, uc.__getitem__)
    register_jobs(registry, jobs)
    register_replication(registry, jobs, start_migration)
    register_policies(registry, policies)
    if health is not None:
        registry.include(HEALTH, lambda _: health)
    register_discover(registry, title="zfsapi", version=__version__)
    return registry
