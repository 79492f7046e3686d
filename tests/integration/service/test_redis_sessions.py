"""The Redis adapters against a real redis-server: GCRA in Lua decides like the in-process GCRA, revocations
expire with the token, and what happens when Redis is down."""

from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import free_port, http_client
from tests.unit.test_auth import REMOTE, call, login, make_container
from zfsapi.adapters.inbound.http.app import create_app
from zfsapi.adapters.outbound.sessions.memory import MemoryRateLimiter
from zfsapi.adapters.outbound.sessions.redis_store import PREFIX, RedisRateLimiter, RedisRevocations, connect
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.ratelimit import Quota


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


async def test_lua_gcra_decides_like_the_memory_gcra(client):
    quota = Quota(5, 100.0)
    redis_limiter, memory = RedisRateLimiter(client), MemoryRateLimiter()
    costs = [1, 1, 3, 1, 1, 6]
    t0 = time.monotonic()
    got_r = [await redis_limiter.hit("k", quota, c) for c in costs]
    t1 = time.monotonic()
    got_m = [await memory.hit("k", quota, c) for c in costs]
    # the two runs read their clocks at different moments: they may differ by as much time as the runs took
    slack = time.monotonic() - t0 + 0.01
    assert [d.allowed for d in got_r] == [d.allowed for d in got_m] == [True, True, True, False, False, False]
    assert [d.remaining for d in got_r] == [d.remaining for d in got_m]
    for r, m in zip(got_r, got_m):
        assert r.retry_after == m.retry_after or abs(r.retry_after - m.retry_after) < slack
        assert abs(r.reset - m.reset) < slack
    assert 20.0 - (t1 - t0) - 0.01 < got_r[3].retry_after <= 20.0  # one request's share of 100 s / 5
    assert got_r[5].retry_after == float("inf")  # a batch of 6 can never fit a quota of 5
    ttl = await client.pttl(PREFIX + "rl:k")
    assert 0 < ttl <= 101_000  # the key lives no longer than the state matters


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


async def test_revocations_expire_with_the_token(client):
    rev = RedisRevocations(client)
    await rev.revoke("j1", 30)
    await rev.revoke_before("alice", 1000.0, 30)
    await rev.revoke_before("alice", 900.0, 30)  # an older mark does not replace a newer one
    assert await rev.state("j1", "alice") == (True, 1000.0)
    assert await rev.state("j2", "bob") == (False, None)
    assert 0 < await client.pttl(PREFIX + "revoked:j1") <= 30_000


async def test_logout_is_seen_by_another_server_sharing_redis(tmp_path, redis_url):
    a = create_app(make_container(tmp_path, **redis_sections(redis_url)))
    b = create_app(make_container(tmp_path, **redis_sections(redis_url)))
    async with http_client(a, peer=REMOTE, host="zfs.example") as ca, \
            http_client(b, peer=REMOTE, host="zfs.example") as cb:
        token = await login(ca, "root")
        assert "result" in (await call(cb, "pool_list", token=token)).json()
        await call(ca, "auth_logout", token=token)
        assert (await call(cb, "pool_list", token=token)).json()["error"]["code"] == -32002


async def test_rate_limit_shared_by_two_apps(tmp_path, redis_url):
    sections = redis_sections(redis_url, rate_limit={"requests": 6, "window": 600})
    apps = [create_app(make_container(tmp_path, **sections)) for _ in range(2)]
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
    sections = {"redis": {"host": "127.0.0.1", "port": _closed_port()}, "rate_limit": {"requests": 3, "window": 600}}
    app = create_app(make_container(tmp_path, **sections))
    async with http_client(app) as c:
        codes = [(await call(c, "pool_list")).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
    async with http_client(app, peer=REMOTE, host="zfs.example") as c:
        token = await login(c, "root")
        err = (await call(c, "pool_list", token=token)).json()["error"]
        assert err["code"] == -32603 and err["data"] == {"service": "session store"}
    with pytest.raises(ServiceUnavailable):
        await RedisRevocations(connect("127.0.0.1", _closed_port(), 0, None)).state("j", "s")


async def test_redis_stream_sessions_single_use_shared_and_listed(client):
    import time

    from zfsapi.adapters.outbound.sessions.redis_store import RedisStreamSessions
    from zfsapi.domain.names import DatasetName, SnapshotName
    from zfsapi.domain.transfer import ReceiveSpec, SendSpec, StreamSession, StreamState

    a, b = RedisStreamSessions(client), RedisStreamSessions(client)  # two servers sharing one Redis
    now = time.time()
    s = StreamSession("c" * 32, "ops", now, now + 60, ReceiveSpec(DatasetName.parse("tank/x y")))
    await a.create(s, 120)
    assert (await b.get(s.stream_id)) == s
    claims = [await x.claim(s.stream_id, now) for x in (a, b)]
    assert claims[0] is not None and claims[0].state is StreamState.ACTIVE and claims[1] is None
    await b.update(s.stream_id, bytes=12345, state=StreamState.CANCELLED)
    got = await a.get(s.stream_id)
    assert (got.bytes, got.state, got.transfer) == (12345, StreamState.CANCELLED, s.transfer)
    expired = StreamSession("d" * 32, "ops", now, now + 1, SendSpec(SnapshotName.parse("tank/a@s")))
    await a.create(expired, 120)
    assert await b.claim(expired.stream_id, now + 2) is None
    assert {x.stream_id for x in await b.list()} == {s.stream_id, expired.stream_id}
    assert 0 < await client.pttl(PREFIX + "stream:" + s.stream_id) <= 120_000
