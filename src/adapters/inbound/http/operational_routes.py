"""GET /health (is zfs usable, does the job store answer: 200 or 503) and GET /metrics (Prometheus text), as
Litestar handlers behind the same guard as every route."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.jobs import Jobs
from zfsapi.application.pools import PoolOverview
from zfsapi.domain.errors import ZfsApiError
from zfsapi.domain.models import Pool

from .admission import Gate
from .replies import ENCODER, refuse

log = logging.getLogger("zfsapi.http")
STORE_CHECK_SECONDS = 5.0  # /health's read of the job store: a store that does not answer by then is down
# Litestar appends "; charset=utf-8" to text types: it is handed the type without one, so it appears once
# (Prometheus 3 refuses to scrape a Content-Type with the parameter twice)
_METRICS_TYPE = "; ".join(p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset="))


class Probes:
    """What /health and /metrics read: the pools (through zfs) and the job store."""

    def __init__(self, pools: PoolOverview, jobs: Jobs, metrics: Metrics, jobs_backend: str) -> None:
        self.pools, self.jobs, self.metrics, self.jobs_backend = pools, jobs, metrics, jobs_backend

    async def store_problem(self) -> str | None:
        """Why the job store cannot be used right now (None: it answered), its gauge set either way."""
        try:
            await asyncio.wait_for(self.jobs.check_store(), STORE_CHECK_SECONDS)
            problem = None
        except TimeoutError:
            problem = f"no answer within {STORE_CHECK_SECONDS:g} s"
        except Exception as exc:  # ServiceUnavailable, or anything else the store raised: it is not usable
            problem = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.metrics.store_up.labels("jobs", self.jobs_backend).set(0 if problem else 1)
        return problem

    async def zfs_overview(self) -> tuple[tuple[list[Pool], str], str | None]:
        """((pools, version), None), or (([], ""), why zfs cannot be used)."""
        try:
            return await self.pools.execute(), None
        except ZfsApiError as exc:
            return ([], ""), exc.message


async def health_body(probes: Probes, sessions_backend: str, simulated: bool = False) -> tuple[int, dict[str, Any]]:
    """/health's status and body: 503 naming the first failing part and every failure with its reason; a
    simulated ZFS (`serve --simulate`) says so in either."""
    status, body = await _health(probes, sessions_backend)
    return status, {**body, "simulated": True} if simulated else body


async def _health(probes: Probes, sessions_backend: str) -> tuple[int, dict[str, Any]]:
    now = datetime.now(timezone.utc).isoformat()
    ((pools, version), zfs), store = await asyncio.gather(probes.zfs_overview(), probes.store_problem())
    job_store = {"backend": probes.jobs_backend, "status": "ok" if store is None else "error",
                 **({"reason": store} if store else {})}
    failures = {part: why for part, why in (("zfs", zfs), ("job_store", store)) if why is not None}
    if failures:
        part, reason = next(iter(failures.items()))
        return 503, {"status": "error", "failing": part, "reason": reason, "failures": failures,
                     "job_store": job_store, "sessions": sessions_backend, "timestamp": now}
    return 200, {
        "status": "ok",
        "zfs": {"version": version},
        "pools": [{"name": p.name, "health": p.health} for p in pools],
        "sessions": sessions_backend,
        "job_store": job_store,
        "timestamp": now,
    }


async def observe(probes: Probes) -> bytes:
    """The Prometheus text, with the pool gauges and (when the job store answers) the job gauges read now."""
    metrics = probes.metrics
    try:
        pools, _ = await probes.pools.execute()
    except ZfsApiError:
        pools = []
    metrics.pool_health.clear()
    for p in pools:
        metrics.pool_size.labels(p.name).set(p.size)
        metrics.pool_allocated.labels(p.name).set(p.allocated)
        metrics.pool_free.labels(p.name).set(p.free)
        metrics.pool_health.labels(p.name, p.health).set(1)
    if (problem := await probes.store_problem()) is None:
        try:
            await metrics.observe_jobs(probes.jobs)
        except Exception as exc:  # the job store went out of reach: the job gauges are left out, the rest answers
            problem = str(exc) or type(exc).__name__
    if problem is not None:
        log.warning("job gauges not read", extra={"reason": problem})
    return generate_latest(metrics.registry)


def operational_routes(gate: Gate, probes: Probes, sessions_backend: str, *,
                       simulated: bool = False) -> list[HTTPRouteHandler]:
    """GET /health and GET /metrics."""

    @get("/health")
    async def health(request: Request[Any, Any, Any]) -> Response[bytes]:
        a = gate.admit(request.scope)
        if a.refusal is not None:
            return refuse(a.refusal, a.request_id)
        status, body = await health_body(probes, sessions_backend, simulated)
        return Response(ENCODER.encode(body), status_code=status, media_type="application/json")

    @get("/metrics")
    async def metrics_route(request: Request[Any, Any, Any]) -> Response[bytes]:
        a = gate.admit(request.scope)
        if a.refusal is not None:
            return refuse(a.refusal, a.request_id)
        return Response(await observe(probes), status_code=200, media_type=_METRICS_TYPE)

    return [health, metrics_route]
