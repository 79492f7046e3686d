"""GET /stream/{id} (the `zfs send` bytes) and POST /stream/{id} (the body piped into `zfs receive`).

The stream id is the capability; the loopback guard still applies (Host, Origin). A send is validated and
its first bytes read before the response starts; a failure after that raises out of the ASGI app, so the
server drops the connection without the chunked terminator and a truncated stream never looks complete.
A client that goes away is noticed through `http.disconnect` and its zfs child killed and reaped at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Callable

import msgspec
from litestar import asgi
from litestar.enums import ScopeType
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.transfers import StreamService
from zfsapi.domain.errors import (
    InvalidArgument,
    NotFound,
    ReceiveFailed,
)
from zfsapi.domain.transfer import Compression
from zfsapi.protocol.status import Route, http_status

from ..jsonrpc.errors import to_rpc_error
from .stream_bodies import ClientGone, RequestBody, ResponseBody

log = logging.getLogger("zfsapi.stream")
_ID = re.compile(r"[0-9a-f]{32}")
_ENCODER = msgspec.json.Encoder()
LINGER = 30.0  # seconds an error answer waits for the rest of a spliced body to be read and dropped
# a POST body's Content-Encoding: decompressed by a gzip/zstd child in front of zfs receive
ENCODINGS = {"": Compression.NONE, "identity": Compression.NONE, "gzip": Compression.GZIP,
             "x-gzip": Compression.GZIP, "zstd": Compression.ZSTD}


def _status(exc: BaseException) -> int:
    return http_status(Route.STREAM, to_rpc_error(exc, "stream").code)


def _error_body(exc: BaseException, **extra: Any) -> bytes:
    e = to_rpc_error(exc, "stream")
    error: dict[str, Any] = {"code": e.code, "message": e.message, "data": e.data or {}}
    return _ENCODER.encode({"success": False, "error": error, **extra})


async def _json(send: Send, status: int, body: bytes, request_id: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Transfers:
    """The two transfers of a stream session, with their metrics."""

    def __init__(self, streams: StreamService, metrics: Metrics) -> None:
        self._streams, self._metrics = streams, metrics

    async def get(self, stream_id: str, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        """The send's bytes as the response; a client that goes away stops the send at once."""
        started = time.monotonic()
        try:
            stream = await self._streams.send(stream_id)
        except Exception as exc:
            await _json(send, _status(exc), _error_body(exc), rid)
            return
        self._metrics.streams_active.inc()
        outcome = "failed"
        body = ResponseBody(scope, send, rid, self._metrics.stream_bytes.labels("sent").inc)
        pumping = asyncio.create_task(stream.drain(body))
        watching = asyncio.create_task(_wait_disconnect(receive))
        try:
            await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done():  # the client went away: stop the send now
                pumping.cancel()
                outcome = "disconnected"
                await asyncio.gather(pumping, return_exceptions=True)
                return
            pumping.result()  # a failure midway raises here: the connection is dropped, not ended cleanly
            await body.end()  # after the session is recorded done: a complete response reads as a disconnect
            outcome = "done"
        finally:
            watching.cancel()
            await stream.aclose()
            self._metrics.streams_active.dec()
            self._metrics.stream_duration.labels("send", outcome).observe(time.monotonic() - started)

    async def post(self, stream_id: str, scope: Scope, receive: Receive, send: Send, rid: str,
                   compression: Compression) -> None:
        """The body into the receive; the answer says what was received, or why not."""
        started = time.monotonic()
        body = RequestBody(scope, receive, self._metrics.stream_bytes.labels("received").inc)

        async def answer_error(error: bytes, status: int) -> None:
            rest = body.rest()
            if rest is not None:  # read the rest first: closing on unread bytes resets the answer
                await asyncio.to_thread(rest, LINGER)
            await _json(send, status, error, rid)

        self._metrics.streams_active.inc()
        outcome = "failed"
        try:
            r = await self._streams.receive(stream_id, body, compression)
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
            body.close()
            self._metrics.streams_active.dec()
            self._metrics.stream_duration.labels("receive", outcome).observe(time.monotonic() - started)


async def _post_checked(transfers: _Transfers, a: Any, stream_id: str, scope: Scope, receive: Receive, send: Send,
                        rid: str) -> None:
    """POST once its Content-Type (never a "simple" cross-site request) and Content-Encoding are acceptable."""
    ctype = (a.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/octet-stream":
        await _json(send, 415, _error_body(InvalidArgument("Content-Type", "must be application/octet-stream")), rid)
        return
    encoding = (a.headers.get("content-encoding") or "").strip().lower()
    if encoding not in ENCODINGS:
        await _json(send, 415, _error_body(InvalidArgument(
            "Content-Encoding", f"{encoding[:64]!r} is not supported: gzip, zstd or none")), rid)
        return
    await transfers.post(stream_id, scope, receive, send, rid, ENCODINGS[encoding])


def stream_route(streams: StreamService, metrics: Metrics, admit: Callable[[Scope], Any]) -> ASGIRouteHandler:
    transfers = _Transfers(streams, metrics)

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
            await transfers.get(stream_id, scope, receive, send, rid)
        elif method == "POST":
            await _post_checked(transfers, a, stream_id, scope, receive, send, rid)
        else:
            await _json(send, 405, _ENCODER.encode({"success": False, "error": "GET or POST"}), rid)

    return stream
