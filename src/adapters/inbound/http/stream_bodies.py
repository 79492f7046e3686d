"""The bodies of GET and POST /stream/{id}: a running send's bytes as the chunks of the response, and the request
body into a running receive.

Each goes through ASGI (`send`/`receive` messages, the pipe's `read`/`write`), or, when uvicorn hands this
connection's socket over (see peer.PeerAwareHttpTools) and the pipe can be spliced (zfsapi.adapters.splicing), by
splice(2) between the socket and the pipe in the pipe's worker thread: no byte passes through this process. The
HTTP chunk framing of a spliced response is written here, around each spliced chunk.
"""

from __future__ import annotations

import os
import select
import time
from functools import partial
from typing import Any, AsyncIterator, Callable

from litestar.types import Receive, Scope, Send

from zfsapi.adapters.splicing import Stopped, relay_pipe, spliceable
from zfsapi.application.ports import ReceivePipe, SendPipe

from .peer import BODY_KEY, SOCKET_KEY

READ_SIZE = 1 << 20  # bytes per splice
COALESCE = 256 * 1024  # request body chunks are gathered to at least this much per pipe write


class ClientGone(Exception):
    pass


def _extension(scope: Scope, key: str) -> Any:
    extensions: dict[str, Any] = scope.get("extensions") or {}
    return extensions.get(key)


class ResponseBody:
    """GET /stream/{id}'s answer: the response head, then the send's bytes as HTTP chunks (spliced into the socket
    when it can be). Used as a SendStream's drain; `end` ends the body once the drain has returned, that is once
    the send has exited cleanly and its session is recorded done (the server reads a request whose response is
    complete as disconnected, which would stop the session before that)."""

    def __init__(self, scope: Scope, send: Send, request_id: str, counted: Callable[[int], None]) -> None:
        self._scope, self._send, self._rid, self._counted = scope, send, request_id, counted

    async def __call__(self, first: bytes, pipe: SendPipe, moved: Callable[[int], None]) -> None:
        def both(size: int) -> None:
            moved(size)
            self._counted(size)

        await self._send({"type": "http.response.start", "status": 200,
                          "headers": [(b"content-type", b"application/octet-stream"),
                                      (b"x-request-id", self._rid.encode()), (b"cache-control", b"no-store")]})
        splice = spliceable(pipe)
        take: Callable[[], int | None] | None = _extension(self._scope, SOCKET_KEY)
        target = take() if take is not None and splice is not None else None
        if splice is not None and target is not None:  # zero-copy: the send's pipe spliced into the socket
            try:
                await splice.in_thread(partial(chunked_splice, splice.fileno(), target, first, both))
            finally:
                os.close(target)
        else:
            chunk = first
            while chunk:
                await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
                both(len(chunk))
                chunk = await pipe.read()

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


class RequestBody:
    """POST /stream/{id}'s body into the receive: the rest of it spliced from the socket when uvicorn hands it over
    (after the bytes it had read), else read through ASGI. Used as StreamService.receive's fill; `close` after."""

    def __init__(self, scope: Scope, receive: Receive, counted: Callable[[int], None]) -> None:
        self._scope, self._receive, self._counted = scope, receive, counted
        self._socket: int | None = None  # the connection's socket, once handed over
        self._left = 0  # bytes of the body still in the socket

    async def __call__(self, pipe: ReceivePipe, moved: Callable[[int], None]) -> None:
        def both(size: int) -> None:  # from the splicing thread too
            self._left -= size
            moved(size)
            self._counted(size)

        splice = spliceable(pipe)
        take: Callable[[], tuple[int, bytes, int] | None] | None = _extension(self._scope, BODY_KEY)
        got = take() if take is not None and splice is not None else None
        if splice is None or got is None:
            async for chunk in self._chunks():
                await pipe.write(chunk)
                moved(len(chunk))
            return
        self._socket, first, self._left = got
        if first:
            await pipe.write(first)
            moved(len(first))
            self._counted(len(first))
        await splice.in_thread(partial(socket_splice, self._socket, splice.fileno(), self._left, both))

    async def _chunks(self) -> AsyncIterator[bytes]:
        buf: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] != "http.request":  # http.disconnect
                raise ClientGone("client went away mid-body")
            chunk = message.get("body", b"")
            if chunk:
                buf.append(chunk)
                size += len(chunk)
                self._counted(len(chunk))
            more = message.get("more_body", False)
            if size >= COALESCE or (not more and size):
                yield b"".join(buf) if len(buf) > 1 else buf[0]
                buf, size = [], 0
            if not more:
                return

    def rest(self) -> Callable[[float], None] | None:
        """What reads and drops the rest of a spliced body (for at most the seconds given, in a worker thread)
        before an error answer (closing on unread bytes would reset it); None when nothing is left unread."""
        if self._socket is None or self._left <= 0:
            return None
        return partial(discard, self._socket, self._left)

    def close(self) -> None:
        if self._socket is not None:
            os.close(self._socket)
            self._socket = None


def chunked_splice(source: int, target: int, first: bytes, moved: Callable[[int], None], stop: int) -> None:
    """In a worker thread: `first`, then `source` (a pipe) until its end, into the socket `target` (non-blocking),
    each as one HTTP chunk. A chunk goes from `source` into a pipe of our own (which tells its size before it is
    framed) and from there into the socket, both by splice. Waits for the socket with poll(2), alongside `stop`
    (readable: give up, raising Stopped), so a client that stops reading never holds the thread. Raises OSError
    (e.g. BrokenPipeError) when the socket's peer went away."""
    poller = select.poll()
    poller.register(target, select.POLLOUT)
    poller.register(stop, select.POLLIN)

    def writable() -> None:
        for fd, _ in poller.poll():
            if fd == stop:
                raise Stopped

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(target, view):]
            except BlockingIOError:
                writable()

    os.set_blocking(source, True)
    chunk_r, chunk_w = relay_pipe()
    try:
        if first:
            write(b"%x\r\n" % len(first) + first + b"\r\n")
            moved(len(first))
        while size := os.splice(source, chunk_w, READ_SIZE):  # blocks until the send writes, 0 at its end
            write(b"%x\r\n" % size)
            left = size
            while left:
                try:
                    left -= os.splice(chunk_r, target, left, flags=os.SPLICE_F_MOVE)
                except BlockingIOError:
                    writable()
            write(b"\r\n")
            moved(size)
    finally:
        os.close(chunk_r)
        os.close(chunk_w)


def socket_splice(source: int, target: int, size: int, moved: Callable[[int], None], stop: int) -> None:
    """In a worker thread: `size` bytes from the socket `source` (non-blocking: waited for with poll(2), alongside
    `stop`) into the pipe `target` (blocking: the receive sets the pace). Raises ConnectionResetError when the
    socket ends first."""
    poller = select.poll()
    poller.register(source, select.POLLIN)
    poller.register(stop, select.POLLIN)
    os.set_blocking(target, True)
    left = size
    while left:
        try:
            n = os.splice(source, target, min(left, READ_SIZE), flags=os.SPLICE_F_MOVE)
        except BlockingIOError:
            if any(fd == stop for fd, _ in poller.poll()):
                raise Stopped from None
            continue
        if n == 0:
            raise ConnectionResetError(f"client went away mid-body ({size - left} of {size} bytes)")
        left -= n
        moved(n)


def discard(fd: int, left: int, limit: float) -> None:
    """In a worker thread: read and drop up to `left` bytes of a request body from the socket `fd`, for at most
    `limit` seconds (a client that trickles does not hold the thread longer)."""
    deadline = time.monotonic() + limit
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while left > 0:
        wait = deadline - time.monotonic()
        if wait <= 0 or not poller.poll(wait * 1000):
            return
        try:
            chunk = os.read(fd, min(left, 1 << 20))
        except BlockingIOError:
            continue
        except OSError:
            return
        if not chunk:
            return
        left -= len(chunk)
