"""GET /stream/{id} (the `zfs send` bytes) and POST /stream/{id} (the body piped into `zfs receive`).

The stream id is the capability; the loopback guard still applies (Host, Origin). A send is validated and
its first bytes read before the response starts; a failure after that raises out of the ASGI app, so the
server drops the connection without the chunked terminator and a truncated stream never looks complete.
A client that goes away is noticed through `http.disconnect` and its zfs child killed and reaped at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
import time
from typing import Any, AsyncIterator, Callable

import msgspec
from litestar import asgi
from litestar.enums import ScopeType
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.transfers import SocketBody, StreamService
from zfsapi.domain.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ReceiveFailed,
    StateConflict,
    ZfsApiError,
    ZfsUnavailable,
)
from zfsapi.domain.transfer import Compression

from ..jsonrpc.errors import to_rpc_error
from .peer import BODY_KEY, SOCKET_KEY

log = logging.getLogger("zfsapi.stream")
_ID = re.compile(r"[0-9a-f]{32}")
_ENCODER = msgspec.json.Encoder()
COALESCE = 256 * 1024  # request body chunks are gathered to at least this much per pipe write
LINGER = 30.0  # seconds an error answer waits for the rest of a spliced body to be read and dropped
# a POST body's Content-Encoding: decompressed by a gzip/zstd child in front of zfs receive
ENCODINGS = {"": Compression.NONE, "identity": Compression.NONE, "gzip": Compression.GZIP,
             "x-gzip": Compression.GZIP, "zstd": Compression.ZSTD}


class ClientGone(Exception):
    pass


def _status(exc: BaseException) -> int:
    for cls, status in ((NotFound, 404), (StateConflict, 409), (InvalidArgument, 400), (PermissionDenied, 403),
                        (ZfsUnavailable, 503), (ZfsApiError, 500)):
        if isinstance(exc, cls):
            return status
    return 500


def _error_body(exc: BaseException, **extra: Any) -> bytes:
    e = to_rpc_error(exc, "stream")
    error: dict[str, Any] = {"code": e.code, "message": e.message, "data": e.data or {}}
    return _ENCODER.encode({"success": False, "error": error, **extra})


async def _json(send: Send, status: int, body: bytes, request_id: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _discard(fd: int, left: int, limit: float) -> None:
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


def _chunk_head(size: int) -> bytes:
    return b"%x\r\n" % size


def stream_route(streams: StreamService, metrics: Metrics, admit: Callable[[Scope], Any]) -> ASGIRouteHandler:
    async def wait_disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def get(stream_id: str, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.monotonic()
        try:
            chunks = await streams.send(stream_id)
        except Exception as exc:
            await _json(send, _status(exc), _error_body(exc), rid)
            return
        metrics.streams_active.inc()
        outcome = "failed"
        sent_bytes = metrics.stream_bytes.labels("sent")

        async def pump() -> None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream"), (b"x-request-id", rid.encode()),
                                    (b"cache-control", b"no-store")]})
            extensions: dict[str, Any] = scope.get("extensions") or {}
            take: Callable[[], int | None] | None = extensions.get(SOCKET_KEY)
            target = take() if take is not None else None
            if target is not None:  # zero-copy: the send's pipe spliced into the socket, as HTTP chunks
                try:
                    await chunks.forward(target, _chunk_head, b"\r\n", sent_bytes.inc)
                finally:
                    os.close(target)
            else:
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent_bytes.inc(len(chunk))
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        pumping = asyncio.create_task(pump())
        watching = asyncio.create_task(wait_disconnect(receive))
        try:
            await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done():  # the client went away: stop the send now
                pumping.cancel()
                outcome = "disconnected"
                await asyncio.gather(pumping, return_exceptions=True)
                return
            pumping.result()  # a failure midway raises here: the connection is dropped, not ended cleanly
            outcome = "done"
        finally:
            watching.cancel()
            await chunks.aclose()
            metrics.streams_active.dec()
            metrics.stream_duration.labels("send", outcome).observe(time.monotonic() - started)

    async def post(stream_id: str, scope: Scope, receive: Receive, send: Send, rid: str,
                   compression: Compression) -> None:
        started = time.monotonic()
        received = metrics.stream_bytes.labels("received")

        async def body() -> AsyncIterator[bytes]:
            buf: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect
                    raise ClientGone("client went away mid-body")
                chunk = message.get("body", b"")
                if chunk:
                    buf.append(chunk)
                    size += len(chunk)
                    received.inc(len(chunk))
                more = message.get("more_body", False)
                if size >= COALESCE or (not more and size):
                    yield b"".join(buf) if len(buf) > 1 else buf[0]
                    buf, size = [], 0
                if not more:
                    return

        extensions: dict[str, Any] = scope.get("extensions") or {}
        take: Callable[[], tuple[int, bytes, int] | None] | None = extensions.get(BODY_KEY)
        taken: SocketBody | None = None
        spliced = 0

        def moved(size: int) -> None:  # from the splicing thread
            nonlocal spliced
            spliced += size
            received.inc(size)

        def socket_body() -> SocketBody | None:
            """The rest of the body from the socket (zero-copy), asked for once the receive has started."""
            nonlocal taken
            got = take() if take is not None else None
            if got is not None:
                fd, first, size = got
                received.inc(len(first))
                taken = SocketBody(fd, first, size, moved)
            return taken

        async def answer_error(body: bytes, status: int) -> None:
            if taken is not None and spliced < taken.size:  # read the rest first: closing on unread bytes
                await asyncio.to_thread(_discard, taken.fd, taken.size - spliced, LINGER)  # resets the answer
            await _json(send, status, body, rid)

        metrics.streams_active.inc()
        outcome = "failed"
        try:
            r = await streams.receive(stream_id, body(), compression, socket_body)
            outcome = "done"
            out = {"success": True, "dataset": r.target.value, "snapshot": r.snapshot, "bytes_received": r.bytes,
                   "duration": round(r.seconds, 3),
                   "rate_mbps": round(r.bytes / r.seconds / 1e6 if r.seconds > 0 else 0.0, 1)}
            await _json(send, 200, _ENCODER.encode(out), rid)
        except (ClientGone, ConnectionResetError):
            outcome = "disconnected"
        except ReceiveFailed as exc:
            await answer_error(_error_body(exc, receive_resume_token=exc.resume_token), _status(exc))
        except Exception as exc:
            await answer_error(_error_body(exc), _status(exc))
        finally:
            if taken is not None:
                os.close(taken.fd)
            metrics.streams_active.dec()
            metrics.stream_duration.labels("receive", outcome).observe(time.monotonic() - started)

    # mounted (path params on ASGI routes are keyed by HTTP method in Litestar's router, which raw ASGI
    # handlers do not have): the rest of the path is the stream id
    @asgi("/stream", is_mount=True, copy_scope=True)
    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        a = admit(scope)
        rid = a.request_id
        if a.refusal is not None:
            await _json(send, a.refusal.status, _ENCODER.encode({"success": False, "error": a.refusal.reason}), rid)
            return
        stream_id = scope["path"].strip("/")
        method = scope["method"] if scope["type"] == ScopeType.HTTP else ""
        if not _ID.fullmatch(stream_id):
            await _json(send, 404, _error_body(NotFound("stream", stream_id[:64])), rid)
        elif method == "GET":
            await get(stream_id, scope, receive, send, rid)
        elif method == "POST":
            ctype = (a.headers.get("content-type") or "").split(";")[0].strip().lower()
            if ctype != "application/octet-stream":  # never a "simple" cross-site request
                await _json(send, 415, _error_body(InvalidArgument("Content-Type", "must be application/octet-stream")),
                            rid)
                return
            encoding = (a.headers.get("content-encoding") or "").strip().lower()
            if encoding not in ENCODINGS:
                await _json(send, 415, _error_body(InvalidArgument(
                    "Content-Encoding", f"{encoding[:64]!r} is not supported: gzip, zstd or none")), rid)
                return
            await post(stream_id, scope, receive, send, rid, ENCODINGS[encoding])
        else:
            await _json(send, 405, _ENCODER.encode({"success": False, "error": "GET or POST"}), rid)

    return stream
