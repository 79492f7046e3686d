"""Runner of every child process the zfs adapters start: zfs, zpool, and the gzip/zstd of file pipelines.

One spawn path (`ZfsExecutor._spawn`): argv lists only (never a shell), one environment (C locale, UTC, so
messages are stable to classify), one metrics path (a counter and a histogram by binary, verb and outcome).
Two kinds of children, bounded apart so that long transfers never starve short commands:

- commands (`run`, and `read` for read-only ones, which share a child with identical reads): short, output
  collected, a timeout, at most `max_concurrency` at once;
- pipelines (`pipeline`): zfs send/receive and the compressors joined by pipes for the length of a transfer
  (minutes to hours), no timeout, at most `max_pipelines` at once.

Cancellation kills and reaps: no child outlives the request that started it.

Children start with posix_spawn (glibc: clone(CLONE_VM|CLONE_VFORK), so the cost does not grow with the size of
this process, unlike fork) and are signalled through a pidfd (never a recycled pid). A command runs on the event
loop but for its spawn: its output is read from non-blocking pipes and its exit noticed when its pidfd turns
readable. The spawn itself runs in a small thread pool through libc (`spawn.spawn`), with the GIL released until
the child has exec'd (11 ms median in the test host; CPython 3.11's os.posix_spawn holds the GIL that long, and
the loop with it). Measured with 200 commands in flight, the former thread-pool path (subprocess.Popen +
communicate in 32 threads) stalled the loop for up to 1.6 s in the test host: the threads fought the loop for
the GIL. Pipeline children, which live for a whole transfer, are spawned and waited for in the pipeline threads.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, Awaitable, Callable, TypeVar

from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.zfs.spawn import spawn
from zfsapi.domain.errors import ZfsCommandFailed, ZfsUnavailable

T = TypeVar("T")
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
PIPE_SIZE = 1 << 20  # one pipe buffer holds a whole read: a send fills it while we write the last chunk out
OUTPUT_READ = 1 << 18  # a command's output is read in chunks of this size (10,000 snapshots: about 3 reads)
SPAWNERS = 4  # threads starting commands' children (each blocked only while its child execs)


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


class Process:
    """A spawned child held by its pidfd: `kill` can never reach a recycled pid, `wait` reaps once (from any
    thread; a second caller gets the same status)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.returncode: int | None = None
        self._lock = threading.Lock()  # one reaper
        self._fd_lock = threading.Lock()  # the pidfd is never closed under a signal (its number could be reused)

    def kill(self) -> None:
        with self._fd_lock:
            if self.returncode is None:
                try:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                except ProcessLookupError:  # exited, not reaped yet
                    pass

    def wait(self) -> int:
        """Reap (blocks until the child exits unless its pidfd was seen readable); the exit code, -N for signal N."""
        with self._lock:
            if self.returncode is None:
                _, status = os.waitpid(self.pid, 0)
                with self._fd_lock:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    os.close(self.pidfd)
            return self.returncode


class Child:
    """A pipeline child. Its stderr goes to a temp file (nothing to drain: no deadlock), its stdout to a pipe
    end or, when captured, to a temp file. `wait` reaps it (blocking) and records its metrics once."""

    def __init__(self, argv: list[str], process: Process, stderr: IO[bytes], stdout: IO[bytes] | None,
                 observe: Callable[[list[str], str, float], None]) -> None:
        self.argv, self._process, self._stderr, self._stdout, self._observe = argv, process, stderr, stdout, observe
        self._started = time.perf_counter()
        self._killed = False
        self._done: Completed | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self._process.pid

    def kill(self) -> None:
        if self._process.returncode is None:
            self._killed = True
            self._process.kill()

    def wait(self) -> Completed:
        code = self._process.wait()
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
            process = self._exec._spawn(argv, stdin=stdin, stdout=out.fileno() if out is not None else stdout,
                                        stderr=err.fileno())
        except BaseException:
            err.close()
            if out is not None:
                out.close()
            raise
        child = Child(argv, process, err, out, self._exec._observe)
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

    async def offload(self, fn: Callable[..., T], *args: object, wake: Callable[[], None] | None = None) -> T:
        """Run blocking work (a spawn, a wait, a file relay) in the executor's pipeline threads. Cancelled, the
        pipeline is killed (and `wake` called, for work that may wait on something else than its children) and
        the work awaited: it ends soon once its children are gone."""
        work = asyncio.get_running_loop().run_in_executor(self._exec._pipe_pool, fn, *args)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self.kill()
            if wake is not None:
                wake()
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


class _Command:
    """One started command on the event loop: stdout and stderr drained from non-blocking pipes by reader
    callbacks, its exit seen when its pidfd turns readable. No thread is involved."""

    def __init__(self, process: Process, out_r: int, err_r: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._fds: list[int] = []
        self._process = process
        self._output = [self._drain(out_r), self._drain(err_r)]
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._watch(self._process.pidfd, self._reap)

    def _watch(self, fd: int, callback: Callable[[], None]) -> None:
        self._fds.append(fd)
        self._loop.add_reader(fd, callback)

    def _unwatch(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            self._loop.remove_reader(fd)

    def _drain(self, fd: int) -> asyncio.Future[bytes]:
        done: asyncio.Future[bytes] = self._loop.create_future()
        chunks: list[bytes] = []
        os.set_blocking(fd, False)

        def readable() -> None:
            try:
                while chunk := os.read(fd, OUTPUT_READ):
                    chunks.append(chunk)
            except BlockingIOError:
                return
            self._unwatch(fd)
            os.close(fd)
            if not done.done():
                done.set_result(b"".join(chunks))

        self._watch(fd, readable)
        return done

    def _reap(self) -> None:
        self._unwatch(self._process.pidfd)
        code = self._process.wait()  # the pidfd is readable: the child has exited, this does not block
        if not self._exited.done():
            self._exited.set_result(code)

    async def collect(self, limit: float) -> tuple[int, bytes, bytes]:
        """(exit code, stdout, stderr). Raises TimeoutError after `limit` seconds; timed out or cancelled, the
        child is killed and reaped before this returns."""
        try:
            async with asyncio.timeout(limit):
                ends: list[asyncio.Future[Any]] = [self._exited, *self._output]
                await asyncio.wait(ends)  # wait() never cancels what it waits for
            out, err = self._output
            return self._exited.result(), out.result(), err.result()
        except BaseException:
            self._process.kill()
            await asyncio.shield(self._exited)  # SIGKILL cannot be ignored: this is short
            raise
        finally:
            # the output pipes are closed; the pidfd's reader stays until it reaps, even after a second cancel
            for fd in [fd for fd in self._fds if fd != self._process.pidfd]:
                self._unwatch(fd)
                os.close(fd)


def _discard(work: asyncio.Future[Process]) -> None:
    """Kill and reap (when its pidfd turns readable) a child whose caller went away while it started."""
    if work.cancelled() or work.exception() is not None:
        return
    process = work.result()
    process.kill()
    loop = asyncio.get_running_loop()

    def reap() -> None:
        loop.remove_reader(process.pidfd)
        process.wait()

    loop.add_reader(process.pidfd, reap)


@dataclass(eq=False)
class _Flight:
    """One shared read: started once the previous one with the same argv ends; joinable until it starts."""

    task: asyncio.Task[None] | None = None
    waiters: list[asyncio.Future[Completed]] = field(default_factory=list)


class Coalescer:
    """Identical read-only commands in flight share one child, and nobody gets data older than their request.

    A caller joins a read only if that read has not started yet: callers that arrive while a read runs wait
    for it to end and then share the next one, so each key has at most one read running and one gathering. The
    next one starts when the sharers of the last have their results (see `_fly`).
    An error reaches every sharer; a sharer cancelled leaves the read to the others (the last one out cancels
    it, which kills its child).

    The sharers resume one per event-loop iteration: woken all at once, 200 of them would run their responses
    back to back (measured in the test host: loop stalls of 1 s) while timers and I/O wait. Measured in the test
    host with 200 RPCs in flight (`bench.bench_zfs --only spawn`), two per iteration gave a loop lag p99 of
    16-66 ms and one per iteration 9-11 ms, at the same throughput within noise (the next read's child is
    spawned off the loop meanwhile).
    """

    def __init__(self, run: Callable[[list[str]], Awaitable[Completed]]) -> None:
        self._run = run
        self._gathering: dict[tuple[str, ...], _Flight] = {}
        self._running: dict[tuple[str, ...], asyncio.Future[None]] = {}

    async def run(self, argv: list[str]) -> Completed:
        key = tuple(argv)
        flight = self._gathering.get(key)
        if flight is None:
            flight = self._gathering[key] = _Flight()
            flight.task = asyncio.ensure_future(self._fly(key, flight))
        waiter: asyncio.Future[Completed] = asyncio.get_running_loop().create_future()
        flight.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter in flight.waiters:
                flight.waiters.remove(waiter)
            if not flight.waiters and flight.task is not None:
                flight.task.cancel()
            raise

    async def _fly(self, key: tuple[str, ...], flight: _Flight) -> None:
        try:
            previous = self._running.get(key)
            if previous is not None:
                await asyncio.wait([previous])
        finally:
            if self._gathering.get(key) is flight:
                del self._gathering[key]
        loop = asyncio.get_running_loop()
        ended = self._running[key] = loop.create_future()
        started = loop.time()
        try:
            done: Completed | Exception = await self._run(list(key))
        except Exception as exc:
            done = exc
        except BaseException:
            self._end(key, ended)
            raise
        # The next read starts once every sharer has its result and has had one more loop turn to ask again, so
        # sharers asking again at once share one child (at 8 callers: one child each round for all 8, not one for
        # the first and one for the other 7), or once handing out has lasted as long as the child ran (with 200
        # sharers the next child overlaps the hand-out).
        timer = loop.call_later(loop.time() - started, self._end, key, ended)
        try:
            while flight.waiters:  # those not handed out yet (a sharer cancelled meanwhile removes itself)
                waiter = flight.waiters.pop(0)
                if waiter.done():  # cancelled; its caller has not run its handler yet
                    continue
                if isinstance(done, Exception):
                    waiter.set_exception(done)
                else:
                    waiter.set_result(done)
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            timer.cancel()
            self._end(key, ended)

    def _end(self, key: tuple[str, ...], ended: asyncio.Future[None]) -> None:
        """Let the next read of `key` start."""
        if self._running.get(key) is ended:
            del self._running[key]
        if not ended.done():
            ended.set_result(None)


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
        self._reads = Coalescer(self.run)
        self._pipeline_slots = asyncio.Semaphore(max_pipelines)
        # a pipeline uses one thread at a time, two while a kill reaps during a wait
        self._pipe_pool = ThreadPoolExecutor(max_workers=2 * max_pipelines, thread_name_prefix="zfs-pipe")
        self._spawn_pool = ThreadPoolExecutor(max_workers=SPAWNERS, thread_name_prefix="zfs-spawn")
        self._metrics = metrics
        self._metric_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}  # label lookups, bounded by verbs
        self._found: dict[str, str] = {}  # a binary's path on PATH once found (a search costs a stat per entry)
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
        }

    def _spawn(self, argv: list[str], *, stdin: int | None, stdout: int | None, stderr: int) -> Process:
        """The one place a child starts (stdin/stdout None: /dev/null); the child gets fds 0-2 and no other fd of
        ours (`spawn` closes the rest). Raises ZfsUnavailable when the binary is missing or not executable."""
        binary = self._binaries[argv[0]]
        exe = binary if "/" in binary else self._found.get(binary)
        if exe is None:
            exe = shutil.which(binary, path=self._env["PATH"])
            if exe is None:
                raise ZfsUnavailable(f"cannot run {binary}: not found on PATH")
            self._found[binary] = exe
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0) if stdin is None else
                   (os.POSIX_SPAWN_DUP2, stdin, 0),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0) if stdout is None else
                   (os.POSIX_SPAWN_DUP2, stdout, 1),
                   (os.POSIX_SPAWN_DUP2, stderr, 2)]
        try:
            return Process(spawn(exe, [exe, *argv[1:]], self._env, actions))
        except (FileNotFoundError, PermissionError) as exc:
            self._found.pop(binary, None)  # looked up on PATH again next time
            raise ZfsUnavailable(f"cannot run {exe}: {exc.strerror}") from None

    def _spawn_command(self, argv: list[str], out_w: int, err_w: int) -> Process:
        """`_spawn` in a spawner thread; the thread owns the pipes' write ends (closed once the child has them), so
        the loop can never close an fd a spawn is still duplicating."""
        try:
            return self._spawn(argv, stdin=None, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)

    async def _start(self, argv: list[str]) -> _Command:
        """Start a command from a spawner thread, the loop serving others meanwhile. Cancelled during the spawn,
        the child is killed and reaped once it has started."""
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        work = loop.run_in_executor(self._spawn_pool, partial(self._spawn_command, argv, out_w, err_w))
        try:
            process = await asyncio.shield(work)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            if not work.done() or work.cancelled() or work.exception() is None:
                work.add_done_callback(_discard)
            raise
        return _Command(process, out_r, err_r)

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        """Run and collect. Raises ZfsUnavailable (binary missing or not executable), ZfsCommandFailed (timeout).

        A non-zero exit is returned, not raised: the caller classifies it with what it knows of the request.
        """
        limit = timeout if timeout is not None else self._timeout
        started = time.perf_counter()
        outcome = "error"
        async with self._slots:
            try:
                code, out, err = await (await self._start(argv)).collect(limit)
                outcome = "ok" if code == 0 else "failed"
            except ZfsUnavailable:
                outcome = "unavailable"
                raise
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            except TimeoutError:
                outcome = "timeout"
                raise ZfsCommandFailed(argv, -9, f"timed out after {limit:g} s and was killed") from None
            finally:
                self._observe(argv, outcome, started)
        return Completed(argv, code, out, err.decode("utf-8", "replace").strip())

    async def read(self, argv: list[str]) -> Completed:
        """`run` a read-only command, sharing its child with identical reads (see `Coalescer`). Never a write."""
        return await self._reads.run(argv)

    async def pipeline(self) -> Pipeline:
        """A new pipeline, once one of the `max_pipelines` slots is free; the caller must `close` it."""
        await self._pipeline_slots.acquire()
        return Pipeline(self)

    def _observe(self, argv: list[str], outcome: str, started: float) -> None:
        if self._metrics is not None:
            binary, verb = _labels(argv)
            children = self._metric_children.get((binary, verb, outcome))
            if children is None:
                children = (self._metrics.zfs_commands.labels(binary, verb, outcome),
                            self._metrics.zfs_duration.labels(binary, verb))
                self._metric_children[(binary, verb, outcome)] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
