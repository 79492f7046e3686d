"""The book of stream sessions: claiming one for its transfer, the transfers running in this process (their
bytes, how to stop them), listing and cancelling, progress written to the session store, and each session's end.
It decides a session's state; what moves the bytes is the transfer's (application.streams)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import NotFound, StateConflict
from zfsapi.domain.transfer import Operation, StreamSession, StreamState

from .ports import ReceivePipe, SendPipe, StreamSessions

PROGRESS_EVERY = 0.5  # seconds between progress writes to the session store (and cancel checks)


@dataclass
class LiveStream:
    """A transfer running in this process: its byte count and how to stop it."""

    session: StreamSession
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    bytes: int = 0
    reported: float = field(default_factory=time.monotonic)  # when bytes were last written to the store

    def count(self, size: int) -> None:
        """`size` more bytes moved (from any thread)."""
        self.bytes += size

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise StateConflict("stream cancelled", state="cancelled")


class LiveStreams:
    """The sessions in the store, and those of them running here."""

    def __init__(self, sessions: StreamSessions) -> None:
        self._sessions = sessions
        self._live: dict[str, LiveStream] = {}

    async def claim(self, stream_id: str, operation: Operation) -> LiveStream:
        """The session, made active for its one transfer (not yet listed as running here).

        Raises NotFound (no such session), StateConflict (used, finished, expired, or the other operation)."""
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
        return LiveStream(s)

    def running(self, live: LiveStream) -> None:
        """List `live` as running here (its bytes are then listed live, and a cancel stops it)."""
        self._live[live.session.stream_id] = live

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

    async def progress(self, live: LiveStream) -> None:
        """Write the byte count to the store, at most every PROGRESS_EVERY seconds; a cancel stored (by another
        worker) stops the transfer."""
        now = time.monotonic()
        if now - live.reported < PROGRESS_EVERY:
            return
        live.reported = now
        stored = await self._sessions.update(live.session.stream_id, bytes=live.bytes)
        if stored is not None and stored.state is StreamState.CANCELLED:
            live.stop.set()

    @contextlib.asynccontextmanager
    async def reporting(self, live: LiveStream) -> AsyncIterator[None]:
        """`progress` every PROGRESS_EVERY seconds while bytes move elsewhere (an adapter, a worker thread). Never
        cancelled inside a store write: the end of the session, written after, is never overwritten."""
        moved_all = asyncio.Event()

        async def report() -> None:
            while True:
                try:
                    await asyncio.wait_for(moved_all.wait(), PROGRESS_EVERY)
                    return
                except TimeoutError:
                    await self.progress(live)

        reporter = asyncio.create_task(report())
        try:
            yield
        finally:
            moved_all.set()
            await asyncio.wait([reporter])

    @contextlib.asynccontextmanager
    async def watching(self, live: LiveStream, proc: SendPipe | ReceivePipe) -> AsyncIterator[None]:
        """While inside, a cancel of the session kills `proc`."""

        async def watch() -> None:
            await live.stop.wait()
            await proc.kill()

        watcher = asyncio.create_task(watch())
        try:
            yield
        finally:
            watcher.cancel()

    async def end(self, live: LiveStream, state: StreamState, error: str | None) -> None:
        """The session's end (cancelled when a cancel was stored meanwhile, whatever the transfer says)."""
        self._live.pop(live.session.stream_id, None)
        current = await self._sessions.get(live.session.stream_id)
        if current is not None and current.state is StreamState.CANCELLED:
            state = StreamState.CANCELLED
        await self._sessions.update(live.session.stream_id, state=state, bytes=live.bytes, error=error)
