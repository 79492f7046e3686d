"""Single-use stream sessions (stream_init / stream_list / stream_cancel) and the transfers behind them (GET and
POST /stream/{id}), split by what each part decides: `StreamOpener` whether a session may be opened (every check
zfs would make, before the first byte), `LiveStreams` (stream_book) a session's state, `SendStream` and
`StreamReceive` the transfer's run; `StreamService` joins them.

The application hands the running send or receive (a SendPipe or ReceivePipe) to the inbound adapter, which moves
the bytes (through `read`/`write`, or splicing between the pipe and its socket, see zfsapi.adapters.splicing) and
reports them; nothing here sees a file descriptor or a protocol's framing."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import (
    InvalidArgument,
    PermissionDenied,
    ReceiveFailed,
    StateConflict,
    ZfsCommandFailed,
)
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
)

from .ports import (
    Pipelines,
    ReceivePipe,
    SendPipe,
    Snapshots,
    StreamSessions,
    Transfers,
)
from .sending import plan_send
from .stream_book import LiveStream, LiveStreams

#: the adapter's part of a send: `first` (the bytes read before the answer started), then the pipe's bytes until
#: its end, moved out; `moved(n)` for each piece (from any thread)
Drain = Callable[[bytes, SendPipe, Callable[[int], None]], Awaitable[None]]
#: the adapter's part of a receive: the body written into the pipe (compressed as the receive was told);
#: `moved(n)` for each piece (from any thread)
Fill = Callable[[ReceivePipe, Callable[[int], None]], Awaitable[None]]


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


class StreamOpener:
    """stream_init: check with ZFS everything the transfer will need, then store a pending single-use session."""

    def __init__(self, transfers: Transfers, snapshots: Snapshots, sessions: StreamSessions,
                 limits: StreamLimits) -> None:
        self._t, self._snapshots, self._sessions, self._limits = transfers, snapshots, sessions, limits

    async def open(self, who: Principal, transfer: StreamTransfer, ttl: float) -> StreamSession:
        """Raises InvalidArgument (ttl), PermissionDenied (a resume token for a dataset outside the caller's
        scope), StateConflict (a token that does not match), and what zfs says of the snapshots and flags."""
        if not 1 <= ttl <= self._limits.max_ttl:
            raise InvalidArgument("ttl", f"must be between 1 and {self._limits.max_ttl:g} seconds")
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
        await self._sessions.create(session, ttl + self._limits.retain)
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


class SendStream:
    """A started `zfs send` of a stream session (StreamService.send), consumed once: iterated for its bytes, or
    `drain`ed by the adapter (which may splice it). Either way the session ends done, failed or cancelled, and
    the child is killed and reaped however the consumer stops, `aclose` included."""

    def __init__(self, book: LiveStreams, live: LiveStream, proc: SendPipe, first: bytes) -> None:
        self._book, self._live, self._proc, self._first = book, live, proc, first
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
                live.count(len(chunk))
                yield chunk
                await self._book.progress(live)
                live.check_stop()
                chunk = await proc.read()
            live.check_stop()
            await proc.finish()

    async def drain(self, into: Drain) -> None:
        """The whole stream moved out by `into(first, pipe, moved)`, progress and cancellation as when iterated
        (a cancel kills the send: what `into` then raises says the stream was cancelled)."""
        self._take()
        live = self._live
        async with self._running():
            try:
                async with self._book.reporting(live):
                    await into(self._first, self._proc, live.count)
            except Exception:
                live.check_stop()
                raise
            live.check_stop()
            await self._proc.finish()

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """The watcher that kills the send when the session is cancelled, and the end of the session."""
        state = StreamState.FAILED
        error: str | None = "client disconnected"
        try:
            async with self._book.watching(self._live, self._proc):
                yield
            state, error = StreamState.DONE, None
        except (GeneratorExit, asyncio.CancelledError):
            raise  # the consumer stopped: the client went away
        except BaseException as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            await self._end(state, error)

    async def _end(self, state: StreamState, error: str | None) -> None:
        if not self._ended:
            self._ended = True
            await self._proc.kill()
            await self._book.end(self._live, state, error)

    async def aclose(self) -> None:
        """Stop (idempotent): the child is killed and reaped; a stream not consumed to its end ends failed."""
        self._used = True
        if self._chunks_gen is not None:
            await self._chunks_gen.aclose()  # type: ignore[attr-defined]
        await self._end(StreamState.FAILED, "client disconnected")


class StreamReceive:
    """POST /stream/{id}'s run: `zfs receive` started, filled by the adapter, finished; the session ended."""

    def __init__(self, transfers: Transfers, pipelines: Pipelines, book: LiveStreams) -> None:
        self._t, self._p, self._book = transfers, pipelines, book

    async def run(self, live: LiveStream, fill: Fill, compression: Compression) -> Received:
        spec = live.session.transfer
        assert isinstance(spec, ReceiveSpec)  # claimed as a receive
        started = time.monotonic()
        proc: ReceivePipe | None = None
        state = StreamState.FAILED
        error: str | None = "client disconnected"
        try:
            proc = await self._p.open_receive(spec, compression)
            self._book.running(live)
            async with self._book.watching(live, proc):
                await self._fill(live, proc, fill)
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
            if proc is not None:
                await proc.kill()
            await self._book.end(live, state, error)

    async def _fill(self, live: LiveStream, proc: ReceivePipe, fill: Fill) -> None:
        """The body into the receive, progress reported; a cancel (which kills the receive) said as such."""
        try:
            async with self._book.reporting(live):
                await fill(proc, live.count)
        except ZfsCommandFailed:
            if not live.stop.is_set():  # else killed by stream_cancel: said so below
                raise
        live.check_stop()


class StreamService:
    """stream_init / stream_list / stream_cancel, and running the transfers behind GET/POST /stream/{id}."""

    def __init__(self, transfers: Transfers, pipelines: Pipelines, snapshots: Snapshots, sessions: StreamSessions,
                 limits: StreamLimits) -> None:
        self._p, self._sessions = pipelines, sessions
        self._book = LiveStreams(sessions)
        self._opener = StreamOpener(transfers, snapshots, sessions, limits)
        self._receive = StreamReceive(transfers, pipelines, self._book)

    async def init(self, who: Principal, transfer: StreamTransfer, ttl: float) -> StreamSession:
        """Check with ZFS everything the transfer will need, then store a pending single-use session.

        Raises InvalidArgument (ttl), PermissionDenied (a resume token for a dataset outside the caller's
        scope), StateConflict (a token that does not match), and what zfs says of the snapshots and flags."""
        return await self._opener.open(who, transfer, ttl)

    async def list(self, who: Principal) -> list[StreamSession]:
        return await self._book.list(who)

    async def cancel(self, who: Principal, stream_id: str) -> None:
        await self._book.cancel(who, stream_id)

    async def send(self, stream_id: str) -> SendStream:
        """Claim the session and start `zfs send`. Errors before the first byte raise from this call; the
        returned stream is consumed once, by iterating it or by `SendStream.drain`, and raises if the send
        fails midway (the HTTP layer then aborts the response). Closing it early kills and reaps the child."""
        live = await self._book.claim(stream_id, Operation.SEND)
        source = live.session.transfer
        assert not isinstance(source, ReceiveSpec)  # claimed as a send
        proc: SendPipe | None = None
        try:
            proc = await self._p.open_send(source)
            first = await proc.read()
        except BaseException as exc:
            if proc is not None:
                await proc.kill()  # e.g. cancelled while waiting for the first bytes: no child may outlive it
            await self._book.end(live, StreamState.FAILED, str(exc) or type(exc).__name__)
            raise
        self._book.running(live)
        return SendStream(self._book, live, proc, first)

    async def receive(self, stream_id: str, fill: Fill, compression: Compression = Compression.NONE) -> Received:
        """Claim the session, start `zfs receive` (behind a decompressor when `compression` says the body is
        compressed) and hand it to `fill(pipe, moved)`, which writes the body into it. On failure raises
        ReceiveFailed carrying the target's resume token when the receive was resumable."""
        live = await self._book.claim(stream_id, Operation.RECEIVE)
        return await self._receive.run(live, fill, compression)
