"""`create_app(services)`: the Litestar application of the HTTP adapter, assembled from its routes: POST /
(rpc_route.py, answered ahead of Litestar's middleware and router: the hot path), GET /jobs/{job_id}/events
(job_events_route.py), GET /health and GET /metrics (operational_routes.py), GET and POST /stream/{stream_id}
(streams.py)."""

from __future__ import annotations

from functools import partial
from typing import Any, Awaitable, Callable, Sequence

from litestar import Litestar

from ..jsonrpc.access import require_permission
from ..jsonrpc.dispatcher import Dispatcher
from ..jsonrpc.job_methods import submit
from .admission import Gate
from .identity import Identity
from .job_events_route import job_events_route
from .limits import RateLimits
from .operational_routes import Probes, operational_routes
from .rpc_route import RpcEndpoint
from .services import HttpServices
from .streams import stream_route

Hook = Callable[[], Awaitable[None]]


class App(Litestar):
    """Litestar, with every request for `/` handed to the JSON-RPC endpoint before Litestar's exception middleware,
    router and scope state: a fifth of a cheap call's cost. The endpoint answers every method (405 but for POST)
    and catches what a call raises itself; the other routes are Litestar's."""

    def __init__(self, rpc: RpcEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rpc = rpc

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/":
            await self._rpc.serve(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(services: HttpServices, on_startup: Sequence[Hook] = (), on_shutdown: Sequence[Hook] = ()) -> Litestar:
    """The app serving `services`; `on_startup` and `on_shutdown` run when the server starts and stops (the
    composition root's: the job runner's among them). The registry is kept in `app.state["registry"]`."""
    s, opts = services, services.options
    gate = Gate(opts)
    identity = Identity(s.authenticate, opts.access)
    limits = RateLimits(s.limiter, s.metrics, opts.access)
    dispatcher = Dispatcher(s.registry, max_batch=opts.max_batch, metrics=s.metrics, policy=require_permission,
                            background=partial(submit, s.jobs))
    app = App(
        RpcEndpoint(gate, identity, limits, dispatcher, opts.max_body_bytes),
        route_handlers=[
            job_events_route(gate, identity, limits, s.jobs),
            *operational_routes(gate, Probes(s.pools, s.jobs, s.metrics, opts.jobs_backend), opts.sessions_backend,
                               simulated=opts.simulated),
            stream_route(s.streams, s.metrics, gate.admit),
        ],
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        request_max_body_size=opts.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    app.state["registry"] = s.registry
    return app
