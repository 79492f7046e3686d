"""Answers written straight to the ASGI `send` by the raw routes (POST /, the job event streams), their refusal
bodies (JSON-RPC errors without an id), the same refusals as Litestar responses for the Litestar routes, and a
request body read with a size cap."""

from __future__ import annotations

import math

import msgspec
from litestar import Response
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Send

from ..jsonrpc.errors import INVALID_REQUEST
from .guard import Refusal

ENCODER = msgspec.json.Encoder()
Headers = list[tuple[bytes, bytes]]


def refusal_body(reason: str, code: int = INVALID_REQUEST) -> bytes:
    """A request refused before any call was read: an Invalid Request error (or `code`) naming the reason."""
    body = {"jsonrpc": "2.0", "error": {"code": code, "message": reason, "data": {"reason": reason}}, "id": None}
    return ENCODER.encode(body)


def refuse(refusal: Refusal, request_id: str) -> Response[bytes]:
    """The guard's refusal as a Litestar response."""
    return Response(refusal_body(refusal.reason), status_code=refusal.status, media_type="application/json",
                    headers={"X-Request-ID": request_id})


def retry_after(seconds: float) -> Headers:
    """Retry-After in whole seconds (at least 1), none when the wait has no end."""
    return [] if math.isinf(seconds) else [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]


async def send_reply(send: Send, status: int, body: bytes, request_id: str, extra: Headers | None = None) -> None:
    """A whole JSON answer (no body and no content headers with 204)."""
    headers = [(b"x-request-id", request_id.encode())]
    if status != 204:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status,
                                     "headers": headers + (extra or [])}
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body if status != 204 else b"",
                                  "more_body": False}
    await send(start)
    await send(end)


async def read_body(receive: Receive, announced: str | None, limit: int) -> bytes | None:
    """The whole body, or None when it is (or its Content-Length announces it to be) larger than `limit` bytes."""
    if announced is not None and announced.isdigit() and int(announced) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: nothing else comes on an HTTP connection
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
