"""The Redis adapters against a real redis-server, beyond the contract they share with the memory store
(test_session_contract.py): key lifetimes, EVALSHA, state shared by several servers, and Redis being down."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from tests.conftest import free_port, http_client
from tests.unit.test_auth import REMOTE, call, login, make_container
from zfsapi.adapters.outbound.state.redis.client import PREFIX, connect
from zfsapi.adapters.outbound.state.redis.sessions import RedisRateLimiter, RedisRevocations, RedisStreamSessions
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.ratelimit import Quota
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.transfer import ReceiveSpec, SendSpec, StreamSession, StreamState


@pytest.fixture
async def client(redis_url):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    c = connect("127.0.0.1", port, 0, None)
    await c.flushdb()
    yield c
    await c.aclose()


def redis_sections(redis_url, **over):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    return {"redis": {"host": "127.0.0.1", "port": port}, **over}


async def test_keys_live_no_longer_than_the_state_matters(client: Redis) -> None:
    """Behaviour common to the memory store is in test_session_contract.py; here, what Redis keeps and for how long."""
    await RedisRateLimiter(client).hit("k", Quota(5, 100.0), 1)
    await RedisRevocations(client).revoke("j1", 30)
    now = time.time()
    await RedisStreamSessions(client).create(StreamSession("c" * 32, "ops", now, now + 60, ReceiveSpec(DatasetName.parse("tank/x"))), 120)
    assert 0 < await client.pttl(PREFIX + "rl:k") <= 21_000  # one request's share of 100 s / 5, plus 1 s
    assert 0 < await client.pttl(PREFIX + "revoked:j1") <= 30_000
    assert 0 < await client.pttl(PREFIX + "stream:" + "c" * 32) <= 120_000


async def test_one_script_per_check_run_with_evalsha(client):
    limiter = RedisRateLimiter(client)
    await limiter.hit("a", Quota(10, 10.0))  # loads the script
    before = await client.info("commandstats")
    for _ in range(5):
        await limiter.hit("a", Quota(10, 10.0))
    after = await client.info("commandstats")
    calls = lambda stats, cmd: stats.get(f"cmdstat_{cmd}", {}).get("calls", 0)  # noqa: E731
    assert calls(after, "evalsha") - calls(before, "evalsha") == 5
    assert calls(after, "eval") == calls(before, "eval")


async def test_logout_is_seen_by_another_server_sharing_redis(tmp_path, redis_url):
    a = http_app(make_container(tmp_path, **redis_sections(redis_url)))
    b = http_app(make_container(tmp_path, **redis_sections(redis_url)))
    async with http_client(a, peer=REMOTE, host="zfs.example") as ca, \
            http_client(b, peer=REMOTE, host="zfs.example") as cb:
        token = await login(ca, "root")
        assert "result" in (await call(cb, "pool_list", token=token)).json()
        await call(ca, "auth_logout", token=token)
        assert (await call(cb, "pool_list", token=token)).json()["error"]["code"] == -32002


async def test_rate_limit_shared_by_two_apps(tmp_path, redis_url):
    sections = redis_sections(redis_url, rate_limit={"requests": 6, "window": 600, "local_requests": 6,
                                                     "local_window": 600})
    apps = [http_app(make_container(tmp_path, **sections)) for _ in range(2)]
    async with http_client(apps[0]) as c0, http_client(apps[1]) as c1:
        codes = [(await call((c0, c1)[i % 2], "pool_list")).status_code for i in range(10)]
    assert codes == [200] * 6 + [429] * 4


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


async def test_redis_down_rate_limits_per_process_and_token_checks_fail_closed(tmp_path):
    """The documented choice: limits stay in force per process; tokens cannot be checked against the
    revocation list, so token callers get an error (-32603, session store unavailable) instead of being let
    through; passwordless local callers keep working."""
    limits = {"requests": 3, "window": 600, "local_requests": 3, "local_window": 600}
    sections = {"redis": {"host": "127.0.0.1", "port": _closed_port()}, "rate_limit": limits}
    app = http_app(make_container(tmp_path, **sections))
    async with http_client(app) as c:
        codes = [(await call(c, "pool_list")).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "root")
        err = (await call(c, "pool_list", token=token)).json()["error"]
        assert err["code"] == -32603 and err["data"] == {"service": "session store"}
    with pytest.raises(ServiceUnavailable):
        await RedisRevocations(connect("127.0.0.1", _closed_port(), 0, None)).state("j", "s")


async def test_stream_sessions_shared_by_two_servers(client: Redis) -> None:
    a, b = RedisStreamSessions(client), RedisStreamSessions(client)  # two servers sharing one Redis
    now = time.time()
    s = StreamSession("c" * 32, "ops", now, now + 60, ReceiveSpec(DatasetName.parse("tank/x y")))
    await a.create(s, 120)
    assert await b.get(s.stream_id) == s
    claims = [await x.claim(s.stream_id, now) for x in (a, b)]
    assert claims == [replace(s, state=StreamState.ACTIVE), None]
    await b.update(s.stream_id, bytes=12345, state=StreamState.CANCELLED)
    assert await a.get(s.stream_id) == replace(s, state=StreamState.CANCELLED, bytes=12345)
    assert await a.list() == await b.list() == [replace(s, state=StreamState.CANCELLED, bytes=12345)]


async def test_concurrent_claims_one_winner(client: Redis) -> None:
    servers = [RedisStreamSessions(client) for _ in range(8)]
    now = time.time()
    s = StreamSession("d" * 32, "ops", now, now + 60, SendSpec(SnapshotName.parse("tank/a@s")))
    await servers[0].create(s, 120)
    claims = await asyncio.gather(*(x.claim(s.stream_id, now) for x in servers))
    assert sorted(claims, key=lambda c: c is None) == [replace(s, state=StreamState.ACTIVE)] + [None] * 7
