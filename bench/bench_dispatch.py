"""JSON-RPC dispatch overhead: a no-op JSON-RPC method vs a bare Litestar POST handler returning the same JSON.

    .venv/bin/python -m bench.bench_dispatch [N]

Both apps are driven in-process at the ASGI level (no sockets), alternating rounds, so the ratio is the cost of
our envelope handling, param conversion, policy hook, metrics and guard. Target: ratio >= 0.85.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec
from dependency_injector import providers
from litestar import Litestar, Request, Response, post

from bench.common import asgi_post, rate
from zfsapi.adapters.inbound.http.peer import Peer
from zfsapi.adapters.inbound.jsonrpc.registry import CallContext, NoParams, Result, Table
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import Action

RESULT = {"ok": True}
BENCH = Table()


class Noop:
    """Nothing: the method the benchmark calls."""

    async def execute(self) -> None:
        return None


class NoopResult(Result, frozen=True, kw_only=True):
    ok: bool = True


@BENCH.method(Action.READ, name="bench.noop")
async def noop(uc: Noop, p: NoParams, ctx: CallContext) -> NoopResult:
    await uc.execute()
    return NoopResult()


def baseline_app() -> Litestar:
    encoder = msgspec.json.Encoder()

    @post("/", status_code=200)
    async def handler(request: Request) -> Response[bytes]:
        body = msgspec.json.decode(await request.body())
        return Response(encoder.encode({"jsonrpc": "2.0", "result": RESULT, "id": body["id"]}),
                        media_type="application/json")

    return Litestar(route_handlers=[handler], openapi_config=None, logging_config=None)


def our_app() -> Litestar:
    # the rate limit on (its check is part of the cost) with a quota this benchmark never reaches
    settings = load_settings(environ={}, overrides={"rate_limit": {"requests": 10**9, "window": 1}})
    container = build_container(settings)
    # the in-process caller is root on this machine (no socket to look its uid up by)
    container.local_peer.override(providers.Object(lambda scope: Peer(0, "tcp")))
    app = http_app(container)
    app.state["registry"].include(BENCH, lambda kind: kind())
    return app


async def main(n: int) -> None:
    ours, base = our_app(), baseline_app()
    body = b'{"jsonrpc":"2.0","method":"bench.noop","params":{},"id":1}'
    for app in (ours, base):
        status, out = await asgi_post(app, body)
        assert status == 200 and b'"ok":true' in out, out
        await rate(lambda: asgi_post(app, body), 500)  # warm-up
    r_ours, r_base = [], []
    for _ in range(5):
        r_ours.append(await rate(lambda: asgi_post(ours, body), n))
        r_base.append(await rate(lambda: asgi_post(base, body), n))
    best_ours, best_base = max(r_ours), max(r_base)
    print(f"dispatch: zfsapi no-op {best_ours:.0f} req/s, bare Litestar {best_base:.0f} req/s, "
          f"ratio {best_ours / best_base:.2f} (target >= 0.85; best of 5 alternating rounds of {n})")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
