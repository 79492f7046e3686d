"""Composition root: the only package that imports every layer.

Embedding the use cases without HTTP::

    from zfsapi.bootstrap import open_api
    from zfsapi.domain.names import DatasetName

    api = open_api()                       # or open_api("config.yaml", zfs={"timeout": 60})
    snaps = await api.snapshot_list.execute(dataset=DatasetName.parse("tank/data"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zfsapi.application.catalog import UseCases

from .containers import Container, build_container
from .settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["Container", "Settings", "SettingsError", "UseCases", "build_container", "load_settings", "open_api",
           "create_app_from_settings"]


def open_api(config: str | Path | None = None, **overrides: Any) -> UseCases:
    """The core's use cases, wired to the real ZFS command line, with no HTTP server.

    `overrides` are settings sections, e.g. `zfs={"zfs": "/sbin/zfs", "timeout": 60}`.
    """
    return build_container(load_settings(config, overrides=overrides)).use_cases()


def create_app_from_settings(settings: Settings) -> Litestar:
    from zfsapi.adapters.inbound.http.app import create_app

    return create_app(build_container(settings))
