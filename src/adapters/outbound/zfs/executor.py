"""Runner of every child process the zfs adapters start: zfs, zpool, and the gzip/zstd of file pipelines.

One spawn path (`ZfsExecutor._popen`): argv lists only (never a shell), one environment (C locale, UTC, so
messages are stable to classify), one metrics path (a counter and a histogram by binary, verb and outcome).
Two kinds of children, bounded apart so that long transfers never starve short commands:

- commands (`run`): short, output collected, a timeout, at most `max_concurrency` at once;
- pipelines (`pipeline`): zfs send/receive and the compressors joined by pipes for the length of a transfer
  (minutes to hours), no timeout, at most `max_pipelines` at once.

Cancellation kills and reaps: no child outlives the request that started it.

Spawning (fork/exec) blocks the calling thread, and so would a child watcher's bookkeeping: measured under load,
spawning from the event loop thread stalled it for up to 0.9 s with 200 commands in flight. Children are
therefore started and collected in bounded thread pools; the loop only awaits their completion.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Callable, TypeVar

from zfsapi.adapters.metrics import Metrics
from zfsapi.domain.errors import ZfsCommandFailed, ZfsUnavailable

T = TypeVar("T")
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
PIPE_SIZE = 1 << 20  # one pipe buffer holds a whole read: a send fills it while we write the last chunk out


@dataclass(frozen=True, slots=True)
class Completed:
    argv: list[str]
    exit_code: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def make_pipe(size: int = PIPE_SIZE) -> tuple[int, int]:
    """A close-on-exec pipe of `size` bytes (the kernel's default if it refuses, e.g. over pipe-max-size)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, size)
    except OSError:
        pass
    return r, w


def pipe_size(fd: int) -> int:
    return fcntl.fcntl(fd, F_GETPIPE_SZ)


def _labels(argv: list[str]) -> tuple[str, str]:
    """(binary, verb) for metrics: bounded, never a name."""
    if argv[0] in ("zfs", "zpool"):
        return argv[0], argv[1] if len(argv) > 1 else ""
    if argv[0] == "ssh":
        return "ssh", "remote"
    return argv[0], "decompress" if "-d" in argv else "compress"


class _Start:
    """The one process of a command, shared between its worker thread and the awaiting coroutine."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.lock = threading.Lock()

    def kill(self) -> None:
        with self.lock:
            self.cancelled = True
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()


class Child:
    """A pipeline child. Its stderr goes to a temp file (nothing to drain: no deadlock), its stdout to a pipe
    end or, when captured, to a temp file. `wait` reaps it (blocking) and records its metrics once."""

    def __init__(self, argv: list[str], popen: subprocess.Popen[bytes], stderr: IO[bytes], stdout: IO[bytes] | None,
                 observe: Callable[[list[str], str, float], None]) -> None:
        self.argv, self._popen, self._stderr, self._stdout, self._observe = argv, popen, stderr, stdout, observe
        self._started = time.perf_counter()
        self._killed = False
        self._done: Completed | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._killed = True
            try:
                self._popen.kill()
            except ProcessLookupError:
                pass

    def wait(self) -> Completed:
        code = self._popen.wait()
        with self._lock:
            if self._done is None:
                self._done = Completed(self.argv, code, self._read(self._stdout), self._read(self._stderr).decode(
                    "utf-8", "replace").strip())
                outcome = "ok" if code == 0 else "cancelled" if self._killed else "failed"
                self._observe(self.argv, outcome, self._started)
            return self._done

    @staticmethod
    def _read(f: IO[bytes] | None) -> bytes:
        if f is None:
            return b""
        with f:
            f.seek(0)
            return f.read()


class Pipeline:
    """The children of one transfer, holding one of the executor's pipeline slots until `close`.

    `spawn` blocks (fork/exec): call it through `offload`. `kill` may be called from any thread; a spawn after
    it is refused, so a pipeline cancelled while a child starts never leaves that child behind.
    """

    def __init__(self, executor: ZfsExecutor) -> None:
        self._exec = executor
        self.children: list[Child] = []
        self._killed = False
        self._closing: asyncio.Future[None] | None = None
        self._lock = threading.Lock()

    @property
    def killed(self) -> bool:
        return self._killed

    def spawn(self, argv: list[str], stdin: int | None, stdout: int | None = None, *,
              capture_stdout: bool = False) -> Child:
        """Start `argv` reading `stdin` (None: /dev/null) and writing `stdout` (None: /dev/null, unless captured).
        Raises ZfsUnavailable when the binary cannot be run, ZfsCommandFailed when the pipeline was killed."""
        if self._killed:
            raise ZfsCommandFailed(argv, -9, "cancelled before start")
        err = tempfile.TemporaryFile()
        out = tempfile.TemporaryFile() if capture_stdout else None
        try:
            popen = self._exec._popen(argv, stdin=stdin, stdout=out if out is not None else stdout, stderr=err)
        except BaseException:
            err.close()
            if out is not None:
                out.close()
            raise
        child = Child(argv, popen, err, out, self._exec._observe)
        with self._lock:  # never held across a fork: `kill` runs on the event loop
            self.children.append(child)
            killed = self._killed
        if killed:
            child.kill()
        return child

    def spawn_into_pipe(self, argv: list[str], stdin: int | None) -> int:
        """Start `argv` writing into a new pipe; the pipe's read end, which the caller closes. When the spawn
        fails, no end of the pipe stays open."""
        r, w = make_pipe()
        try:
            self.spawn(argv, stdin, w)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        return r

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            for child in self.children:
                child.kill()

    def reap(self) -> list[Completed]:
        """Wait for every child (blocking), in the order they were started."""
        return [child.wait() for child in self.children]

    async def offload(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work (a spawn, a wait, a file relay) in the executor's pipeline threads. Cancelled, the
        pipeline is killed and the work awaited: it ends soon once its children are gone."""
        work = asyncio.get_running_loop().run_in_executor(self._exec._pipe_pool, fn, *args)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self.kill()
            await asyncio.wait([work])
            raise

    async def close(self) -> None:
        """Kill and reap every child, then free the slot. Idempotent: every caller returns once it is done."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            self.kill()
            await self.offload(self.reap)
        finally:
            self._exec._pipeline_slots.release()


class ZfsExecutor:
    """Runs `zfs`/`zpool` commands and transfer pipelines (argv lists, never a shell) with the C locale."""

    def __init__(
        self,
        *,
        zfs: str = "zfs",
        zpool: str = "zpool",
        ssh: str = "ssh",
        timeout: float = 300.0,
        max_concurrency: int = 32,
        max_pipelines: int = 64,
        metrics: Metrics | None = None,
    ) -> None:
        # gzip and zstd are found on PATH; zfs, zpool and ssh (replication.ssh) may be configured
        self._binaries = {"zfs": zfs, "zpool": zpool, "ssh": ssh, "gzip": "gzip", "zstd": "zstd"}
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_concurrency)
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="zfs")
        self._pipeline_slots = asyncio.Semaphore(max_pipelines)
        # a pipeline uses one thread at a time, two while a kill reaps during a wait
        self._pipe_pool = ThreadPoolExecutor(max_workers=2 * max_pipelines, thread_name_prefix="zfs-pipe")
        self._metrics = metrics
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
        }

    def _popen(self, argv: list[str], *, stdin: int | IO[bytes] | None, stdout: int | IO[bytes] | None,
               stderr: int | IO[bytes]) -> subprocess.Popen[bytes]:
        """The one place a child starts. Raises ZfsUnavailable when the binary is missing or not executable."""
        exe = [self._binaries[argv[0]], *argv[1:]]
        try:
            return subprocess.Popen(exe, stdin=subprocess.DEVNULL if stdin is None else stdin,
                                    stdout=subprocess.DEVNULL if stdout is None else stdout, stderr=stderr,
                                    env=self._env, close_fds=True)
        except (FileNotFoundError, PermissionError) as exc:
            raise ZfsUnavailable(f"cannot run {exe[0]}: {exc.strerror}") from None

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        """Run and collect. Raises ZfsUnavailable (binary missing or not executable), ZfsCommandFailed (timeout).

        A non-zero exit is returned, not raised: the caller classifies it with what it knows of the request.
        """
        limit = timeout if timeout is not None else self._timeout
        started = time.perf_counter()
        start = _Start()
        outcome = "error"
        async with self._slots:
            work = asyncio.get_running_loop().run_in_executor(self._pool, self._collect, argv, limit, start)
            try:
                code, out, err = await asyncio.shield(work)
                outcome = "ok" if code == 0 else "failed"
            except asyncio.CancelledError:
                start.kill()  # the worker reaps it; wait for that so no child outlives its request
                outcome = "cancelled"
                await asyncio.wait([work])
                raise
            except subprocess.TimeoutExpired:
                outcome = "timeout"
                raise ZfsCommandFailed(argv, -9, f"timed out after {limit:g} s and was killed") from None
            except ZfsUnavailable:
                outcome = "unavailable"
                raise
            finally:
                self._observe(argv, outcome, started)
        return Completed(argv, code, out, err.decode("utf-8", "replace").strip())

    def _collect(self, argv: list[str], limit: float, start: _Start) -> tuple[int, bytes, bytes]:
        with start.lock:
            if start.cancelled:
                return -9, b"", b"cancelled before start"
            proc = start.proc = self._popen(argv, stdin=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        return proc.returncode, out, err

    async def pipeline(self) -> Pipeline:
        """A new pipeline, once one of the `max_pipelines` slots is free; the caller must `close` it."""
        await self._pipeline_slots.acquire()
        return Pipeline(self)

    def _observe(self, argv: list[str], outcome: str, started: float) -> None:
        if self._metrics is not None:
            binary, verb = _labels(argv)
            self._metrics.zfs_commands.labels(binary, verb, outcome).inc()
            self._metrics.zfs_duration.labels(binary, verb).observe(time.perf_counter() - started)
