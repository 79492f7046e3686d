"""Send and receive use cases: estimates, confined file transfers, and single-use HTTP stream sessions."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import AsyncIterator

from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ReceiveFailed,
    StateConflict,
    ZfsCommandFailed,
)
from zfsapi.domain.names import DatasetName, SnapshotName, parse_snapshot_or_bookmark
from zfsapi.domain.transfer import (
    Compression,
    Operation,
    SendSpec,
    StreamSession,
    StreamState,
    confine,
)

from .ports import ReceiveStream, SendStream, Snapshots, StreamSessions, Transfers

PROGRESS_EVERY = 0.5  # seconds between progress writes to the session store (and cancel checks)


class PlanSend:
    """The send as it will run: raw (-w) for encrypted datasets, so their data leaves as stored, never decrypted."""

    def __init__(self, transfers: Transfers) -> None:
        self._t = transfers

    async def execute(self, *, spec: SendSpec) -> SendSpec:
        if not spec.raw and await self._t.is_encrypted(spec.snapshot.dataset):
            return spec.with_raw(True)
        return spec


class SendEstimate:
    """The size of a full or incremental send (from a snapshot or a bookmark), from `zfs send -nvP`."""

    def __init__(self, transfers: Transfers) -> None:
        self._t = transfers

    async def execute(self, *, spec: SendSpec) -> int:
        return await self._t.estimate(spec)


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    size_bytes: int
    sha256: str
    duration: float


class SendToFile:
    """Write a send stream to a new file inside a transfer directory (never overwriting), compressed by a
    separate gzip/zstd process; a failed send leaves no file behind."""

    def __init__(self, transfers: Transfers, roots: tuple[str, ...]) -> None:
        self._t, self._roots = transfers, roots

    async def execute(self, *, spec: SendSpec, output_file: str, compression: Compression) -> FileResult:
        if compression.suffix and not output_file.endswith(compression.suffix):
            output_file += compression.suffix
        root, path = confine(output_file, self._roots, "output_file")
        started = time.monotonic()
        await self._t.estimate(spec)  # validates snapshots and flags before any file exists
        size, digest = await self._t.send_to_file(spec, path, root, compression)
        return FileResult(path, size, digest, time.monotonic() - started)


class ReceiveFromFile:
    """Receive a stream from a file inside a transfer directory (compression by suffix unless given)."""

    def __init__(self, transfers: Transfers, roots: tuple[str, ...]) -> None:
        self._t, self._roots = transfers, roots

    async def execute(self, *, target: DatasetName, input_file: str, force: bool, resumable: bool,
                      compression: Compression | None) -> tuple[str, str | None, float]:
        root, path = confine(input_file, self._roots, "input_file")
        started = time.monotonic()
        snapshot = await self._t.receive_from_file(target, path, root, compression or Compression.by_suffix(path),
                                                   force=force, resumable=resumable)
        return path, snapshot, time.monotonic() - started


class AbortReceive:
    """Discard a partially received stream (`zfs receive -A`), dropping its resume token."""

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


class StreamService:
    """stream_init / stream_list / stream_cancel, and running the transfers behind GET/POST /stream/{id}."""

    def __init__(self, transfers: Transfers, snapshots: Snapshots, sessions: StreamSessions, *,
                 retain: float = 3600.0, max_ttl: float = 86400.0) -> None:
        self._t, self._snapshots, self._sessions = transfers, snapshots, sessions
        self._retain, self._max_ttl = retain, max_ttl
        self._live: dict[str, _Live] = {}

    # ---- stream_init ----
    async def init(self, who: Principal, session: StreamSession, ttl: float) -> StreamSession:
        """Validate everything the transfer will need, then store a pending single-use session."""
        if not 1 <= ttl <= self._max_ttl:
            raise InvalidArgument("ttl", f"must be between 1 and {self._max_ttl:g} seconds")
        if session.operation is Operation.SEND:
            session = await self._check_send(who, session)
        else:
            session = await self._check_receive(session)
        now = time.time()
        session = replace(session, stream_id=secrets.token_hex(16), username=who.name, created=now,
                          expires_at=now + ttl, state=StreamState.PENDING)
        await self._sessions.create(session, ttl + self._retain)
        return session

    async def _check_send(self, who: Principal, s: StreamSession) -> StreamSession:
        if s.resume_token is not None:
            token = await self._t.decode_resume_token(s.resume_token)
            to = SnapshotName.parse(token.toname)
            if not who.covers(to.value):
                raise PermissionDenied("stream_init", to.value, "the resume token's dataset is outside your scope")
            if s.dataset is not None and s.dataset != to.dataset.value:
                raise StateConflict("the resume token continues a different dataset", token_dataset=to.dataset.value)
            if s.snapshot is not None and s.snapshot != to.value:
                raise StateConflict("the resume token continues a different snapshot", token_snapshot=to.value)
            snaps = await self._snapshots.list_snapshots(to.dataset, recursive=False, details=False)
            guid = next((x.guid for x in snaps if x.name == to.value), None)
            if guid != token.toguid:
                raise StateConflict("the resume token does not match this host's snapshot (foreign token)",
                                    snapshot=to.value)
            if token.raw != s.raw:
                raise StateConflict("the resume token's raw flag differs from the requested one", raw=token.raw)
            if token.compressed != s.native_compressed and not token.raw:
                raise StateConflict("the resume token's compression differs from the requested one",
                                    native_compressed=token.compressed)
            return replace(s, dataset=to.dataset.value, snapshot=to.value)
        if s.snapshot is None or s.dataset is None:
            raise InvalidArgument("snapshot", "a send needs dataset and snapshot (or a resume_token)")
        await self._t.estimate(self.send_spec(s))  # every check zfs itself does, before the first byte
        return s

    async def _check_receive(self, s: StreamSession) -> StreamSession:
        if s.target_dataset is None:
            raise InvalidArgument("target_dataset", "a receive needs target_dataset")
        target = DatasetName.parse(s.target_dataset)
        if s.resume_token is not None:
            current = await self._t.resume_token(target)
            if current != s.resume_token:
                raise StateConflict("the target holds no such resume token", target_dataset=target.value)
        return s

    @staticmethod
    def send_spec(s: StreamSession) -> SendSpec:
        assert s.snapshot is not None
        return SendSpec(SnapshotName.parse(s.snapshot),
                        parse_snapshot_or_bookmark(s.from_snapshot) if s.from_snapshot else None,
                        recursive=s.recursive, raw=s.raw, native_compressed=s.native_compressed)

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
        await self._sessions.update(stream_id, state=StreamState.CANCELLED.value, error="cancelled")
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
            await self._sessions.update(stream_id, state=StreamState.FAILED.value, error="wrong HTTP method")
            raise StateConflict(f"this stream is a {s.operation.value}: use "
                                f"{'GET' if s.operation is Operation.SEND else 'POST'}", state="failed")
        return s

    async def _progress(self, live: _Live, last: list[float], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - last[0] < PROGRESS_EVERY:
            return
        last[0] = now
        stored = await self._sessions.update(live.session.stream_id, bytes=live.bytes)
        if stored is not None and stored.state is StreamState.CANCELLED:
            live.stop.set()

    async def _end(self, live: _Live, state: StreamState, error: str | None) -> None:
        self._live.pop(live.session.stream_id, None)
        current = await self._sessions.get(live.session.stream_id)
        if current is not None and current.state is StreamState.CANCELLED:
            state = StreamState.CANCELLED
        await self._sessions.update(live.session.stream_id, state=state.value, bytes=live.bytes, error=error)

    async def _watch(self, live: _Live, proc: SendStream | ReceiveStream) -> None:
        await live.stop.wait()
        await proc.kill()

    async def send(self, stream_id: str) -> AsyncIterator[bytes]:
        """Claim the session and start `zfs send`. Errors before the first byte raise from this call; the
        returned iterator yields the stream and raises if the send fails midway (the HTTP layer then aborts
        the response). Closing the iterator early kills and reaps the child."""
        s = await self._claim(stream_id, Operation.SEND)
        live = _Live(s)
        proc: SendStream | None = None
        try:
            proc = await self._t.open_send(None if s.resume_token else self.send_spec(s), resume_token=s.resume_token)
            first = await proc.read()
        except BaseException as exc:
            if proc is not None:
                await proc.kill()  # e.g. cancelled while waiting for the first bytes: no child may outlive it
            await self._end(live, StreamState.FAILED, str(exc) or type(exc).__name__)
            raise
        self._live[stream_id] = live
        return self._pump_send(live, proc, first)

    async def _pump_send(self, live: _Live, proc: SendStream, first: bytes) -> AsyncIterator[bytes]:
        watcher = asyncio.create_task(self._watch(live, proc))
        last = [time.monotonic()]
        state, error = StreamState.FAILED, "client disconnected"
        try:
            chunk = first
            while chunk:
                live.bytes += len(chunk)
                yield chunk
                await self._progress(live, last)
                if live.stop.is_set():
                    raise StateConflict("stream cancelled", state="cancelled")
                chunk = await proc.read()
            if live.stop.is_set():
                raise StateConflict("stream cancelled", state="cancelled")
            await proc.finish()
            state, error = StreamState.DONE, None
        except (GeneratorExit, asyncio.CancelledError):
            raise  # the consumer stopped: the client went away
        except BaseException as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            watcher.cancel()
            await proc.kill()
            await self._end(live, state, error)

    async def receive(self, stream_id: str, body: AsyncIterator[bytes]) -> tuple[StreamSession, str | None, int, float]:
        """Pipe `body` into `zfs receive`: (session, snapshot received, bytes, seconds). On failure raises
        ReceiveFailed carrying the target's resume token when the receive was resumable."""
        s = await self._claim(stream_id, Operation.RECEIVE)
        live = _Live(s)
        assert s.target_dataset is not None
        target = DatasetName.parse(s.target_dataset)
        started = time.monotonic()
        proc: ReceiveStream | None = None
        state, error = StreamState.FAILED, "client disconnected"
        watcher = None
        try:
            proc = await self._t.open_receive(target, force=s.force, resumable=s.resumable)
            self._live[stream_id] = live
            watcher = asyncio.create_task(self._watch(live, proc))
            last = [time.monotonic()]
            async for chunk in body:
                if live.stop.is_set():
                    break
                await proc.write(chunk)
                live.bytes += len(chunk)
                await self._progress(live, last)
            if live.stop.is_set():
                raise StateConflict("stream cancelled", state="cancelled")
            snapshot = await proc.finish()
            state, error = StreamState.DONE, None
            return s, snapshot, live.bytes, time.monotonic() - started
        except ZfsCommandFailed as exc:
            error = exc.stderr or str(exc)
            token = await self._t.resume_token(target) if s.resumable else None
            raise ReceiveFailed(exc.command, exc.exit_code, exc.stderr, token) from None
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



@dataclass(frozen=True, slots=True)
class TransferUseCases:
    plan_send: PlanSend
    send_estimate: SendEstimate
    send_to_file: SendToFile
    receive_from_file: ReceiveFromFile
    receive_abort: AbortReceive
    streams: StreamService
