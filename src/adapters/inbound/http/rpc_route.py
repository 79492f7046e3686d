"""POST /: JSON-RPC 2.0 calls (one or a batch), and one access log line per request.

Raw ASGI, answered ahead of Litestar (app.App): it is the hot path (no Request or Response objects, no middleware
or router per call); it reads the body itself, with a cap, so an oversized body is refused (413) as soon as its Content-Length or the
bytes read pass max_body_bytes; its refusals (405 with Allow, 415, 413, the guard's) are JSON-RPC error bodies;
and it notes the status it sent, for the access log. A client gone before its body arrived gets nothing; anything
else escaping (a bug: every call's own errors are caught by the dispatcher) is logged and answered 500 with a
JSON-RPC Internal error, as Litestar's exception middleware answered before.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from litestar.types import Message, Receive, Scope, Send

from zfsapi.domain.errors import RateLimited

from ..jsonrpc.dispatcher import Dispatcher
from ..jsonrpc.errors import INTERNAL_ERROR, RATE_LIMITED, outcome_of
from ..jsonrpc.registry import CallContext
from .admission import Admission, Gate
from .guard import is_json_content_type, is_valid_host_header
from .identity import Identity, via
from .limits import RateLimits
from .replies import read_body, refusal_body, retry_after, send_reply

access_log = logging.getLogger("zfsapi.access")
log = logging.getLogger("zfsapi.http")


def access_line(a: Admission, ctx: CallContext | None, status: int, started: float) -> None:
    """One line per POST /: the method(s), the outcome and error code (of the first call that failed), the HTTP
    status, the duration and who called (the request id comes with every line)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    calls = ctx.calls if ctx is not None else []
    code = next((c for _, c in calls if c is not None), RATE_LIMITED if status == 429 else None)
    principal = ctx.principal if ctx is not None else None
    fields = {
        "method": calls[0][0] if len(calls) == 1 else [m for m, _ in calls],
        "outcome": outcome_of(code) if calls or code is not None else "refused",
        "code": code,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "principal": principal.name if principal is not None else None,
        "peer": a.peer,
        "request_id": a.request_id,
    }
    direct = _direct(access_log)
    if direct is None or not direct(logging.INFO, access_log.name, "rpc", fields):
        access_log.info("rpc", extra=fields)


def _direct(logger: logging.Logger) -> Callable[[int, str, str, dict[str, Any]], bool] | None:
    """The line writer of the one handler a record of `logger` would reach, when that handler offers one
    (`emit_fields`: the server's stderr handler, bootstrap.logs) and no logger on the way filters: the line is
    then written without a LogRecord, the access line's cost cut by a fifth of a cheap call. None otherwise (a
    log file, pytest's capture, an embedding app's handlers): the record is logged as any other."""
    handler = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for found in node.handlers:
            if handler is not None:
                return None
            handler = found
        if not node.propagate:
            break
        node = node.parent
    return getattr(handler, "emit_fields", None)


class RpcEndpoint:
    """Answers POST /: admitted, identified, charged to its caller's rate limit, dispatched."""

    def __init__(self, gate: Gate, identity: Identity, limits: RateLimits, dispatcher: Dispatcher,
                 max_body_bytes: int) -> None:
        self._gate, self._identity, self._limits = gate, identity, limits
        self._dispatcher, self._max_body = dispatcher, max_body_bytes

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request and log it, whatever happened."""
        started = time.perf_counter()
        a = self._gate.admit(scope)
        status = 0

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        ctx = None
        try:
            ctx = await self.answer(scope, receive, noting, a)
        except ConnectionResetError:
            pass  # the client went away before its whole body came: nobody to answer
        except Exception:
            log.exception("POST / failed")
            if status == 0:
                await send_reply(noting, 500, refusal_body("internal error", INTERNAL_ERROR), a.request_id)
        finally:
            access_line(a, ctx, status, started)

    async def answer(self, scope: Scope, receive: Receive, send: Send, a: Admission) -> CallContext | None:
        """Answer one POST /; the call context once the request got as far as the dispatcher."""
        body = await self._body(scope, receive, send, a)
        if body is None:
            return None
        principal, auth_error = await self._identity.identify(a)
        ctx = CallContext(
            request_id=a.request_id,
            peer=a.peer or "",
            principal=principal,
            passwordless=principal is not None and principal.token_id is None,
            via=via(principal, a.local),
            credentials_presented="authorization" in a.headers,
            auth_error=auth_error,
        )
        charge = self._limits.charge(principal, ctx.peer)  # local users: their own quota (or none)
        try:
            reply = await self._dispatcher.handle(body, ctx, charge)
        except RateLimited as exc:
            self._limits.refused()
            await send_reply(send, 429, self._dispatcher.refusal_body(body, exc), a.request_id,
                             charge.headers() + retry_after(exc.retry_after))
            return ctx
        await send_reply(send, 204 if reply is None else 200, reply or b"", a.request_id, charge.headers())
        return ctx

    async def _body(self, scope: Scope, receive: Receive, send: Send, a: Admission) -> bytes | None:
        """The request's body, or None when the request was refused (and answered) before it."""
        rid = a.request_id
        if not is_valid_host_header(a.headers.get("host")):
            await send_reply(send, 400, refusal_body("invalid Host header"), rid)
            return None
        if scope.get("method") != "POST":
            await send_reply(send, 405, refusal_body("only POST is accepted"), rid, [(b"allow", b"POST")])
            return None
        if a.refusal is not None:
            await send_reply(send, a.refusal.status, refusal_body(a.refusal.reason), rid)
            return None
        if not is_json_content_type(a.headers.get("content-type")):
            await send_reply(send, 415, refusal_body("Content-Type must be application/json"), rid)
            return None
        body = await read_body(receive, a.headers.get("content-length"), self._max_body)
        if body is None:
            await send_reply(send, 413, refusal_body(f"request body over {self._max_body} bytes"), rid)
        return body

