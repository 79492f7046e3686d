"""Helpers: drive an ASGI app directly (no sockets, no client overhead) and time it side by side."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dependency_injector import providers

from zfsapi.adapters.inbound.http.peer import Peer
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app


def bench_app(**overrides: Any) -> Any:
    """The app as served, its caller root (the ASGI driver below has no socket for the peer lookup) and the rate
    limit on with a quota a benchmark never reaches (its check is part of the path)."""
    container = build_container(load_settings(environ={}, overrides={
        "rate_limit": {"requests": 10**9, "window": 1}, **overrides}))
    container.local_peer.override(providers.Object(lambda scope: Peer(0, "tcp")))
    return http_app(container)


async def asgi_post(app: Any, body: bytes, path: str = "/") -> tuple[int, bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8545"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8545), "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def rate(fn, count: int) -> float:
    """Calls per second of `await fn()` run `count` times sequentially."""
    started = time.perf_counter()
    for _ in range(count):
        await fn()
    return count / (time.perf_counter() - started)


class LoopLag:
    """Samples event-loop lag: a ticker that should wake every `interval` seconds records its overshoot."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.interval)
            self.samples.append(loop.time() - t - self.interval)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def p(self, q: float) -> float:
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


async def steady(fn, inflight: int, seconds: float, warmup: float) -> tuple[float, LoopLag]:
    """`inflight` workers call `fn` back to back for warmup + seconds; (calls/s, loop lag) after the warm-up."""
    loop = asyncio.get_running_loop()
    begin = loop.time()
    stop_at, sample_from = begin + warmup + seconds, begin + warmup
    done = 0
    lag = LoopLag()

    async def worker() -> None:
        nonlocal done
        while loop.time() < stop_at:
            await fn()
            if loop.time() >= sample_from:
                done += 1

    async def sampler() -> None:
        await asyncio.sleep(warmup)
        with lag:
            await asyncio.sleep(seconds)

    await asyncio.gather(sampler(), *(worker() for _ in range(inflight)))
    return done / (loop.time() - sample_from), lag


def ms(lag: LoopLag) -> str:
    return f"p50 {lag.p(0.5) * 1000:.1f} ms, p99 {lag.p(0.99) * 1000:.1f} ms"
