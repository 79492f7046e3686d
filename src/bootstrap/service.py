"""Running as a service: the systemd notify protocol (READY=1, WATCHDOG=1, STOPPING=1 as datagrams to
$NOTIFY_SOCKET; sd_notify(3)), and reloading users, roles, scopes, local users, rate limits, remotes and
policies on SIGHUP without dropping a connection."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Callable, Mapping

import uvicorn

from .containers import Container, policy_config, remote_config
from .security import access_of, user_records
from .settings import Settings, SettingsError

log = logging.getLogger("zfsapi")


def notify(message: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send one sd_notify message; False when there is no $NOTIFY_SOCKET (not run by systemd) or it failed."""
    path = environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # "@name": the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("service manager notification failed", extra={"reason": str(exc), "notify": message})
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Half of systemd's WatchdogSec (as $WATCHDOG_USEC), when the watchdog is meant for this process."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


async def _watchdog(interval: float) -> None:
    # pinged from the event loop: a loop that stalls for WatchdogSec gets the service restarted
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


class Reloader:
    """Re-read the configuration and swap in what a running server may change: users (with their roles and
    scopes), auth.local_users, the rate limits, replication.remotes and the policies. A configuration that fails
    to load changes nothing and is logged in one line. Everything else (addresses, workers, Redis, zfs) needs a
    restart."""

    def __init__(self, container: Container, load: Callable[[], Settings]) -> None:
        self._container, self._load = container, load

    def __call__(self) -> bool:
        try:
            settings = self._load()
            access, users, remotes = access_of(settings), user_records(settings), remote_config(settings)
            policies = policy_config(settings)
        except SettingsError as exc:
            log.warning("reload refused, the running configuration stays", extra={"reason": str(exc)})
            return False
        self._container.users().replace(users)
        self._container.http_options().access.swap(access)
        self._container.replicas().swap(remotes)
        self._container.policy_config().swap(policies)
        self._container.policy_scheduler().changed.set()  # the schedules as they read now
        log.info("configuration reloaded", extra={"config": settings.source or "built-in defaults",
                                                  "users": len(users)})
        return True


class Server(uvicorn.Server):
    """uvicorn's server, telling systemd when it serves (and pinging its watchdog) and reloading on SIGHUP."""

    def __init__(self, config: uvicorn.Config, reload: Callable[[], bool]) -> None:
        super().__init__(config)
        self._reload = reload
        self._watchdog: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:  # the app's startup failed
            return
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._reload)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # held since the start (cli._run): now applied
        interval = watchdog_interval()
        if interval is not None:
            self._watchdog = asyncio.create_task(_watchdog(interval))
        notify("READY=1\nSTATUS=serving")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        notify("STOPPING=1")
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._watchdog is not None:
            self._watchdog.cancel()
        await super().shutdown(sockets)
