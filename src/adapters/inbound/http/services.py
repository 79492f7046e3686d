"""What the HTTP adapter is given by the composition root: its options from the configuration (`HttpOptions`)
and the services its routes call (`HttpServices`). `create_app` builds the app from these alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from litestar.types import Scope

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.auth import Authenticate
from zfsapi.application.jobs import Jobs
from zfsapi.application.pools import PoolOverview
from zfsapi.application.ports import RateLimiter
from zfsapi.application.transfers import StreamService

from ..jsonrpc.registry import Registry
from .live import Access, Live
from .peer import Peer, scope_peer


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
    simulated: bool = False  # serving a simulated ZFS (`serve --simulate`): /health says so


@dataclass(frozen=True, slots=True)
class HttpServices:
    """The services behind the routes, each built once by the composition root."""

    registry: Registry  # every JSON-RPC method (POST /)
    authenticate: Authenticate  # a bearer token's user
    limiter: RateLimiter  # the rate limits of requests and event streams
    metrics: Metrics
    jobs: Jobs  # background calls, event streams, the job store's health
    streams: StreamService  # GET and POST /stream/{id}
    pools: PoolOverview  # the pools /health and /metrics report
    options: HttpOptions
