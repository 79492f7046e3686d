"""GET /jobs/{job_id}/events: Server-Sent Events of a job's record, now and on every change, until it ends
(events.py writes them).

A raw ASGI route mounted at /jobs rather than a Litestar handler: the stream is written to the connection as the
job changes while the connection is watched for the client leaving (events.follow takes ASGI send and receive),
and Litestar keys path params of raw ASGI routes by HTTP method, which raw ASGI routes do not have, so the
route is a mount and the job id is read from the rest of the path.
"""

from __future__ import annotations

from functools import partial

from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from zfsapi.application.jobs import Jobs
from zfsapi.protocol.status import Route, http_status

from ..jsonrpc.errors import AUTH_REQUIRED, RpcError, to_rpc_error
from .admission import Admission, Gate
from .events import StreamGuard, follow
from .identity import Identity
from .limits import RateLimits
from .replies import ENCODER, Headers, refusal_body, send_reply


async def stream_refused(send: Send, exc: BaseException, request_id: str, extra: Headers) -> None:
    """An event stream refused before it started: the JSON-RPC error with its HTTP status."""
    error = to_rpc_error(exc, "job_events")
    status = http_status(Route.EVENTS, error.code, error.data)  # 503: the job store does not answer
    body = {"jsonrpc": "2.0", "error": {"code": error.code, "message": error.message, "data": error.data or {}},
            "id": None}
    await send_reply(send, status, ENCODER.encode(body), request_id, extra if status == 429 else None)


async def _misrouted(scope: Scope, send: Send, a: Admission, job_id: str, tail: str) -> bool:
    """Answer a request that is not an admitted GET /jobs/{job_id}/events (True: it was answered)."""
    if tail != "events" or not job_id:
        await send_reply(send, 404, refusal_body("no such route: GET /jobs/{job_id}/events"), a.request_id)
    elif scope.get("method") != "GET":
        await send_reply(send, 405, refusal_body("only GET is accepted"), a.request_id, [(b"allow", b"GET")])
    elif a.refusal is not None:
        await send_reply(send, a.refusal.status, refusal_body(a.refusal.reason), a.request_id)
    else:
        return False
    return True


def job_events_route(gate: Gate, identity: Identity, limits: RateLimits, jobs: Jobs) -> ASGIRouteHandler:
    """The route, opening a stream as a request: admitted, identified, charged to its caller's rate limit."""

    @asgi("/jobs", is_mount=True, copy_scope=True)
    async def job_events(scope: Scope, receive: Receive, send: Send) -> None:
        a = gate.admit(scope)
        job_id, _, tail = scope["path"].strip("/").partition("/")
        if await _misrouted(scope, send, a, job_id, tail):
            return
        principal, auth_error = await identity.identify(a)
        extra: Headers = []
        try:
            await limits.charge_stream(principal, a.peer or "", extra)  # a stream costs what a request costs
            if principal is None:
                raise auth_error or RpcError(AUTH_REQUIRED, "Authentication required")
            updates = jobs.watch(principal, job_id[:64])
            first = await anext(updates)
        except Exception as exc:
            await stream_refused(send, exc, a.request_id, extra)
            return
        await follow(send, receive, a.request_id, first, updates,
                     StreamGuard(partial(identity.identify, a), principal), closing=jobs.closing)

    return job_events
