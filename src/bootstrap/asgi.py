"""`create()`: the app factory uvicorn's worker processes call when server.http.workers > 1."""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING

import msgspec

from .cli import find_config
from .containers import build_container
from .lifecycle import serving_app
from .logs import configure_logging
from .service import Reloader
from .settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from litestar import Litestar


def create() -> Litestar:
    """The app of one worker: the server's settings, with users, roles, scopes and limits read again from the
    config file (at start, and on SIGHUP, which the supervisor forwards to every worker: it reloads in place);
    a file that fails to load keeps the server's."""
    # blocked (held, not lost) until the app's startup installs the reload: never die of it (the supervisor
    # starts workers with it blocked already; this covers a worker started otherwise)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    settings = msgspec.json.decode(os.environ["ZFSAPI_SETTINGS_JSON"], type=Settings)
    configure_logging(settings.logging)
    source = settings.source

    def load() -> Settings:
        path = source or find_config(None, os.environ)  # found as a start finds it (written since, maybe)
        if path is None:
            return settings
        return load_settings(path, overrides={"server": msgspec.to_builtins(settings.server)})

    try:
        settings = load()
    except SettingsError as exc:
        logging.getLogger("zfsapi").warning("reload refused, the running configuration stays",
                                            extra={"reason": str(exc)})
    container = build_container(settings)
    return serving_app(container, settings, Reloader(container, load))
