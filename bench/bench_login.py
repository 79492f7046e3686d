"""A burst of 50 logins must not stall other requests: event-loop lag and the latency of a cheap request
running alongside, with our login (Argon2id in a bounded worker pool) vs the same verification run on the
event loop (what a plain `ph.verify()` in a handler does).

    .venv/bin/python -m bench.bench_login [BURST]

Both use argon2-cffi's default parameters (t=3, m=64 MiB, p=4) in one run, side by side.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from argon2 import PasswordHasher

from bench.common import LoopLag, asgi_post
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app


def login_body(i: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": "auth_login", "id": i,
                       "params": {"username": "alice", "password": "pw" if i % 2 else "wrong"}}).encode()


PROBE = json.dumps({"jsonrpc": "2.0", "method": "rpc.discover", "id": 0}).encode()


async def probe_latencies(stop: asyncio.Event, app) -> list[float]:
    out = []
    while not stop.is_set():
        t = time.perf_counter()
        await asgi_post(app, PROBE)
        out.append(time.perf_counter() - t)
        await asyncio.sleep(0.01)
    return out


async def run(burst_fn, app, burst: int) -> tuple[float, LoopLag, list[float]]:
    stop = asyncio.Event()
    with LoopLag() as lag:
        probe = asyncio.create_task(probe_latencies(stop, app))
        t = time.perf_counter()
        await asyncio.gather(*(burst_fn(i) for i in range(burst)))
        took = time.perf_counter() - t
        stop.set()
        lat = await probe
    return took, lag, lat


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


async def main(burst: int) -> None:
    ph = PasswordHasher()
    stored = ph.hash("pw")
    settings = load_settings(environ={}, overrides={
        "auth": {"secret_key": "b" * 32, "users": {"alice": {"password_hash": stored, "role": "admin"}}},
        "rate_limit": {"requests": 10**9, "window": 1, "login_requests": 10**9, "login_window": 1},
    })
    app = http_app(build_container(settings))
    await asgi_post(app, login_body(1))  # warm up (dummy hash, pools)

    async def ours(i: int) -> None:
        status, body = await asgi_post(app, login_body(i))
        assert status == 200, body

    async def on_loop(i: int) -> None:  # the baseline: verify on the event loop
        try:
            ph.verify(stored, "pw" if i % 2 else "wrong")
        except Exception:
            pass
        await asyncio.sleep(0)

    for name, fn in (("baseline (verify on the loop)", on_loop), ("ours (bounded pool)", ours)):
        took, lag, lat = await run(fn, app, burst)
        print(f"{name:30} burst of {burst}: {took:6.2f} s; loop lag p50 {ms(lag.p(0.5))}, p99 {ms(lag.p(0.99))}, "
              f"max {ms(max(lag.samples or [0]))}; rpc.discover alongside p50 {ms(pct(lat, 0.5))}, "
              f"p99 {ms(pct(lat, 0.99))} (n={len(lat)})")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
