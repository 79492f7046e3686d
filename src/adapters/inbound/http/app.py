"""`create_app(container)`: the Litestar application. Routes: POST / (JSON-RPC), GET /health, GET /metrics."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import msgspec
from litestar import Litestar, Request, Response, get, post
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zfsapi import __version__
from zfsapi.adapters.metrics import Metrics
from zfsapi.application.catalog import UseCases
from zfsapi.domain.errors import ZfsApiError

from ..jsonrpc.dispatcher import Dispatcher
from ..jsonrpc.errors import AUTH_REQUIRED, INVALID_REQUEST, INVALID_TOKEN, RpcError
from ..jsonrpc.methods import register_core
from ..jsonrpc.openrpc import register_discover
from ..jsonrpc.registry import CallContext, Method, Registry
from .guard import check_passwordless, is_json_content_type, is_loopback_address

log = logging.getLogger("zfsapi.http")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """What the HTTP adapter needs from the configuration."""

    max_batch: int = 100
    max_body_bytes: int = 1 << 20
    passwordless_localhost: bool = True
    sessions_backend: str = "memory"


class AppContainer(Protocol):
    """The slice of the bootstrap container this adapter resolves (once, at app creation)."""

    def use_cases(self) -> UseCases: ...
    def metrics(self) -> Metrics: ...
    def http_options(self) -> HttpOptions: ...


async def _require_principal(method: Method[Any], params: Any, ctx: CallContext) -> None:
    if method.public or ctx.principal is not None:
        return
    if ctx.credentials_presented:
        raise RpcError(INVALID_TOKEN, "Invalid token")
    raise RpcError(AUTH_REQUIRED, "Authentication required")


def _refuse(status: int, reason: str, request_id: str) -> Response[bytes]:
    body = {"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": reason, "data": {"reason": reason}},
            "id": None}
    return Response(_ENCODER.encode(body), status_code=status, media_type="application/json",
                    headers={"X-Request-ID": request_id})


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def create_app(container: AppContainer) -> Litestar:
    """Build the app from the container's use cases, metrics and HTTP options."""
    uc = container.use_cases()
    metrics = container.metrics()
    opts = container.http_options()
    registry = Registry()
    register_core(registry, uc)
    register_discover(registry, title="zfsapi", version=__version__)
    dispatcher = Dispatcher(registry, max_batch=opts.max_batch, metrics=metrics, policy=_require_principal)

    def admit(request: Request) -> tuple[Response[bytes] | None, bool, str]:
        """(refusal or None, passwordless?, request id) for any route."""
        rid = _request_id(request)
        request_id_var.set(rid)
        peer = request.client.host if request.client else None
        if opts.passwordless_localhost and is_loopback_address(peer):
            refusal = check_passwordless(
                request.headers.get("host"), request.headers.get("origin"), request.headers.get("sec-fetch-site")
            )
            if refusal is not None:
                log.info("refused", extra={"peer": peer, "status": refusal.status, "reason": refusal.reason})
                return _refuse(refusal.status, refusal.reason, rid), False, rid
            return None, True, rid
        return None, False, rid

    @post("/", status_code=200)
    async def jsonrpc(request: Request) -> Response[bytes]:
        refusal, passwordless, rid = admit(request)
        if refusal is not None:
            return refusal
        if not is_json_content_type(request.headers.get("content-type")):
            return _refuse(415, "Content-Type must be application/json", rid)
        body = await request.body()
        ctx = CallContext(
            request_id=rid,
            peer=request.client.host if request.client else "",
            principal="localhost" if passwordless else None,
            passwordless=passwordless,
            credentials_presented="authorization" in request.headers,
        )
        answer = await dispatcher.handle(body, ctx)
        if answer is None:
            return Response(b"", status_code=204, headers={"X-Request-ID": rid})
        return Response(answer, status_code=200, media_type="application/json", headers={"X-Request-ID": rid})

    @get("/health")
    async def health(request: Request) -> Response[bytes]:
        refusal, _, rid = admit(request)
        if refusal is not None:
            return refusal
        now = datetime.now(timezone.utc).isoformat()
        try:
            pools, version = await uc.pool_overview.execute()
        except ZfsApiError as exc:
            body = {"status": "error", "failing": "zfs", "reason": exc.message, "timestamp": now}
            return Response(_ENCODER.encode(body), status_code=503, media_type="application/json")
        body = {
            "status": "ok",
            "zfs": {"version": version},
            "pools": [{"name": p.name, "health": p.health} for p in pools],
            "sessions": opts.sessions_backend,
            "timestamp": now,
        }
        return Response(_ENCODER.encode(body), status_code=200, media_type="application/json")

    @get("/metrics")
    async def metrics_route(request: Request) -> Response[bytes]:
        refusal, _, _ = admit(request)
        if refusal is not None:
            return refusal
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
        return Response(generate_latest(metrics.registry), status_code=200, media_type=CONTENT_TYPE_LATEST)

    app = Litestar(
        route_handlers=[jsonrpc, health, metrics_route],
        request_max_body_size=opts.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    app.state["registry"] = registry
    return app
