"""The old server's request path, rebuilt for bench_request: what its README describes ("aiohttp + jsonrpcserver",
JWT with passwordless localhost, configurable rate limiting, Prometheus metrics, structured logging, native
asyncio subprocesses), written the way those libraries' documentation shows. It is a yardstick, not a product: two
methods (pool_list, dataset_list) over the same `zpool`/`zfs` argv zfsapi runs, everything else -32601.

    python -m bench.legacy_server --port 8546 [--zfs PATH] [--zpool PATH]

Needs the `bench` extra (aiohttp, jsonrpcserver 5: `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import sys
import time

import jwt
from aiohttp import web
from jsonrpcserver import Error, Success, async_dispatch, method
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

LOCAL = {"127.0.0.1", "::1"}
SECRET = "change-me"  # the old config.yaml's jwt secret; remote callers only
RATE_REQUESTS, RATE_WINDOW = 10**9, 60.0  # configurable; the bench never reaches it

REQUESTS = Counter("zfs_api_requests_total", "JSON-RPC requests", ["method", "status"])
DURATION = Histogram("zfs_api_request_duration_seconds", "JSON-RPC request duration", ["method"])
log = logging.getLogger("zfs_api")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                           "message": record.getMessage(), **getattr(record, "fields", {})})


class AsyncZFS:
    """Native async subprocess execution (the old README's "Async Executor")."""

    def __init__(self, zfs: str, zpool: str) -> None:
        self.zfs, self.zpool = zfs, zpool

    async def run(self, *argv: str) -> str:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(err.decode().strip())
        return out.decode()


ZFS = AsyncZFS("zfs", "zpool")


@method
async def pool_list(context):  # type: ignore[no-untyped-def]
    try:
        out = await ZFS.run(ZFS.zpool, "list", "-H", "-p", "-o", "name,size,allocated,free,health")
    except RuntimeError as exc:
        return Error(-32000, str(exc))
    keys = ("name", "size", "allocated", "free", "health")
    return Success({"pools": [dict(zip(keys, line.split("\t"))) for line in out.splitlines()]})


@method
async def dataset_list(context, dataset=None):  # type: ignore[no-untyped-def]
    argv = [ZFS.zfs, "list", "-H", "-p", "-o", "name", "-t", "filesystem,volume"]
    if dataset:
        argv += ["-r", dataset]
    try:
        out = await ZFS.run(*argv)
    except RuntimeError as exc:
        return Error(-32000, str(exc))
    return Success({"datasets": out.splitlines()})


@web.middleware
async def rate_limit_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    hits = request.app["hits"][request.remote]
    now = time.monotonic()
    while hits and hits[0] <= now - RATE_WINDOW:
        hits.popleft()
    if len(hits) >= RATE_REQUESTS:
        return web.json_response({"error": "rate limit exceeded"}, status=429)
    hits.append(now)
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if request.remote in LOCAL:
        request["user"] = "localhost"
    else:
        header = request.headers.get("Authorization", "")
        try:
            request["user"] = jwt.decode(header.removeprefix("Bearer "), SECRET, algorithms=["HS256"])["sub"]
        except jwt.PyJWTError:
            return web.json_response({"error": "unauthorized"}, status=401)
    return await handler(request)


async def handle_rpc(request: web.Request) -> web.Response:
    started = time.perf_counter()
    text = await request.text()
    try:
        name = json.loads(text).get("method", "unknown")
    except (ValueError, AttributeError):
        name = "invalid"
    response = await async_dispatch(text, context=request)
    status = "error" if '"error"' in response else "success"
    REQUESTS.labels(name, status).inc()
    DURATION.labels(name).observe(time.perf_counter() - started)
    log.info("rpc", extra={"fields": {"method": name, "status": status, "user": request.get("user"),
                                      "remote": request.remote,
                                      "duration_ms": round((time.perf_counter() - started) * 1000, 3)}})
    return web.Response(text=response, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "healthy"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app() -> web.Application:
    app = web.Application(middlewares=[rate_limit_middleware, auth_middleware])
    app["hits"] = collections.defaultdict(collections.deque)
    app.router.add_post("/", handle_rpc)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8546)
    parser.add_argument("--zfs", default="zfs")
    parser.add_argument("--zpool", default="zpool")
    args = parser.parse_args()
    ZFS.zfs, ZFS.zpool = args.zfs, args.zpool
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the rpc line above is its access log
    web.run_app(make_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
