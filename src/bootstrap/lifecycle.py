"""A serving process's life around its app: SIGTERM ends event streams and long polls before uvicorn waits for
connections to close, SIGHUP reloads in place in every worker (the supervisor forwards it, it never replaces a
worker), and the partial send files a killed server left behind are removed at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, Sequence

from uvicorn.supervisors import Multiprocess

from zfsapi.adapters.outbound.send_file_dirs import sweep_partials
from zfsapi.application.jobs import Jobs
from zfsapi.application.ports import JobStore
from zfsapi.domain.jobs import JobState
from zfsapi.domain.transfer import Compression

from .containers import Container
from .settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar

    from zfsapi.adapters.inbound.http.services import HttpServices

log = logging.getLogger("zfsapi")
STARTED = time.time()  # this process's start (near enough: when the bootstrap was imported)
Hook = Callable[[], Awaitable[None]]


def close_first_on_exit(jobs: Jobs) -> Hook:
    """A startup hook: SIGTERM/SIGINT first end every event stream and long poll (`jobs.closing`), then go on to
    the handler uvicorn installed, whose shutdown waits for every connection to close and then stops the jobs."""
    async def install() -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals belong to the main thread (an embedding that serves elsewhere keeps its own)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if callable(previous):  # uvicorn's handle_exit, restored when it stops serving

                def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                    loop.call_soon_threadsafe(jobs.closing.set)
                    previous(signum, frame)

                signal.signal(sig, handler)
    return install


def reload_on_hangup(reload: Callable[[], bool]) -> Hook:
    """A worker's startup hook: SIGHUP (forwarded by the supervisor) reloads this worker's configuration. A
    worker starts with SIGHUP blocked (see `Supervisor`), so one sent while it was still starting waits, and is
    handled here, once the handler is in place, rather than killing the worker or being lost."""
    async def install() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    return install


@contextlib.contextmanager
def _hangup_blocked() -> Iterator[None]:
    """SIGHUP blocked in this thread for the block: a worker started inside it inherits the blocked signal (the
    mask survives fork and exec), and one sent to this supervisor meanwhile is delivered at the end."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Supervisor(Multiprocess):
    """uvicorn's supervisor of several workers, except that SIGHUP is forwarded to every worker, which reloads in
    place (running jobs, event streams and connections go on), instead of replacing the workers. Every worker
    is started with SIGHUP blocked until its handler is installed: a SIGHUP forwarded to a worker that is still
    importing would otherwise kill it (the default action), and uvicorn would replace it.

    The four methods below are every place uvicorn's Multiprocess starts a worker."""

    def init_processes(self) -> None:
        with _hangup_blocked():
            super().init_processes()

    def restart_all(self) -> None:
        with _hangup_blocked():
            super().restart_all()

    def keep_subprocess_alive(self) -> None:
        with _hangup_blocked():
            super().keep_subprocess_alive()

    def handle_ttin(self) -> None:
        with _hangup_blocked():
            super().handle_ttin()

    def handle_hup(self) -> None:
        log.info("reloading every worker", extra={"workers": len(self.processes)})
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)


class PartialSweep:
    """At start, and once more when the leases of jobs that were running at start have lapsed, remove the partial
    send files a killed server left behind (see `sweep_partials`: written before this process started, open
    nowhere on this host, of no job still running)."""

    def __init__(self, store: JobStore, directories: list[str], lease: float, started: float = STARTED) -> None:
        self._store, self._dirs, self._lease, self._started = store, list(directories), lease, started
        self._later: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._dirs:
            return
        await self.sweep()
        self._later = asyncio.create_task(self._again(), name="zfsapi-partial-sweep")

    async def stop(self) -> None:
        if self._later is not None:
            self._later.cancel()
            await asyncio.gather(self._later, return_exceptions=True)

    async def _again(self) -> None:
        await asyncio.sleep(self._lease * 1.5)  # their leases lapsed and the runner's sweep interrupted them
        await self.sweep()

    async def sweep(self) -> list[str]:
        try:
            running, _ = await self._store.query(state=JobState.RUNNING, limit=100_000)
        except Exception as exc:  # the store is down: nothing is removed that a running job might still write
            log.warning("partial send files not swept", extra={"reason": str(exc) or type(exc).__name__})
            return []
        now = time.time()
        held = frozenset(name for job in running if (job.lease_until or 0) > now
                         for name in _final_names(job.params.get("output_file")))
        removed = await asyncio.to_thread(sweep_partials, self._dirs, self._started, held)
        if removed:
            log.warning("removed partial send files a stopped server left", extra={"files": removed})
        return removed


def _final_names(output_file: object) -> list[str]:
    """The names a send job's partial file carries: its output file's name, with each compression's suffix."""
    if not isinstance(output_file, str):
        return []
    base = os.path.basename(output_file)
    return [(base + c.suffix if c.suffix and not base.endswith(c.suffix) else base)[:200] for c in Compression]


def http_services(container: Container) -> HttpServices:
    """What the HTTP adapter's routes call, resolved from the container."""
    from zfsapi.adapters.inbound.http.services import HttpServices
    from zfsapi.application.transfers import StreamService

    use_cases = container.use_cases()
    return HttpServices(registry=container.registry(), authenticate=container.auth().authenticate,
                        limiter=container.rate_limiter(), metrics=container.metrics(), jobs=container.jobs(),
                        streams=use_cases[StreamService], pools=use_cases.pool_overview,
                        options=container.http_options())


def http_app(container: Container, on_startup: Sequence[Hook] = (), on_shutdown: Sequence[Hook] = ()) -> Litestar:
    """The HTTP app of `container`: its job runner, its policy scheduler and its health checks start before
    `on_startup` and stop in the reverse order after `on_shutdown` (the alert webhooks closed with the checks), and
    the replica sides are closed last."""
    from zfsapi.adapters.inbound.http.app import create_app

    runner, scheduler, health = container.job_runner(), container.policy_scheduler(), container.health()
    return create_app(http_services(container), on_startup=[runner.start, scheduler.start, health.start, *on_startup],
                      on_shutdown=[*on_shutdown, health.stop, container.alert_notifier().aclose, scheduler.stop,
                                   runner.stop, container.replicas().aclose])


def serving_app(container: Container, settings: Settings, reload: Callable[[], bool] | None = None) -> Litestar:
    """The app of a serving process, with the hooks above (`reload`: a worker's SIGHUP handler; a single server's
    own Server installs it)."""
    sweep = PartialSweep(container.job_store(), settings.transfer.directories, settings.jobs.lease)
    starting = [close_first_on_exit(container.jobs()), sweep.start]
    if reload is not None:
        starting.append(reload_on_hangup(reload))
    return http_app(container, on_startup=starting, on_shutdown=[sweep.stop])
