"""Shared fixtures: the real container with FakeZfs at the port boundary, an in-process HTTP client with a
chosen peer address, and a real redis-server on a loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timezone

import httpx
import pytest
from dependency_injector import providers

from tests.fakes import FakeZfs, FixedClock
from zfsapi.adapters.inbound.http.guard import is_loopback_address
from zfsapi.adapters.inbound.http.peer import SCOPE_KEY, Peer
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app

pytest.register_assert_rewrite("tests.job_store_contract")  # a suite outside test_*.py: detailed failures too
pytest.register_assert_rewrite("tests.policy_store_contract")


@pytest.fixture
def fake_zfs() -> FakeZfs:
    return FakeZfs()


@pytest.fixture
def container(fake_zfs: FakeZfs):
    c = build_container(load_settings(environ={}))
    c.zfs.override(providers.Object(fake_zfs))
    c.job_store.override(providers.Object(MemoryJobStore()))  # not a file under the default state_dir
    c.clock.override(providers.Object(FixedClock(datetime(2026, 11, 24, 12, 30, 15, tzinfo=timezone.utc))))
    return c


@pytest.fixture
def use_cases(container):
    return container.use_cases()


def http_client(app, peer: str = "127.0.0.1", host: str = "127.0.0.1:8545", uid: int | None = 0,
                unix: bool = False) -> httpx.AsyncClient:
    """An in-process client. httpx's ASGI transport has no socket for the kernel to name the caller by, so the
    caller's uid is handed in as the server's connection handler would (PeerAwareHttpTools): `uid` (root by
    default; None: unknown), over loopback TCP from `peer`, or over the Unix socket with `unix=True`."""
    async def with_peer(scope, receive, send):
        if scope["type"] == "http":
            if unix:
                scope = {**scope, "client": None, "server": ("/run/zfsapi.sock", None)}
            if unix or is_loopback_address(peer):
                scope = {**scope, "extensions": {**scope.get("extensions", {}), SCOPE_KEY: Peer(uid, "unix" if unix
                                                                                                   else "tcp")}}
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=with_peer, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}", timeout=60)


@pytest.fixture
async def client(container):
    async with http_client(http_app(container)) as c:
        yield c


class Rpc:
    """Call helper: `await rpc("pool_list")` -> result, or the error object when `error=True`."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.ids = 0

    async def __call__(self, method: str, error: bool = False, **params):
        self.ids += 1
        r = await self.client.post("/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": self.ids})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == self.ids
        if error:
            assert "error" in body, body
            return body["error"]
        assert "result" in body, body
        return body["result"]


@pytest.fixture
def rpc(client) -> Rpc:
    return Rpc(client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int, workdir: str) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:`port` (no persistence), answering PING within 30 s; the test fails else."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI (apt-get install redis-server)")
        pytest.skip("redis-server not installed; apt-get install redis-server to run these tests")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on a loopback port, for the session; stopped afterwards."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="zfsapi-redis-")
    proc = start_redis(port, workdir)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)
