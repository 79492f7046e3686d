"""zfs send/receive as pipelines: to and from HTTP (SendPipe/ReceivePipe), and to and from send files through
gzip/zstd (no shell). Children start through the executor (one spawn path, its environment, metrics and
pipeline bound) joined by pipes we create (1 MiB, F_SETPIPE_SZ before the child starts). The HTTP ends are read
and written without blocking the event loop (non-blocking fds, add_reader/add_writer), or spliced by the HTTP
adapter in a worker thread of theirs (they are Spliceable, see zfsapi.adapters.splicing); a file relay runs in a
worker thread. Every process's exit status is checked, partial files are removed, and children are killed and
reaped on cancel."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import select
from functools import partial
from typing import Callable, TypeVar

from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.send_file_dirs import PARTIAL, check_path, file_errors, open_in
from zfsapi.adapters.splicing import Stopped
from zfsapi.application.ports import ReceivePipe, SendPipe
from zfsapi.domain.errors import AlreadyExists, ZfsApiError, ZfsCommandFailed
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeSend, SendSpec

from . import commands, parsers
from .executor import Child, Completed, Pipeline, ZfsExecutor, make_pipe

T = TypeVar("T")
READ_SIZE = 1 << 20
COMPRESSORS = {Compression.GZIP: (["gzip", "-c", "-1"], ["gzip", "-d", "-c"]),
               Compression.ZSTD: (["zstd", "-q", "-c", "-T0", "-3"], ["zstd", "-q", "-d", "-c"])}
_INTO = re.compile(r"^receiving .* stream of .* into (.+)$", re.M)


def received_snapshot(verbose: str) -> str | None:
    names = _INTO.findall(verbose)
    return names[-1].strip() if names else None


def _checked(results: list[Completed], name: str, kind: str) -> Completed:
    """The zfs child's result, once every process of the pipeline succeeded; else the first failure, classified
    when it is zfs's (a compressor may exit 0 on a stream cut short: zfs's status decides)."""
    zfs = next(done for done in results if done.argv[0] == "zfs")
    for done in [zfs, *results]:
        if not done.ok:
            if done.argv[0] == "zfs":
                raise parsers.classify(done, name=name, kind=kind)
            raise ZfsCommandFailed(done.argv, done.exit_code, done.stderr)
    return zfs


class ZfsPipelines:
    """The Pipelines port: zfs send/receive joined to HTTP bodies or to send files."""

    def __init__(self, executor: ZfsExecutor, metrics: Metrics | None = None) -> None:
        self._exec = executor
        self._file_bytes = None if metrics is None else metrics.file_bytes

    # ---- HTTP ----
    async def open_send(self, source: SendSpec | ResumeSend) -> ZfsSendPipe:
        if isinstance(source, ResumeSend):
            argv, name = commands.send_resume(source.token), (source.snapshot or source.token).value
        else:
            argv, name = commands.send(source), source.snapshot.value
        pipeline = await self._exec.pipeline()
        try:
            fd = await pipeline.offload(pipeline.spawn_into_pipe, argv, None)
        except BaseException:
            await pipeline.close()
            raise
        return ZfsSendPipe(pipeline, pipeline.children[0], fd, name)

    async def open_receive(self, spec: ReceiveSpec, compression: Compression = Compression.NONE) -> ZfsReceivePipe:
        """`zfs receive`, behind a decompressor when what is written is compressed (a POST's Content-Encoding)."""
        return await start_receive(self._exec, commands.receive(spec), spec.target.value, compression)

    async def relay(self, send: SendPipe, receive: ReceivePipe, moved: Callable[[int], float]) -> None:
        """Between two of our pipes, a worker thread splices (splice(2): the kernel moves the pages, nothing is
        copied through this process and the loop sees no chunk: as fast as `zfs send | zfs receive`); any other
        pair is read and written in chunks on the loop."""
        if isinstance(send, ZfsSendPipe) and isinstance(receive, ZfsReceivePipe):
            if not await send.in_thread(partial(_splice, send.fd, receive.fd, moved)):
                # zfs receive stopped reading: it failed (its error says why), or it read the stream's end record
                # and exited before the send closed its end (a blocked splice sees the reader gone first)
                await receive.finish()
            await send.finish()  # the end of the stream: the send's exit status decides
            return
        while chunk := await send.read():
            await receive.write(chunk)
            if (pause := moved(len(chunk))) > 0:
                await asyncio.sleep(pause)

    # ---- send files ----
    async def send_to_file(self, spec: SendSpec, path: str, root: str, compression: Compression,
                           progress: ProgressMeter | None = None, mark: str | None = None) -> tuple[int, str]:
        size, digest = await self._in_worker(self._send_file, spec, path, root, compression, progress, mark)
        if self._file_bytes is not None:
            self._file_bytes.labels("send").inc(size)
        return size, digest

    async def sent_file(self, path: str, root: str, mark: str) -> tuple[int, str] | None:
        return await asyncio.to_thread(_sent_file, path, root, mark)

    async def _in_worker(self, work: Callable[..., T], *args: object) -> T:
        """Run `work(pipeline, *args)` in the pipeline's worker thread; the pipeline is closed after it."""
        pipeline = await self._exec.pipeline()
        try:
            return await pipeline.offload(work, pipeline, *args)
        finally:
            await pipeline.close()

    @staticmethod
    def _send_file(pipeline: Pipeline, spec: SendSpec, path: str, root: str, compression: Compression,
                   progress: ProgressMeter | None, mark: str | None) -> tuple[int, str]:
        """In a worker thread: zfs send [| compressor] -> we read, hash and write the new file. Progress counts
        the send's bytes: ours when we read them, else what the compressor has read.

        The bytes go to a hidden partial file beside it (`.name.partial-XXXX`), linked to its name only once the
        send has succeeded and is on disk, so a file under the name is always complete, even after a crash.
        `mark` (a job id) is written into the file's extended attribute SENT_MARK before that."""
        check_path(root, path, "output_file", exists=False)  # as before the job was queued: still a new name
        partial_path = os.path.join(os.path.dirname(path),
                                    f".{os.path.basename(path)[:200]}{PARTIAL}{os.urandom(4).hex()}")
        with file_errors("output_file", path, "create"):
            fd = _create_confined(partial_path, root)
        ok = False
        counted = progress if compression is Compression.NONE else None
        try:
            last_r = pipeline.spawn_into_pipe(commands.send(spec), None)
            if compression is not Compression.NONE:
                send_out = last_r
                try:
                    last_r = pipeline.spawn_into_pipe(COMPRESSORS[compression][0], send_out)
                finally:
                    os.close(send_out)
                if progress is not None:
                    progress.follow(partial(_bytes_read, pipeline.children[1].pid))
            digest, size = hashlib.sha256(), 0
            try:
                while chunk := os.read(last_r, READ_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
                    if counted is not None:
                        counted.add(len(chunk))
                    with file_errors("output_file", path, "write"):  # a full disk, a quota, an I/O error
                        _write_all(fd, chunk)
            finally:
                os.close(last_r)
                if progress is not None:
                    progress.follow(None)
            _checked(pipeline.reap(), spec.snapshot.value, "snapshot")
            if pipeline.killed:
                raise ZfsCommandFailed(pipeline.children[0].argv, -9, "cancelled")
            publish_send_file(fd, partial_path, path, mark, size, digest.hexdigest())
            ok = True
            return size, digest.hexdigest()
        finally:
            os.close(fd)
            if not ok:
                pipeline.kill()
            try:
                os.unlink(partial_path)
            except OSError:
                pass

    async def receive_from_file(self, spec: ReceiveSpec, path: str, root: str, compression: Compression,
                                progress: ProgressMeter | None = None) -> str | None:
        snapshot, size = await self._in_worker(self._receive_file, spec, path, root, compression, progress)
        if self._file_bytes is not None:
            self._file_bytes.labels("receive").inc(size)
        return snapshot

    @staticmethod
    def _receive_file(pipeline: Pipeline, spec: ReceiveSpec, path: str, root: str, compression: Compression,
                      progress: ProgressMeter | None) -> tuple[str | None, int]:
        """In a worker thread: file [-> decompressor] -> zfs receive: the snapshot received and the file's size.
        The reader shares our open file, so its offset (read with lseek while it runs) is the progress."""
        with file_errors("input_file", path, "open"):
            fd = _open_confined(path, root)
        try:
            size = os.fstat(fd).st_size
            stdin = fd
            if compression is not Compression.NONE:
                stdin = pipeline.spawn_into_pipe(COMPRESSORS[compression][1], fd)
            try:
                pipeline.spawn(commands.receive(spec), stdin, capture_stdout=True)
            finally:
                if stdin != fd:
                    os.close(stdin)
            size = os.fstat(fd).st_size
            if progress is not None:
                progress.expect(size)
                progress.follow(partial(os.lseek, fd, 0, os.SEEK_CUR))
            results = pipeline.reap()
        finally:
            if progress is not None:
                progress.follow(None)
            os.close(fd)
        done = _checked(results, spec.target.value, "dataset")
        return received_snapshot(done.stdout.decode("utf-8", "replace")), size


# A complete send file's record of what wrote it: "<job id> <size> <mtime ns> <sha256 hex>"
SENT_MARK = "user.zfsapi.sent"


def publish_send_file(fd: int, partial_path: str, path: str, mark: str | None, size: int, digest: str) -> None:
    """A send file written whole under its hidden partial name becomes `path`: marked as `mark`'s (when given),
    synced, then linked under its name, never replacing a file made there meanwhile (AlreadyExists). The partial
    name is the caller's to remove."""
    if mark is not None:
        _mark(fd, mark, size, digest)
    try:
        with file_errors("output_file", path, "write"):
            os.fsync(fd)
            os.link(partial_path, path, follow_symlinks=False)  # never replaces a file made meanwhile
    except FileExistsError:
        raise AlreadyExists("file", path) from None


def _mark(fd: int, mark: str, size: int, digest: str) -> None:
    """Record who wrote the file (best effort: a filesystem without user xattrs keeps no mark, and a job that runs
    again then finds the name taken, as any caller would)."""
    with contextlib.suppress(OSError):
        os.setxattr(fd, SENT_MARK, f"{mark} {size} {os.fstat(fd).st_mtime_ns} {digest}".encode())


def _sent_file(path: str, root: str, mark: str) -> tuple[int, str] | None:
    """(size, sha256) of the file at `path` if `mark` wrote it whole and it is unchanged since (same size and
    mtime), else None. Opened as a send file is (confined to `root`, never through a symlink)."""
    try:
        fd = _open_confined(path, root)
    except (ZfsApiError, OSError):  # none there, or not a file this server could have written
        return None
    try:
        fields = os.getxattr(fd, SENT_MARK).decode("ascii").split(" ")
        st = os.fstat(fd)
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    if len(fields) != 4 or fields[0] != mark or fields[1] != str(st.st_size) or fields[2] != str(st.st_mtime_ns):
        return None
    return st.st_size, fields[3]


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view):]


def _bytes_read(pid: int) -> int:
    """What process `pid` has read so far (its rchar)."""
    with open(f"/proc/{pid}/io", "rb") as io:
        for line in io:
            if line.startswith(b"rchar:"):
                return int(line.split()[1])
    return 0


async def start_receive(executor: ZfsExecutor, argv: list[str], target: str,
                        compression: Compression = Compression.NONE, *, decompress: bool = True,
                        failed: Callable[[Completed], ZfsApiError] | None = None) -> ZfsReceivePipe:
    """A receiving child (`argv`: zfs receive, or ssh running it elsewhere) fed by our writes, through the
    decompressor of `compression` (or its compressor, without `decompress`) when there is one."""
    pipeline = await executor.pipeline()
    r, w = make_pipe()
    try:
        child = await pipeline.offload(_spawn_filtered, pipeline, argv, r, compression, decompress)
    except BaseException:
        os.close(w)
        await pipeline.close()
        raise
    finally:
        os.close(r)
    return ZfsReceivePipe(pipeline, child, w, target, failed)


def _spawn_filtered(pipeline: Pipeline, argv: list[str], stdin: int, compression: Compression,
                    decompress: bool) -> Child:
    """In a worker thread: start `argv` (stdout captured) reading `stdin` through the compressor (or with
    `decompress`, the decompressor) of `compression`, if any; the child of `argv`. The caller keeps `stdin`."""
    if compression is Compression.NONE:
        return pipeline.spawn(argv, stdin, capture_stdout=True)
    filtered = pipeline.spawn_into_pipe(COMPRESSORS[compression][int(decompress)], stdin)
    try:
        return pipeline.spawn(argv, filtered, capture_stdout=True)
    finally:
        os.close(filtered)


def _create_confined(path: str, root: str) -> int:
    return open_in(root, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "output_file")


def _open_confined(path: str, root: str) -> int:
    return open_in(root, path, os.O_RDONLY, "input_file")


class _FdIO:
    """Non-blocking reads/writes of a pipe end from the event loop (readiness via add_reader/add_writer)."""

    def __init__(self, pipeline: Pipeline, child: Child, fd: int) -> None:
        self._pipeline, self._child, self.fd = pipeline, child, fd
        self._waiter: asyncio.Future[None] | None = None
        os.set_blocking(fd, False)

    def _open_fd(self) -> int:
        if self.fd < 0:
            raise ZfsCommandFailed(self._child.argv, -9, "killed")
        return self.fd

    async def _ready(self, writer: bool) -> None:
        loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        fd = self.fd
        add, remove = (loop.add_writer, loop.remove_writer) if writer else (loop.add_reader, loop.remove_reader)

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        add(fd, ready)
        try:
            await fut
        finally:
            remove(fd)
            self._waiter = None

    def close(self) -> None:
        """Close our end; a read or write parked on it is unregistered first (before the fd number can be
        reused), then woken to find it closed."""
        if self.fd >= 0:
            if self._waiter is not None:
                loop = asyncio.get_running_loop()
                loop.remove_reader(self.fd)
                loop.remove_writer(self.fd)
                if not self._waiter.done():
                    self._waiter.set_result(None)
            os.close(self.fd)
            self.fd = -1

    async def _wait(self) -> Completed:
        self.close()
        done = await self._pipeline.offload(self._child.wait)
        await self._pipeline.close()
        return done

    async def kill(self) -> None:
        """Kill and reap (idempotent)."""
        self.close()
        await self._pipeline.close()

    def fileno(self) -> int:
        """Our pipe end (Spliceable): raises ZfsCommandFailed once it is closed."""
        return self._open_fd()

    async def in_thread(self, work: Callable[[int], T]) -> T:
        """Run `work(stop)` in a pipeline thread (Spliceable), `stop` the read end of a pipe that turns readable
        when this is cancelled (after the pipeline was killed), for work waiting on a socket or a pace rather than
        a child."""
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)

        def wake() -> None:
            os.write(stop_w, b"x")

        try:
            return await self._pipeline.offload(work, stop_r, wake=wake)
        finally:
            os.close(stop_r)
            os.close(stop_w)


class ZfsSendPipe(_FdIO):
    """A running `zfs send` read from the loop (the SendPipe port)."""

    def __init__(self, pipeline: Pipeline, child: Child, fd: int, name: str) -> None:
        super().__init__(pipeline, child, fd)
        self._name = name

    async def read(self) -> bytes:
        while True:
            try:
                chunk = os.read(self._open_fd(), READ_SIZE)
            except BlockingIOError:
                await self._ready(False)
                continue
            if chunk:
                return chunk
            # end of stream: a send that failed before or after its first byte says so here
            await self.finish()
            return b""

    async def finish(self) -> None:
        done = await self._wait()
        if not done.ok:
            raise parsers.classify(done, name=self._name, kind="snapshot")


def _splice(source: int, target: int, moved: Callable[[int], float], stop: int) -> bool:
    """In a worker thread: splice until the end of `source` (True) or until `target` has no reader (False).
    A cancelled relay kills the send (its pipeline's `offload`), which ends `source`, and makes `stop` readable,
    which ends a pause for the rate limit (raising Stopped): a cancel never waits for a pace, however slow."""
    os.set_blocking(source, True)
    os.set_blocking(target, True)
    poller = select.poll()
    poller.register(stop, select.POLLIN)
    try:
        while n := os.splice(source, target, READ_SIZE, flags=os.SPLICE_F_MOVE):
            if (pause := moved(n)) > 0 and poller.poll(_poll_ms(pause)):
                raise Stopped
    except BrokenPipeError:
        return False
    return True


def _poll_ms(seconds: float) -> int:
    """A pause as poll(2)'s timeout: whole milliseconds, rounded up, at most poll's largest (about 24 days)."""
    return min(math.ceil(seconds * 1000), 2**31 - 1)


class ZfsReceivePipe(_FdIO):
    """A running `zfs receive` written from the loop (the ReceivePipe port). `failed` classifies a failed
    receive (default: zfs's stderr, about `target`); a remote runner (ssh) brings its own."""

    def __init__(self, pipeline: Pipeline, child: Child, fd: int, target: str,
                 failed: Callable[[Completed], ZfsApiError] | None = None) -> None:
        super().__init__(pipeline, child, fd)
        self._target = target
        self._failed = failed or (lambda done: parsers.classify(done, name=target, kind="dataset"))

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._open_fd(), view):]
            except BlockingIOError:
                await self._ready(True)
            except BrokenPipeError:
                await self.finish()  # zfs receive stopped reading: its error explains why
                raise ZfsCommandFailed(self._child.argv, -1, "zfs receive stopped reading its input") from None

    async def finish(self) -> str | None:
        done = await self._wait()
        if not done.ok:
            raise self._failed(done)
        return received_snapshot(done.stdout.decode("utf-8", "replace"))

    async def in_thread(self, work: Callable[[int], T]) -> T:
        """As _FdIO.in_thread; `work` finding the receive stopped reading (BrokenPipeError) raises the receive's
        own error, or ZfsCommandFailed when it exited cleanly."""
        try:
            return await super().in_thread(work)
        except BrokenPipeError:
            await self.finish()  # zfs receive stopped reading: its error explains why
            raise ZfsCommandFailed(self._child.argv, -1, "zfs receive stopped reading its input") from None
