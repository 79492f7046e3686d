"""`create_app(container)`: the Litestar application. Routes: POST / (JSON-RPC), GET /health, GET /metrics."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Awaitable, Callable, Protocol, Sequence

import msgspec
from litestar import Litestar, Request, Response, asgi, get
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.auth import AuthUseCases
from zfsapi.application.catalog import UseCases
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.application.ports import RateLimiter
from zfsapi.application.transfers import StreamService
from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidToken, RateLimited, ServiceUnavailable, ZfsApiError
from zfsapi.domain.ratelimit import Decision, Quota

from ..jsonrpc.access import require_permission
from ..jsonrpc.dispatcher import Dispatcher
from ..jsonrpc.errors import AUTH_REQUIRED, INVALID_REQUEST, RATE_LIMITED, RpcError, outcome_of, to_rpc_error
from ..jsonrpc.job_methods import submit
from ..jsonrpc.registry import CallContext, Registry
from .events import StreamGuard, follow
from .streams import stream_route
from .guard import Refusal, check_passwordless, is_json_content_type, is_loopback_address
from .live import Access, Live
from .peer import Peer, scope_peer

log = logging.getLogger("zfsapi.http")
access_log = logging.getLogger("zfsapi.access")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ENCODER = msgspec.json.Encoder()
STORE_CHECK_SECONDS = 5.0  # /health's read of the job store: a store that does not answer by then is down
_METRICS_TYPE = "; ".join(p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset="))


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """What the HTTP adapter needs from the configuration."""

    max_batch: int = 100
    max_body_bytes: int = 1 << 20
    passwordless_localhost: bool = True
    local_peer: Callable[[Scope], Peer | None] = scope_peer  # who is calling on this connection
    sessions_backend: str = "memory"
    jobs_backend: str = "embedded"  # the job store: embedded (a file under state_dir) or redis
    access: Live[Access] = field(default_factory=lambda: Live(Access()))  # local users and limits (reloadable)


class Closable(Protocol):
    async def aclose(self) -> None: ...


class AppContainer(Protocol):
    """The slice of the bootstrap container this adapter resolves (once, at app creation)."""

    def use_cases(self) -> UseCases: ...
    def registry(self) -> Registry: ...
    def jobs(self) -> Jobs: ...
    def job_runner(self) -> JobRunner: ...
    def replicas(self) -> Closable: ...
    def auth(self) -> AuthUseCases: ...
    def rate_limiter(self) -> RateLimiter: ...
    def metrics(self) -> Metrics: ...
    def http_options(self) -> HttpOptions: ...


def _bearer(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else None


def _policy_header(quota: Quota) -> tuple[bytes, bytes]:
    """IETF draft-ietf-httpapi-ratelimit-headers: the policy, quota q per window w (fixed for the app)."""
    return b"ratelimit-policy", f'"default";q={quota.limit};w={math.ceil(quota.period)}'.encode()


def _rate_headers(policy: tuple[bytes, bytes], d: Decision) -> list[tuple[bytes, bytes]]:
    """The policy and what is left of it right now."""
    return [policy, (b"ratelimit", f'"default";r={d.remaining};t={math.ceil(d.reset)}'.encode())]


def _refusal_body(reason: str) -> bytes:
    body = {"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": reason, "data": {"reason": reason}},
            "id": None}
    return _ENCODER.encode(body)


def _limit_key(principal: Principal | None, passwordless: bool, peer: str) -> str:
    """Whose rate limit a request (or an event stream) counts in: a token's user, a local user by its uid-mapped
    name (its own quota), else the peer address."""
    if principal is not None:
        return ("l:" if passwordless else "u:") + principal.name
    return "a:" + peer


async def _stream_refused(send: Send, exc: BaseException, request_id: str,
                          extra: list[tuple[bytes, bytes]]) -> None:
    """An event stream refused before it started: the JSON-RPC error with its HTTP status."""
    error = to_rpc_error(exc, "job_events")
    status = {-32010: 404, -32001: 401, -32002: 401, RATE_LIMITED: 429}.get(
        error.code, 503 if isinstance(exc, ServiceUnavailable) else 400)  # 503: the job store does not answer
    body = {"jsonrpc": "2.0", "error": {"code": error.code, "message": error.message, "data": error.data or {}},
            "id": None}
    await _send(send, status, _ENCODER.encode(body), request_id, extra if status == 429 else None)


def _refuse(refusal: Refusal, request_id: str) -> Response[bytes]:
    return Response(_refusal_body(refusal.reason), status_code=refusal.status, media_type="application/json",
                    headers={"X-Request-ID": request_id})


async def _send(send: Send, status: int, body: bytes, request_id: str,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"x-request-id", request_id.encode())]
    if status != 204:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status,
                                     "headers": headers + (extra or [])}
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body if status != 204 else b"",
                                  "more_body": False}
    await send(start)
    await send(end)


async def _read_body(receive: Receive, announced: str | None, limit: int) -> bytes | None:
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


_WANTED = {b"host", b"origin", b"sec-fetch-site", b"content-type", b"content-length", b"x-request-id",
           b"authorization", b"content-encoding"}


def _headers(scope: Scope) -> dict[str, str]:
    """The few headers this adapter reads, from the raw ASGI scope in one pass (first occurrence wins)."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        key = key.lower()
        if key in _WANTED and key.decode() not in out:
            out[key.decode()] = value.decode("latin-1")
    return out


def _request_id(headers: dict[str, str]) -> str:
    given = headers.get("x-request-id")
    return given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


def _via(principal: Principal | None, local: Peer | None) -> str:
    """How the caller was authenticated, for the audit trail."""
    if principal is None:
        return "none"
    if principal.token_id is not None:
        return "token"
    return f"{local.transport} uid {local.uid}" if local is not None else "local"


def _access_line(a: Admission, ctx: CallContext | None, status: int, started: float) -> None:
    """One line per POST /: the method(s), the outcome and error code (of the first call that failed), the HTTP
    status, the duration and who called (the request id comes with every line)."""
    calls = ctx.calls if ctx is not None else []
    code = next((c for _, c in calls if c is not None), RATE_LIMITED if status == 429 else None)
    principal = ctx.principal if ctx is not None else None
    access_log.info("rpc", extra={
        "method": calls[0][0] if len(calls) == 1 else [m for m, _ in calls],
        "outcome": outcome_of(code) if calls or code is not None else "refused",
        "code": code,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "principal": principal.name if principal is not None else None,
        "peer": a.peer,
        "request_id": a.request_id,
    })


@dataclass(frozen=True, slots=True)
class Admission:
    """What the guard decided for one request, and what it read to decide."""

    refusal: Refusal | None
    local: Peer | None  # a caller on this machine (loopback TCP or the Unix socket) that may go without a token
    request_id: str
    headers: dict[str, str]
    peer: str | None


Hook = Callable[[], Awaitable[None]]


def create_app(container: AppContainer, on_startup: Sequence[Hook] = (), on_shutdown: Sequence[Hook] = ()) -> Litestar:
    """Build the app from the container's use cases, metrics and HTTP options; the server's own hooks run after
    the job runner has started and before it stops."""
    uc = container.use_cases()
    auth = container.auth()
    limiter = container.rate_limiter()
    metrics = container.metrics()
    opts = container.http_options()
    registry = container.registry()
    jobs, runner = container.jobs(), container.job_runner()
    dispatcher = Dispatcher(registry, max_batch=opts.max_batch, metrics=metrics, policy=require_permission,
                            background=partial(submit, jobs))

    async def identify(a: Admission) -> tuple[Principal | None, BaseException | None]:
        """Who is calling: the bearer token's user when one is presented (even from loopback), else the local
        user mapped to the caller's uid (auth.local_users) when the guard allowed passwordless access, else
        nobody."""
        header = a.headers.get("authorization")
        if header is None:
            if a.local is None:
                return None, None
            principal = opts.access.current.local_users.get(a.local.uid) if a.local.uid is not None else None
            if principal is None:
                who = "an unknown local user" if a.local.uid is None else f"local uid {a.local.uid}"
                log.info("refused", extra={"peer": a.peer, "reason": f"{who} is not in auth.local_users"})
                return None, RpcError(AUTH_REQUIRED, "Authentication required",
                                      {"reason": f"{who} may not call without a token (auth.local_users)"})
            return principal, None
        token = _bearer(header)
        if token is None:
            return None, InvalidToken("not a Bearer token")
        try:
            return await auth.authenticate.execute(token=token), None
        except (InvalidToken, ServiceUnavailable) as exc:
            log.info("token refused", extra={"peer": a.peer, "reason": getattr(exc, "reason", "")})
            return None, exc

    def admit(scope: Scope) -> Admission:
        """The guard's decision for any route, with the request id set for logging."""
        headers = _headers(scope)
        rid = _request_id(headers)
        request_id_var.set(rid)
        client = scope.get("client")
        if client is None and opts.passwordless_localhost:  # the Unix socket: no browser reaches it
            return Admission(None, opts.local_peer(scope), rid, headers, "unix")
        peer = client[0] if client else None
        if opts.passwordless_localhost and is_loopback_address(peer):
            refusal = check_passwordless(headers.get("host"), headers.get("origin"), headers.get("sec-fetch-site"))
            if refusal is not None:
                log.info("refused", extra={"peer": peer, "status": refusal.status, "reason": refusal.reason})
                return Admission(refusal, None, rid, headers, peer)
            return Admission(None, opts.local_peer(scope), rid, headers, peer)
        return Admission(None, None, rid, headers, peer)

    # POST / is the hot path: a raw ASGI route (no Request/Response objects per call), body read with a cap.
    @asgi("/", is_mount=False, copy_scope=False)
    async def jsonrpc(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        a = admit(scope)
        status = 0

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        ctx = None
        try:
            ctx = await answer(scope, receive, noting, a)
        finally:
            _access_line(a, ctx, status, started)

    async def answer(scope: Scope, receive: Receive, send: Send, a: Admission) -> CallContext | None:
        """Answer one POST /; the call context once the request got as far as the dispatcher."""
        rid = a.request_id
        if scope.get("method") != "POST":
            await _send(send, 405, _refusal_body("only POST is accepted"), rid, [(b"allow", b"POST")])
            return None
        if a.refusal is not None:
            await _send(send, a.refusal.status, _refusal_body(a.refusal.reason), rid)
            return None
        if not is_json_content_type(a.headers.get("content-type")):
            await _send(send, 415, _refusal_body("Content-Type must be application/json"), rid)
            return None
        body = await _read_body(receive, a.headers.get("content-length"), opts.max_body_bytes)
        if body is None:
            await _send(send, 413, _refusal_body(f"request body over {opts.max_body_bytes} bytes"), rid)
            return None
        principal, auth_error = await identify(a)
        ctx = CallContext(
            request_id=rid,
            peer=a.peer or "",
            principal=principal,
            passwordless=principal is not None and principal.token_id is None,
            via=_via(principal, a.local),
            credentials_presented="authorization" in a.headers,
            auth_error=auth_error,
        )
        decision: Decision | None = None
        access = opts.access.current
        quota = access.local_limit if ctx.passwordless else access.rate_limit  # local users: their own (or none)
        policy = _policy_header(quota) if quota else None

        async def charge(cost: int) -> None:
            nonlocal decision
            if quota is None:
                return
            decision = await limiter.hit(_limit_key(principal, ctx.passwordless, ctx.peer), quota, cost)
            if not decision.allowed:
                raise RateLimited(decision.retry_after)

        try:
            reply = await dispatcher.handle(body, ctx, charge)
        except RateLimited as exc:
            metrics.rate_limited.labels("requests").inc()
            extra = _rate_headers(policy, decision) if policy and decision else []
            if not math.isinf(exc.retry_after):
                extra.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
            await _send(send, 429, dispatcher.refusal_body(body, exc), rid, extra)
            return ctx
        await _send(send, 204 if reply is None else 200, reply or b"", rid,
                    _rate_headers(policy, decision) if policy and decision else None)
        return ctx

    # GET /jobs/{job_id}/events: Server-Sent Events of the job's record, now and on every change, until it ends.
    # (mounted: Litestar keys path params of raw ASGI routes by HTTP method, which they do not have)
    @asgi("/jobs", is_mount=True, copy_scope=True)
    async def job_events(scope: Scope, receive: Receive, send: Send) -> None:
        a = admit(scope)
        job_id, _, tail = scope["path"].strip("/").partition("/")
        if tail != "events" or not job_id:
            await _send(send, 404, _refusal_body("no such route: GET /jobs/{job_id}/events"), a.request_id)
            return
        if scope.get("method") != "GET":
            await _send(send, 405, _refusal_body("only GET is accepted"), a.request_id, [(b"allow", b"GET")])
            return
        if a.refusal is not None:
            await _send(send, a.refusal.status, _refusal_body(a.refusal.reason), a.request_id)
            return
        principal, auth_error = await identify(a)
        extra: list[tuple[bytes, bytes]] = []
        try:
            await charge_stream(a, principal, extra)  # opening a stream costs what a request costs
            if principal is None:
                raise auth_error or RpcError(AUTH_REQUIRED, "Authentication required")
            updates = jobs.watch(principal, job_id[:64])
            first = await anext(updates)
        except Exception as exc:
            await _stream_refused(send, exc, a.request_id, extra)
            return
        await follow(send, receive, a.request_id, first, updates, StreamGuard(partial(identify, a), principal),
                     closing=jobs.closing)

    async def charge_stream(a: Admission, principal: Principal | None, extra: list[tuple[bytes, bytes]]) -> None:
        """Count an event stream in its caller's rate limit, as POST / counts a request (raise RateLimited, with
        the headers of a 429 added to `extra`)."""
        passwordless = principal is not None and principal.token_id is None
        access = opts.access.current
        quota = access.local_limit if passwordless else access.rate_limit
        if quota is None:
            return
        decision = await limiter.hit(_limit_key(principal, passwordless, a.peer or ""), quota, 1)
        if not decision.allowed:
            metrics.rate_limited.labels("requests").inc()
            extra.extend(_rate_headers(_policy_header(quota), decision))
            if not math.isinf(decision.retry_after):
                extra.append((b"retry-after", str(max(1, math.ceil(decision.retry_after))).encode()))
            raise RateLimited(decision.retry_after)

    async def store_problem() -> str | None:
        """Why the job store cannot be used right now (None: it answered), its gauge set either way."""
        try:
            await asyncio.wait_for(jobs.check_store(), STORE_CHECK_SECONDS)
            problem = None
        except TimeoutError:
            problem = f"no answer within {STORE_CHECK_SECONDS:g} s"
        except Exception as exc:  # ServiceUnavailable, or anything else the store raised: it is not usable
            problem = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        metrics.store_up.labels("jobs", opts.jobs_backend).set(0 if problem else 1)
        return problem

    async def zfs_overview() -> tuple[tuple[list[Any], str], str | None]:
        """((pools, version), None), or (([], ""), why zfs cannot be used)."""
        try:
            return await uc.pool_overview.execute(), None
        except ZfsApiError as exc:
            return ([], ""), exc.message

    @get("/health")
    async def health(request: Request[Any, Any, Any]) -> Response[bytes]:
        a = admit(request.scope)
        if a.refusal is not None:
            return _refuse(a.refusal, a.request_id)
        now = datetime.now(timezone.utc).isoformat()
        ((pools, version), zfs), store = await asyncio.gather(zfs_overview(), store_problem())
        job_store = {"backend": opts.jobs_backend, "status": "ok" if store is None else "error",
                     **({"reason": store} if store else {})}
        failures = {part: why for part, why in (("zfs", zfs), ("job_store", store)) if why is not None}
        if failures:  # the first failing part, as before, and every one with its reason
            part, reason = next(iter(failures.items()))
            failing = {"status": "error", "failing": part, "reason": reason, "failures": failures,
                       "job_store": job_store, "sessions": opts.sessions_backend, "timestamp": now}
            return Response(_ENCODER.encode(failing), status_code=503, media_type="application/json")
        body = {
            "status": "ok",
            "zfs": {"version": version},
            "pools": [{"name": p.name, "health": p.health} for p in pools],
            "sessions": opts.sessions_backend,
            "job_store": job_store,
            "timestamp": now,
        }
        return Response(_ENCODER.encode(body), status_code=200, media_type="application/json")

    @get("/metrics")
    async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
        a = admit(request.scope)
        if a.refusal is not None:
            return _refuse(a.refusal, a.request_id)
        try:
            pools, _ = await uc.pool_overview.execute()
        except ZfsApiError:
            pools = []
        metrics.pool_health.clear()
        for p in pools:
            metrics.pool_size.labels(p.name).set(p.size)
            metrics.pool_allocated.labels(p.name).set(p.allocated)
            metrics.pool_free.labels(p.name).set(p.free)
            metrics.pool_health.labels(p.name, p.health).set(1)
        if (problem := await store_problem()) is None:
            try:
                await metrics.observe_jobs(jobs)
            except Exception as exc:  # the job store went out of reach: the job gauges are left out, the rest answers
                problem = str(exc) or type(exc).__name__
        if problem is not None:
            log.warning("job gauges not read", extra={"reason": problem})
        # Litestar appends "; charset=utf-8" to text types: hand it the type without one, so it appears once
        # (Prometheus 3 refuses to scrape a Content-Type with the parameter twice)
        return Response(generate_latest(metrics.registry), status_code=200, media_type=_METRICS_TYPE)

    app = Litestar(
        route_handlers=[jsonrpc, job_events, health, metrics_route, stream_route(uc[StreamService], metrics, admit)],
        on_startup=[runner.start, *on_startup],
        on_shutdown=[*on_shutdown, runner.stop, container.replicas().aclose],
        request_max_body_size=opts.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    app.state["registry"] = registry
    return app
