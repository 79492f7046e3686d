"""GET /jobs/{job_id}/events after its admission: the Server-Sent Events of the job's record, and the guard that
ends the stream once its caller may no longer follow it (token revoked or expired, user or local user removed,
the job outside its scope now), with a last `error` event saying why."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncGenerator, Awaitable, Callable

import msgspec
from litestar.types import Receive, Send

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidToken, ServiceUnavailable
from zfsapi.domain.jobs import Job

from ..jsonrpc.errors import AUTH_REQUIRED, INVALID_TOKEN, PERMISSION_DENIED, RpcError, to_rpc_error
from ..jsonrpc.job_methods import record

RECHECK = 2.0  # seconds at most between two checks that the caller may still follow (besides one at each event)
_ENCODER = msgspec.json.Encoder()

# Who the stream's request stands for now: the same identification as at its start (token or local user).
Identify = Callable[[], Awaitable[tuple[Principal | None, BaseException | None]]]


class StreamGuard:
    """Whether the caller of an event stream may still follow the job: asked at each event, at least every
    RECHECK seconds and at the token's expiry. It identifies the request again, exactly as at its start (the
    token decoded and looked up in the revocations, the user in the current configuration)."""

    def __init__(self, identify: Identify, principal: Principal, *, recheck: float = RECHECK,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._identify, self._principal = identify, principal
        self._recheck, self._clock, self._wall = recheck, clock, wall
        self._checked = clock()

    def due_in(self) -> float:
        """Seconds until the next check is due (0: now)."""
        due = self._recheck - (self._clock() - self._checked)
        if self._principal.token_expires is not None:
            due = min(due, self._principal.token_expires - self._wall())
        return max(0.0, due)

    async def refusal(self, job: Job) -> RpcError | None:
        """None while the caller may follow `job`; else the error the stream ends with."""
        self._checked = self._clock()
        expires = self._principal.token_expires
        if expires is not None and self._wall() >= expires:
            return RpcError(INVALID_TOKEN, "Invalid token", {"reason": "token expired"})
        principal, error = await self._identify()
        if principal is None:
            if isinstance(error, InvalidToken):
                # logout, logout of all sessions, the user removed: each revokes the token (details in the log)
                return RpcError(INVALID_TOKEN, "Invalid token", {"reason": "token revoked"})
            return to_rpc_error(error or RpcError(AUTH_REQUIRED, "Authentication required"), "job_events")
        if not job.visible_to(principal):
            return RpcError(PERMISSION_DENIED, "Permission denied: job_events",
                            {"method": "job_events", "dataset": None,
                             "reason": "scope narrowed: the job is outside the caller's scope now"})
        return None


async def _event(send: Send, name: bytes, data: bytes) -> None:
    await send({"type": "http.response.body", "body": b"event: " + name + b"\ndata: " + data + b"\n\n",
                "more_body": True})


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":  # the request's own (empty) body comes first
        pass


async def _progress(send: Send, job: Job, closed: dict[str, str] | None = None) -> None:
    """The record as a `progress` event, or `end` once the job is finished or the stream is closed early (then
    `closed` says why: the record is the last one known, not the job's end)."""
    data = record(job) if closed is None else {**msgspec.to_builtins(record(job)), "closed": closed}
    await _event(send, b"end" if job.state.finished or closed else b"progress", _ENCODER.encode(data))


def _closed_because(failed: BaseException | None) -> dict[str, str]:
    """Why an event stream ends before its job: the job store failed (`failed`), or shutdown (None)."""
    if failed is None:
        return {"reason": "shutdown", "message": "the server is shutting down; follow the job again"}
    return {"reason": "store_unavailable", "message": f"{failed}; follow the job again later"}


async def follow(send: Send, receive: Receive, request_id: str, first: Job, updates: AsyncGenerator[Job, None],
                 guard: StreamGuard, *, closing: asyncio.Event | None = None) -> None:
    """The response: the record now, then on every change until the job ends (`end`), the client goes away, the
    record is gone, or the guard refuses (a last `error` event: a JSON-RPC error object saying why). When the
    server shuts down (`closing` set) or the job store stops answering, a last `end` event carries the record
    known with `closed: {reason, message}`."""
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
        (b"x-request-id", request_id.encode())]})
    gone = asyncio.ensure_future(_disconnect(receive))  # the client went away: stop following
    shutdown = asyncio.ensure_future((closing or asyncio.Event()).wait())  # the server is shutting down
    following: asyncio.Future[Job] | None = None
    job = first
    try:
        await _progress(send, job)
        while not job.state.finished:
            following = following or asyncio.ensure_future(anext(updates))
            waiting: set[asyncio.Future[Any]] = {following, gone, shutdown}
            await asyncio.wait(waiting, timeout=guard.due_in(), return_when=asyncio.FIRST_COMPLETED)
            failed = following.exception() if following.done() else None
            if shutdown.done() or isinstance(failed, ServiceUnavailable):
                await _progress(send, job, _closed_because(None if shutdown.done() else failed))
                break
            if gone.done() or failed is not None:
                break  # the client went away, or the job is gone (its record purged)
            fresh = following.done()
            if fresh:
                job, following = following.result(), None
            if fresh or guard.due_in() <= 0:
                refusal = await guard.refusal(job)
                if refusal is not None:
                    await _event(send, b"error", _ENCODER.encode(
                        {"code": refusal.code, "message": refusal.message, "data": refusal.data or {}}))
                    break
            if fresh:
                await _progress(send, job)
    finally:
        tasks = [task for task in (gone, shutdown, following) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # `updates` is not running when it is closed
        await updates.aclose()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
