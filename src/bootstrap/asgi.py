"""`create()`: the app factory uvicorn's worker processes call when server.http.workers > 1."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from . import create_app_from_settings
from .logs import configure_logging
from .settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar


def create() -> Litestar:
    settings = msgspec.json.decode(os.environ["ZFSAPI_SETTINGS_JSON"], type=Settings)
    configure_logging(settings.logging.level, settings.logging.audit_file)
    return create_app_from_settings(settings)
