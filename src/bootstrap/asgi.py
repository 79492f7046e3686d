"""`create()`: the app factory uvicorn's worker processes call when server.http.workers > 1."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import msgspec

from . import create_app_from_settings
from .logs import configure_logging
from .settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from litestar import Litestar


def create() -> Litestar:
    """The app of one worker: the server's settings, with users, roles, scopes and limits read again from the
    config file (the supervisor restarts the workers on SIGHUP); a file that fails to load keeps the server's."""
    settings = msgspec.json.decode(os.environ["ZFSAPI_SETTINGS_JSON"], type=Settings)
    configure_logging(settings.logging)
    if settings.source is not None:
        try:
            settings = load_settings(settings.source, overrides={"server": msgspec.to_builtins(settings.server)})
        except SettingsError as exc:
            logging.getLogger("zfsapi").warning("reload refused, the running configuration stays",
                                                extra={"reason": str(exc)})
    return create_app_from_settings(settings)
