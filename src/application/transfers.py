"""Send and receive use cases: estimates, send files in confined transfer directories, and single-use HTTP
stream sessions."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Callable

from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import FileFailed, InvalidArgument, NotFound, PermissionDenied, ReceiveFailed, StateConflict, ZfsCommandFailed
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.transfer import (
    Compression,
    Operation,
    ReceiveSpec,
    ResumeSend,
    SendSpec,
    StreamSession,
    StreamState,
    StreamTransfer,
    Confined,
    confine,
    file_owner,
)

from .ports import Pipelines, ReceivePipe, SendFileDirs, SendPipe, Snapshots, StreamSessions, Transfers

PROGRESS_EVERY = 0.5  # seconds between progress writes to the session store (and cancel checks)


async def plan_send(transfers: Transfers, spec: SendSpec) -> SendSpec:
    """The send as it will run: raw (-w) for encrypted datasets, so their data leaves as stored, never decrypted."""
    if not spec.raw and await transfers.is_encrypted(spec.snapshot.dataset):
        return spec.with_raw(True)
    return spec


@dataclass(frozen=True, slots=True)
class Estimate:
    spec: SendSpec  # as it will run (raw for encrypted datasets)
    size_bytes: int


class SendEstimate:
    """The size of a full or incremental send (from a snapshot or a bookmark), from `zfs send -nvP`.

    Raises:
        NotFound: no such snapshot or bookmark.
    """

    def __init__(self, transfers: Transfers) -> None:
        self._t = transfers

    async def execute(self, *, spec: SendSpec) -> Estimate:
        spec = await plan_send(self._t, spec)
        return Estimate(spec, await self._t.estimate(spec))


def _suffixed(output_file: str, compression: Compression) -> str:
    """The send file's name with its compression's suffix (`.gz`, `.zst`) added unless the caller gave it."""
    return output_file + compression.suffix if compression.suffix and not output_file.endswith(compression.suffix) \
        else output_file


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    size_bytes: int
    sha256: str
    duration: float


@dataclass(frozen=True, slots=True)
class TransferRoots:
    """The directories send files may live in (transfer.directories); the first takes relative paths."""

    paths: tuple[str, ...]

    async def locate(self, dirs: SendFileDirs, who: Principal, path: str, param: str) -> Confined:
        """Where `path` lies for `who` (an admin without a scope: anywhere in the directories; anyone else: in
        its own subdirectory, made on first use)."""
        confined = confine(path, self.paths, param, file_owner(who))
        if confined.owner is not None:
            await dirs.ensure(confined.root, confined.owner, param)
        return confined


@dataclass(frozen=True, slots=True)
class _PlannedSend:
    where: Confined
    spec: SendSpec  # as it will run
    estimate: int


class SendToFile:
    """Write a send to a new send file inside a transfer directory (never overwriting), compressed by a
    separate gzip/zstd process; a failed send leaves no file behind. Callers other than an unscoped admin
    write in their own subdirectory of it.

    Raises:
        InvalidArgument: the path lies outside the caller's transfer directory, is not a new name the
            filesystem can take, or an impossible send.
        PermissionDenied: the caller's name cannot name a transfer subdirectory.
        NotFound: no such snapshot, bookmark or directory.
        AlreadyExists: the file exists.
        FileFailed: the filesystem refused the file (full, read-only, I/O error), with the path as given.
    """

    def __init__(self, transfers: Transfers, pipelines: Pipelines, dirs: SendFileDirs, roots: TransferRoots) -> None:
        self._t, self._p, self._dirs, self._roots = transfers, pipelines, dirs, roots

    async def check(self, *, who: Principal, output_file: str, compression: Compression) -> Confined:
        """Every check of the file `execute` makes before the first byte (where it lies, that it is a new name
        the filesystem can take), without asking zfs: a call queued as a job is refused now rather than by its
        job, and still answered at once. Where the file lies."""
        where = await self._roots.locate(self._dirs, who, _suffixed(output_file, compression), "output_file")
        await self._dirs.check(where.directory, where.path, "output_file", exists=False)
        return where

    async def _done_before(self, who: Principal, output_file: str, compression: Compression,
                           mark: str) -> FileResult | None:
        where = await self._roots.locate(self._dirs, who, _suffixed(output_file, compression), "output_file")
        found = await self._p.sent_file(where.path, where.directory, mark)
        return None if found is None else FileResult(where.path, found[0], found[1], 0.0)

    async def _plan(self, who: Principal, spec: SendSpec, output_file: str, compression: Compression) -> _PlannedSend:
        where = await self.check(who=who, output_file=output_file, compression=compression)
        spec = await plan_send(self._t, spec)
        estimate = await self._t.estimate(spec)  # validates snapshots and flags before any file exists
        return _PlannedSend(where, spec, estimate)

    async def execute(self, *, who: Principal, spec: SendSpec, output_file: str, compression: Compression,
                      progress: ProgressMeter | None = None, mark: str | None = None) -> FileResult:
        """The file written. `mark`: the job this send runs as; a run of that job that finds the complete file
        an earlier run of it wrote (its outcome lost to a crash or a store outage) answers that file, unsent."""
        started = time.monotonic()
        try:
            if mark is not None and (done := await self._done_before(who, output_file, compression, mark)):
                return done
            plan = await self._plan(who, spec, output_file, compression)
            if progress is not None:
                progress.phase("sending")
                progress.expect(plan.estimate)
            size, digest = await self._p.send_to_file(plan.spec, plan.where.path, plan.where.directory, compression,
                                                      progress, mark)
        except FileFailed as exc:  # named as the caller named it, not as this server resolved it
            raise exc.named(output_file) from None
        return FileResult(plan.where.path, size, digest, time.monotonic() - started)


class ReceiveFromFile:
    """Receive a send file from a transfer directory (compression by suffix unless given). Callers other than
    an unscoped admin read only from their own subdirectory of it.

    Raises:
        InvalidArgument: the path lies outside the caller's transfer directory, or is not a regular file.
        PermissionDenied: the caller's name cannot name a transfer subdirectory.
        NotFound: no such file.
        AlreadyExists: the target exists (and no force), or is being received into.
        FileFailed: the filesystem refused to open the file, with the path as given.
    """

    def __init__(self, pipelines: Pipelines, dirs: SendFileDirs, roots: TransferRoots) -> None:
        self._p, self._dirs, self._roots = pipelines, dirs, roots

    async def check(self, *, who: Principal, input_file: str) -> Confined:
        """Every check `execute` makes before zfs receive starts (the file, where it lies and what it is): a
        call queued as a job is refused now rather than by its job. Where the file lies."""
        where = await self._roots.locate(self._dirs, who, input_file, "input_file")
        await self._dirs.check(where.directory, where.path, "input_file", exists=True)
        return where

    async def execute(self, *, who: Principal, spec: ReceiveSpec, input_file: str,
                      compression: Compression | None, progress: ProgressMeter | None = None
                      ) -> tuple[str, str | None, float]:
        try:
            where = await self.check(who=who, input_file=input_file)
            started = time.monotonic()
            if progress is not None:
                progress.phase("receiving")
            snapshot = await self._p.receive_from_file(spec, where.path, where.directory,
                                                       compression or Compression.by_suffix(where.path), progress)
        except FileFailed as exc:
            raise exc.named(input_file) from None
        return where.path, snapshot, time.monotonic() - started


class AbortReceive:
    """Discard a partially received stream (`zfs receive -A`), dropping its resume token.

    Raises:
        NotFound: no such dataset.
        StateConflict: it holds no partial receive.
    """

    def __init__(self, transfers: Transfers) -> None:
        self._t = transfers

    async def execute(self, *, dataset: DatasetName) -> None:
        await self._t.abort_receive(dataset)


@dataclass
class _Live:
    """A transfer running in this process: its byte count and how to stop it."""

    session: StreamSession
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    bytes: int = 0
    reported: float = field(default_factory=time.monotonic)  # when bytes were last written to the store


@dataclass(frozen=True, slots=True)
class Received:
    target: DatasetName
    snapshot: str | None  # the snapshot received, as zfs receive -v names it
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The longest stream ttl, and how long a finished session stays listed (seconds)."""

    max_ttl: float = 86400.0
    retain: float = 3600.0


@dataclass(frozen=True, slots=True)
class SocketBody:
    """A request body still in its socket (see StreamService.receive): `first` already read, then `size` more
    bytes to read from the file descriptor `fd`, which stays open until the receive returns."""

    fd: int
    first: bytes
    size: int
    moved: Callable[[int], None] = lambda size: None  # after each piece of the rest, from a worker thread


class SendStream:
    """A started `zfs send` of a stream session (StreamService.send), consumed once: iterated for its bytes, or
    `forward`ed into a socket (no copy through this process). Either way the session ends done, failed or
    cancelled, and the child is killed and reaped however the consumer stops, `aclose` included."""

    def __init__(self, service: StreamService, live: _Live, proc: SendPipe, first: bytes) -> None:
        self._service, self._live, self._proc, self._first = service, live, proc, first
        self._used = False
        self._ended = False
        self._chunks_gen: AsyncIterator[bytes] | None = None

    def _take(self) -> None:
        if self._used:
            raise RuntimeError("a send stream is consumed once")
        self._used = True

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._take()
        self._chunks_gen = self._chunks()
        return self._chunks_gen

    async def _chunks(self) -> AsyncIterator[bytes]:
        live, proc = self._live, self._proc
        async with self._running():
            chunk = self._first
            while chunk:
                live.bytes += len(chunk)
                yield chunk
                await self._service._progress(live)
                self._check_stop()
                chunk = await proc.read()
            self._check_stop()
            await proc.finish()

    async def forward(self, target: int, head: Callable[[int], bytes], tail: bytes,
                      moved: Callable[[int], None] = lambda _: None) -> None:
        """The whole stream into the socket `target` (see SendPipe.forward), progress and cancellation as when
        iterated; `moved(size)` after each chunk, from a worker thread."""
        self._take()
        live = self._live

        def counted(size: int) -> None:
            live.bytes += size
            moved(size)

        async with self._running():
            async with self._service._reporting(live):
                await self._proc.forward(target, self._first, head, tail, counted)
            self._check_stop()
            await self._proc.finish()

    def _check_stop(self) -> None:
        if self._live.stop.is_set():
            raise StateConflict("stream cancelled", state="cancelled")

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """The watcher that kills the send when the session is cancelled, and the end of the session."""
        live, proc = self._live, self._proc
        watcher = asyncio.create_task(self._service._watch(live, proc))
        state = StreamState.FAILED
        error: str | None = "client disconnected"
        try:
            yield
            state, error = StreamState.DONE, None
        except (GeneratorExit, asyncio.CancelledError):
            raise  # the consumer stopped: the client went away
        except BaseException as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            watcher.cancel()
            await self._end(state, error)

    async def _end(self, state: StreamState, error: str | None) -> None:
        if not self._ended:
            self._ended = True
            await self._proc.kill()
            await self._service._end(self._live, state, error)

    async def aclose(self) -> None:
        """Stop (idempotent): the child is killed and reaped; a stream not consumed to its end ends failed."""
        self._used = True
        if self._chunks_gen is not None:
            await self._chunks_gen.aclose()  # type: ignore[attr-defined]
        await self._end(StreamState.FAILED, "client disconnected")


class StreamService:
    """stream_init / stream_list / stream_cancel, and running the transfers behind GET/POST /stream/{id}."""

    def __init__(self, transfers: Transfers, pipelines: Pipelines, snapshots: Snapshots, sessions: StreamSessions,
                 limits: StreamLimits) -> None:
        self._t, self._p, self._snapshots, self._sessions = transfers, pipelines, snapshots, sessions
        self._retain, self._max_ttl = limits.retain, limits.max_ttl
        self._live: dict[str, _Live] = {}

    # ---- stream_init ----
    async def init(self, who: Principal, transfer: StreamTransfer, ttl: float) -> StreamSession:
        """Check with ZFS everything the transfer will need, then store a pending single-use session.

        Raises InvalidArgument (ttl), PermissionDenied (a resume token for a dataset outside the caller's
        scope), StateConflict (a token that does not match), and what zfs says of the snapshots and flags."""
        if not 1 <= ttl <= self._max_ttl:
            raise InvalidArgument("ttl", f"must be between 1 and {self._max_ttl:g} seconds")
        if isinstance(transfer, SendSpec):
            transfer = await plan_send(self._t, transfer)
            await self._t.estimate(transfer)  # every check zfs itself does, before the first byte
        elif isinstance(transfer, ResumeSend):
            transfer = await self._check_resume(who, transfer)
        elif transfer.resume_token is not None:
            if await self._t.resume_token(transfer.target) != transfer.resume_token:
                raise StateConflict("the target holds no such resume token", target_dataset=transfer.target.value)
        now = time.time()
        session = StreamSession(secrets.token_hex(16), who.name, now, now + ttl, transfer)
        await self._sessions.create(session, ttl + self._retain)
        return session

    async def _check_resume(self, who: Principal, r: ResumeSend) -> ResumeSend:
        token = await self._t.decode_resume_token(r.token)
        to = SnapshotName.parse(token.toname)
        if not who.covers(to.value):
            raise PermissionDenied("stream_init", to.value, "the resume token's dataset is outside your scope")
        if r.dataset is not None and r.dataset != to.dataset:
            raise StateConflict("the resume token continues a different dataset", token_dataset=to.dataset.value)
        if r.snapshot is not None and r.snapshot != to:
            raise StateConflict("the resume token continues a different snapshot", token_snapshot=to.value)
        snaps = await self._snapshots.list_snapshots(to.dataset, recursive=False, details=False)
        guid = next((x.guid for x in snaps if x.name == to.value), None)
        if guid != token.toguid:
            raise StateConflict("the resume token does not match this host's snapshot (foreign token)",
                                snapshot=to.value)
        if token.raw != r.raw:
            raise StateConflict("the resume token's raw flag differs from the requested one", raw=token.raw)
        if token.compressed != r.native_compressed and not token.raw:
            raise StateConflict("the resume token's compression differs from the requested one",
                                native_compressed=token.compressed)
        return replace(r, dataset=to.dataset, snapshot=to)

    # ---- stream_list / stream_cancel ----
    async def list(self, who: Principal) -> list[StreamSession]:
        now = time.time()
        out = []
        for s in await self._sessions.list():
            if who.role is not Role.ADMIN and s.username != who.name:
                continue
            live = self._live.get(s.stream_id)
            out.append(replace(s, state=s.effective_state(now), bytes=live.bytes if live else s.bytes))
        return sorted(out, key=lambda s: s.created)

    async def cancel(self, who: Principal, stream_id: str) -> None:
        s = await self._sessions.get(stream_id)
        if s is None or (who.role is not Role.ADMIN and s.username != who.name):
            raise NotFound("stream", stream_id)
        state = s.effective_state(time.time())
        if state.final:
            raise StateConflict(f"the stream is already {state.value}", state=state.value)
        await self._sessions.update(stream_id, state=StreamState.CANCELLED, error="cancelled")
        live = self._live.get(stream_id)
        if live is not None:
            live.stop.set()

    # ---- the transfers ----
    async def _claim(self, stream_id: str, operation: Operation) -> StreamSession:
        s = await self._sessions.claim(stream_id, time.time())
        if s is None:
            known = await self._sessions.get(stream_id)
            if known is None:
                raise NotFound("stream", stream_id)
            state = known.effective_state(time.time())
            raise StateConflict(f"stream {state.value if state.final else 'already used'}", state=state.value)
        if s.operation is not operation:
            await self._sessions.update(stream_id, state=StreamState.FAILED, error="wrong HTTP method")
            raise StateConflict(f"this stream is a {s.operation.value}: use "
                                f"{'GET' if s.operation is Operation.SEND else 'POST'}", state="failed")
        return s

    async def _progress(self, live: _Live) -> None:
        now = time.monotonic()
        if now - live.reported < PROGRESS_EVERY:
            return
        live.reported = now
        stored = await self._sessions.update(live.session.stream_id, bytes=live.bytes)
        if stored is not None and stored.state is StreamState.CANCELLED:
            live.stop.set()

    @contextlib.asynccontextmanager
    async def _reporting(self, live: _Live) -> AsyncIterator[None]:
        """`_progress` every PROGRESS_EVERY seconds while bytes move in a worker thread. Never cancelled inside
        a store write: the end of the session, written after, is never overwritten."""
        moved_all = asyncio.Event()

        async def report() -> None:
            while True:
                try:
                    await asyncio.wait_for(moved_all.wait(), PROGRESS_EVERY)
                    return
                except TimeoutError:
                    await self._progress(live)

        reporter = asyncio.create_task(report())
        try:
            yield
        finally:
            moved_all.set()
            await asyncio.wait([reporter])

    async def _take(self, live: _Live, proc: ReceivePipe, body: SocketBody) -> None:
        if body.first:
            await proc.write(body.first)
            live.bytes += len(body.first)

        def counted(size: int) -> None:
            live.bytes += size
            body.moved(size)

        try:
            async with self._reporting(live):
                await proc.forward_from(body.fd, body.size, counted)
        except ZfsCommandFailed:
            if not live.stop.is_set():  # else killed by stream_cancel: said so by the caller
                raise

    async def _end(self, live: _Live, state: StreamState, error: str | None) -> None:
        self._live.pop(live.session.stream_id, None)
        current = await self._sessions.get(live.session.stream_id)
        if current is not None and current.state is StreamState.CANCELLED:
            state = StreamState.CANCELLED
        await self._sessions.update(live.session.stream_id, state=state, bytes=live.bytes, error=error)

    async def _watch(self, live: _Live, proc: SendPipe | ReceivePipe) -> None:
        await live.stop.wait()
        await proc.kill()

    async def send(self, stream_id: str) -> SendStream:
        """Claim the session and start `zfs send`. Errors before the first byte raise from this call; the
        returned stream is consumed once, by iterating it or by `SendStream.forward`, and raises if the send
        fails midway (the HTTP layer then aborts the response). Closing it early kills and reaps the child."""
        s = await self._claim(stream_id, Operation.SEND)
        assert not isinstance(s.transfer, ReceiveSpec)  # _claim checked the operation
        live = _Live(s)
        proc: SendPipe | None = None
        try:
            proc = await self._p.open_send(s.transfer)
            first = await proc.read()
        except BaseException as exc:
            if proc is not None:
                await proc.kill()  # e.g. cancelled while waiting for the first bytes: no child may outlive it
            await self._end(live, StreamState.FAILED, str(exc) or type(exc).__name__)
            raise
        self._live[stream_id] = live
        return SendStream(self, live, proc, first)

    async def receive(self, stream_id: str, body: AsyncIterator[bytes], compression: Compression = Compression.NONE,
                      socket: Callable[[], SocketBody | None] | None = None) -> Received:
        """Pipe `body` (compressed so, when `compression` says) into `zfs receive`, or, when `socket` gives one
        once the receive has started, the rest of the body from its socket (spliced, no copy through this
        process). On failure raises ReceiveFailed carrying the target's resume token when the receive was
        resumable."""
        s = await self._claim(stream_id, Operation.RECEIVE)
        spec = s.transfer
        assert isinstance(spec, ReceiveSpec)  # _claim checked the operation
        live = _Live(s)
        started = time.monotonic()
        proc: ReceivePipe | None = None
        state = StreamState.FAILED
        error: str | None = "client disconnected"
        watcher = None
        try:
            proc = await self._p.open_receive(spec, compression)
            self._live[stream_id] = live
            watcher = asyncio.create_task(self._watch(live, proc))
            taken = socket() if socket is not None else None
            if taken is not None:
                await self._take(live, proc, taken)
            else:
                async for chunk in body:
                    if live.stop.is_set():
                        break
                    await proc.write(chunk)
                    live.bytes += len(chunk)
                    await self._progress(live)
            if live.stop.is_set():
                raise StateConflict("stream cancelled", state="cancelled")
            snapshot = await proc.finish()
            state, error = StreamState.DONE, None
            return Received(spec.target, snapshot, live.bytes, time.monotonic() - started)
        except ZfsCommandFailed as exc:
            error = exc.stderr or str(exc)
            token = await self._t.resume_token(spec.target) if spec.resumable else None
            raise ReceiveFailed(exc.command, exc.exit_code, exc.stderr, token.value if token else None) from None
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
            if proc is not None:
                await proc.kill()
            await self._end(live, state, error)
