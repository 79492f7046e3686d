"""`create_app(services)`: the Litestar application of the HTTP adapter, assembled from its routes: POST /
(rpc_route.py), GET /jobs/{job_id}/events (job_events_route.py), GET /health and GET /metrics
(operational_routes.py), GET and POST /stream/{stream_id} (streams.py)."""

from __future__ import annotations

from functools import partial
from typing import Awaitable, Callable, Sequence

from litestar import Litestar

from ..jsonrpc.access import require_permission
from ..jsonrpc.dispatcher import Dispatcher
from ..jsonrpc.job_methods import submit
from .admission import Gate
from .identity import Identity
from .job_events_route import job_events_route
from .limits import RateLimits
from .operational_routes import Probes, operational_routes
from .rpc_route import RpcEndpoint, rpc_route
from .services import HttpServices
from .streams import stream_route

Hook = Callable[[], Awaitable[None]]


def create_app(services: HttpServices, on_startup: Sequence[Hook] = (), on_shutdown: Sequence[Hook] = ()) -> Litestar:
    """The app serving `services`; `on_startup` and `on_shutdown` run when the server starts and stops (the
    composition root's: the job runner's among them). The registry is kept in `app.state["registry"]`."""
    s, opts = services, services.options
    gate = Gate(opts)
    identity = Identity(s.authenticate, opts.access)
    limits = RateLimits(s.limiter, s.metrics, opts.access)
    dispatcher = Dispatcher(s.registry, max_batch=opts.max_batch, metrics=s.metrics, policy=require_permission,
                            background=partial(submit, s.jobs))
    app = Litestar(
        route_handlers=[
            rpc_route(RpcEndpoint(gate, identity, limits, dispatcher, opts.max_body_bytes)),
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
