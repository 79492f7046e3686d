"""zfs send/receive as streams: processes joined by pipes we create (1 MiB, F_SETPIPE_SZ before the child
starts), read and written without blocking the event loop; file transfers through gzip/zstd processes (no
shell), every process's exit status checked; partial files removed; children killed and reaped on cancel."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import re
import stat
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from zfsapi.domain.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    StateConflict,
    ZfsApiError,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.names import DatasetName
from zfsapi.domain.transfer import Compression, ResumeToken, SendSpec

from . import commands, parsers
from .executor import Completed, ZfsExecutor

F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
PIPE_SIZE = 1 << 20
READ_SIZE = 1 << 20
COMPRESSORS = {Compression.GZIP: (["gzip", "-c", "-1"], ["gzip", "-d", "-c"]),
               Compression.ZSTD: (["zstd", "-q", "-c", "-T0", "-3"], ["zstd", "-q", "-d", "-c"])}
_INTO = re.compile(r"^receiving .* stream of .* into (.+)$", re.M)


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


class _Proc:
    """One child with its stderr in a temp file (no pipe to drain, no deadlock)."""

    def __init__(self, argv: list[str], popen: subprocess.Popen[bytes], stderr, stdout_file=None) -> None:
        self.argv, self.popen, self.stderr, self.stdout_file = argv, popen, stderr, stdout_file

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.kill()
            except ProcessLookupError:
                pass

    def wait(self) -> Completed:
        code = self.popen.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode("utf-8", "replace").strip()
        self.stderr.close()
        out = b""
        if self.stdout_file is not None:
            self.stdout_file.seek(0)
            out = self.stdout_file.read()
            self.stdout_file.close()
        return Completed(self.argv, code, out, err)


class ZfsStreams:
    """The Transfers port on the zfs command line."""

    def __init__(self, executor: ZfsExecutor, *, zfs: str = "zfs", workers: int = 64) -> None:
        self._exec = executor
        self._zfs = zfs
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zfs-stream")
        self._env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C", "TZ": "UTC"}

    # ---- one-shot commands ----
    async def _ok(self, argv: list[str], name: str, kind: str = "snapshot") -> Completed:
        done = await self._exec.run(argv)
        if not done.ok:
            raise parsers.classify(done, name=name, kind=kind)
        return done

    async def estimate(self, spec: SendSpec) -> int:
        done = await self._ok(commands.send(spec, dry_run=True), spec.snapshot.value)
        return parsers.send_size(done.stdout.decode())

    async def decode_resume_token(self, token: str) -> ResumeToken:
        done = await self._exec.run(commands.send_resume(token, dry_run=True))
        if not done.ok:
            raise StateConflict("the resume token is not valid here (forged, corrupt or foreign)",
                                stderr=done.stderr.splitlines()[0] if done.stderr else "")
        return parsers.resume_token(done.stdout.decode() + "\n" + done.stderr)

    async def resume_token(self, dataset: DatasetName) -> str | None:
        done = await self._exec.run(commands.get_value(dataset, "receive_resume_token"))
        value = done.stdout.decode().strip() if done.ok else ""
        return None if value in ("", "-") else value

    async def abort_receive(self, dataset: DatasetName) -> None:
        done = await self._exec.run(commands.receive_abort(dataset))
        if not done.ok:
            if "does not have any resumable receive state" in done.stderr:
                raise StateConflict("no partial receive to abort", dataset=dataset.value)
            raise parsers.classify(done, name=dataset.value, kind="dataset")

    async def is_encrypted(self, dataset: DatasetName) -> bool:
        done = await self._ok(commands.get_value(dataset, "encryption"), dataset.value, "dataset")
        return done.stdout.decode().strip() not in ("off", "-", "")

    # ---- spawning ----
    def _spawn(self, argv: list[str], stdin: int | None, stdout: int | None, capture_stdout: bool = False) -> _Proc:
        exe = [self._zfs, *argv[1:]] if argv[0] == "zfs" else argv
        err = tempfile.TemporaryFile()
        out_file = tempfile.TemporaryFile() if capture_stdout else None
        try:
            popen = subprocess.Popen(exe, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                     stdout=out_file if capture_stdout else (stdout if stdout is not None else
                                                                            subprocess.DEVNULL),
                                     stderr=err, env=self._env, close_fds=True)
        except (FileNotFoundError, PermissionError) as exc:
            err.close()
            raise ZfsUnavailable(f"cannot run {exe[0]}: {exc.strerror}") from None
        return _Proc(argv, popen, err, out_file)

    def _spawn_into_pipe(self, argv: list[str], stdin: int | None, procs: list[_Proc]) -> int:
        """Start `argv` writing into a new pipe (appended to `procs`); the pipe's read end, which the caller
        closes. When the spawn fails, no end of the pipe stays open."""
        r, w = make_pipe()
        try:
            procs.append(self._spawn(argv, stdin, w))
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        return r

    async def _run_blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ---- HTTP streams ----
    async def open_send(self, spec: SendSpec | None, *, resume_token: str | None = None) -> SendHandle:
        argv = commands.send_resume(resume_token) if resume_token else commands.send(spec)  # type: ignore[arg-type]
        procs: list[_Proc] = []
        r = await self._run_blocking(self._spawn_into_pipe, argv, None, procs)
        return SendHandle(self, procs[0], r, spec.snapshot.value if spec else "resume")

    async def open_receive(self, target: DatasetName, *, force: bool, resumable: bool) -> ReceiveHandle:
        r, w = make_pipe()
        try:
            proc = await self._run_blocking(self._spawn, commands.receive(target, force, resumable), r, None, True)
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        return ReceiveHandle(self, proc, w, target.value)

    def classify(self, done: Completed, name: str, kind: str) -> ZfsApiError:
        return parsers.classify(done, name=name, kind=kind)

    # ---- files ----
    async def send_to_file(self, spec: SendSpec, path: str, root: str, compression: Compression) -> tuple[int, str]:
        fd = await self._run_blocking(_create_confined, path, root)
        procs: list[_Proc] = []
        cancel = threading.Event()
        work = self._run_blocking(self._send_file, spec, fd, path, compression, procs, cancel)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancel.set()  # the worker kills the pipeline, removes the partial file; wait for that
            for p in procs:
                p.kill()
            await asyncio.wait([work])
            raise

    def _send_file(self, spec: SendSpec, fd: int, path: str, compression: Compression, procs: list[_Proc],
                   cancel: threading.Event) -> tuple[int, str]:
        """In a worker thread: zfs send [| compressor] -> we read, hash and write the file."""
        ok = False
        try:
            last_r = self._spawn_into_pipe(commands.send(spec), None, procs)
            if compression is not Compression.NONE:
                send_out = last_r
                try:
                    last_r = self._spawn_into_pipe(COMPRESSORS[compression][0], send_out, procs)
                finally:
                    os.close(send_out)
            digest, size = hashlib.sha256(), 0
            try:
                while True:
                    chunk = os.read(last_r, READ_SIZE)
                    if not chunk:
                        break
                    if cancel.is_set():
                        raise ZfsCommandFailed(procs[0].argv, -9, "cancelled")
                    digest.update(chunk)
                    size += len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(last_r)
            results = [p.wait() for p in procs]
            for done in results:  # every process of the pipeline must have succeeded
                if not done.ok:
                    if done.argv[0] == "zfs":
                        raise parsers.classify(done, name=spec.snapshot.value, kind="snapshot")
                    raise ZfsCommandFailed(done.argv, done.exit_code, done.stderr)
            os.fsync(fd)
            ok = True
            return size, digest.hexdigest()
        finally:
            for p in procs:
                p.kill()
                p.popen.wait()
            os.close(fd)
            if not ok:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    async def receive_from_file(self, target: DatasetName, path: str, root: str, compression: Compression, *,
                                force: bool, resumable: bool) -> str | None:
        fd = await self._run_blocking(_open_confined, path, root)
        procs: list[_Proc] = []
        work = self._run_blocking(self._receive_file, target, fd, compression, force, resumable, procs)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            for p in procs:
                p.kill()
            await asyncio.wait([work])
            raise

    def _receive_file(self, target: DatasetName, fd: int, compression: Compression, force: bool, resumable: bool,
                      procs: list[_Proc]) -> str | None:
        try:
            stdin = fd
            if compression is not Compression.NONE:
                stdin = self._spawn_into_pipe(COMPRESSORS[compression][1], fd, procs)
            try:
                recv = self._spawn(commands.receive(target, force, resumable), stdin, None, True)
                procs.append(recv)
            finally:
                if stdin != fd:
                    os.close(stdin)
            results = [p.wait() for p in reversed(procs)]
            done = results[0]
            if not done.ok:
                raise parsers.classify(done, name=target.value, kind="dataset")
            for d in results[1:]:
                if not d.ok:
                    raise ZfsCommandFailed(d.argv, d.exit_code, d.stderr)
            return received_snapshot(done.stdout.decode("utf-8", "replace"))
        finally:
            for p in procs:
                p.kill()
                p.popen.wait()
            os.close(fd)


def received_snapshot(verbose: str) -> str | None:
    names = _INTO.findall(verbose)
    return names[-1].strip() if names else None


def _open_in(root: str, path: str, flags: int, param: str) -> int:
    """Open `path` (its final component never followed) after checking that its parent, symlinks resolved,
    lies inside `root`; the open is relative to that parent's directory fd. Only a regular file is opened: a FIFO,
    device or socket is refused without blocking (checked before the open, which is non-blocking, and after it)."""
    real_root = os.path.realpath(root)
    parent = os.path.realpath(os.path.dirname(path))
    if parent != real_root and not parent.startswith(real_root.rstrip("/") + "/"):
        raise InvalidArgument(param, "resolves outside the transfer directory (symlink)")
    try:
        dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("directory", os.path.dirname(path)) from None
    except NotADirectoryError:
        raise InvalidArgument(param, "its parent is not a directory") from None
    name = os.path.basename(path)
    try:
        _refuse_special(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode, param)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600, dir_fd=dfd)
    except FileExistsError:
        raise AlreadyExists("file", path) from None
    except FileNotFoundError:
        raise NotFound("file", path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(param, "is a symlink") from None
        if exc.errno == errno.ENXIO:  # a FIFO or socket that appeared after the check
            raise InvalidArgument(param, "not a regular file") from None
        raise
    finally:
        os.close(dfd)
    try:
        _refuse_special(os.fstat(fd).st_mode, param)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_special(mode: int, param: str) -> None:
    if stat.S_ISLNK(mode):
        raise InvalidArgument(param, "is a symlink")
    if not stat.S_ISREG(mode):
        raise InvalidArgument(param, "not a regular file (a FIFO, device, socket or directory)")


def _create_confined(path: str, root: str) -> int:
    return _open_in(root, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "output_file")


def _open_confined(path: str, root: str) -> int:
    return _open_in(root, path, os.O_RDONLY, "input_file")


class _FdIO:
    """Non-blocking reads/writes of a pipe end from the event loop (readiness via add_reader/add_writer)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def _ready(self, writer: bool) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        add, remove = (loop.add_writer, loop.remove_writer) if writer else (loop.add_reader, loop.remove_reader)
        add(self.fd, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            remove(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SendHandle(_FdIO):
    def __init__(self, owner: ZfsStreams, proc: _Proc, fd: int, name: str) -> None:
        super().__init__(fd)
        self._owner, self._proc, self._name = owner, proc, name
        self._done: Completed | None = None

    async def read(self) -> bytes:
        while True:
            try:
                chunk = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                await self._ready(False)
                continue
            if chunk:
                return chunk
            # end of stream: a send that failed before or after its first byte says so here
            await self.finish()
            return b""

    async def finish(self) -> None:
        if self._done is None:
            self._done = await self._owner._run_blocking(self._proc.wait)
            self.close()
        if not self._done.ok:
            raise self._owner.classify(self._done, self._name, "snapshot")

    async def kill(self) -> None:
        self._proc.kill()
        if self._done is None:
            self._done = await self._owner._run_blocking(self._proc.wait)
        self.close()


class ReceiveHandle(_FdIO):
    def __init__(self, owner: ZfsStreams, proc: _Proc, fd: int, target: str) -> None:
        super().__init__(fd)
        self._owner, self._proc, self._target = owner, proc, target
        self._done: Completed | None = None

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                await self._ready(True)
            except BrokenPipeError:
                await self.finish()  # zfs receive stopped reading: its error explains why
                raise ZfsCommandFailed(self._proc.argv, -1, "zfs receive stopped reading its input")

    async def finish(self) -> str | None:
        self.close()
        if self._done is None:
            self._done = await self._owner._run_blocking(self._proc.wait)
        if not self._done.ok:
            raise self._owner.classify(self._done, self._target, "dataset")
        return received_snapshot(self._done.stdout.decode("utf-8", "replace"))

    async def kill(self) -> None:
        self._proc.kill()
        self.close()
        if self._done is None:
            self._done = await self._owner._run_blocking(self._proc.wait)
