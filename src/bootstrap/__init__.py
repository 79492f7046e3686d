"""Composition root: the only package that imports every layer.

Embedding the use cases without HTTP::

    from zfsapi.bootstrap import open_api
    from zfsapi.domain.names import DatasetName

    api = open_api()                       # or open_api("config.yaml", zfs={"timeout": 60})
    snaps = await api.snapshot_list.execute(dataset=DatasetName.parse("tank/data"))

Long calls as jobs (progress, cancel, result)::

    async with open_jobs() as jobs:
        job = await jobs.start("migration_create", source="tank/data@s1", destination="backup/data")
        result = await jobs.result(job.job_id, on_progress=print)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zfsapi.adapters.inbound.jsonrpc.local_jobs import JobFailed, LocalJobs
from zfsapi.application.catalog import UseCases
from zfsapi.domain.authz import LOCALHOST, Principal

from .containers import Container, build_container
from .settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["Container", "JobFailed", "LocalJobs", "Settings", "SettingsError", "UseCases", "build_container",
           "load_settings", "open_api", "open_jobs", "create_app_from_settings"]


def open_api(config: str | Path | None = None, **overrides: Any) -> UseCases:
    """The core's use cases, wired to the real ZFS command line, with no HTTP server.

    `overrides` are settings sections, e.g. `zfs={"zfs": "/sbin/zfs", "timeout": 60}`.
    """
    return build_container(load_settings(config, overrides=overrides)).use_cases()


def open_jobs(config: str | Path | None = None, *, who: Principal | None = None,
              container: Container | None = None, **overrides: Any) -> LocalJobs:
    """Long calls as jobs, without HTTP: `async with open_jobs() as jobs:` runs this process's job runner on the
    configured job store (shared with any server using it). `who` (default: a local admin) is who the jobs run
    as; its role and dataset scope are checked as for a call."""
    c = container or build_container(load_settings(config, overrides=overrides))
    return LocalJobs(c.registry(), c.jobs(), c.job_runner(), who=who or LOCALHOST)


def create_app_from_settings(settings: Settings) -> Litestar:
    """The HTTP app of `settings` (without the serving process's signal handling: see lifecycle.serving_app)."""
    from .lifecycle import http_app

    return http_app(build_container(settings))
