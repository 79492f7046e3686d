"""One contract suite over both session stores, in-process (memory) and shared (a real redis-server on a loopback
port): token revocations, the GCRA rate limiter and stream sessions answer the same calls the same way.

Rate-limit figures depend on when each store read its clock; every expectation is computed from times measured
around the calls, never from a fixed duration."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, replace
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import pytest

from zfsapi.adapters.outbound.state.memory.sessions import MemoryRateLimiter, MemoryRevocations, MemoryStreamSessions
from zfsapi.adapters.outbound.state.redis.client import connect
from zfsapi.adapters.outbound.state.redis.sessions import RedisRateLimiter, RedisRevocations, RedisStreamSessions
from zfsapi.application.auth import Revocations
from zfsapi.application.ports import RateLimiter, StreamSessions
from zfsapi.domain.ratelimit import Decision, Quota
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.transfer import ReceiveSpec, SendSpec, StreamSession, StreamState, StreamTransfer

T = TypeVar("T")
DEADLINE = 30.0  # seconds to wait for an expiry; the machine may be slow and shared


@dataclass
class Stores:
    revocations: Revocations
    limiter: RateLimiter
    streams: StreamSessions


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield Stores(MemoryRevocations(), MemoryRateLimiter(), MemoryStreamSessions())
        return
    redis_url: str = request.getfixturevalue("redis_url")
    client = connect("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]), 0, None)
    await client.flushdb()
    try:
        yield Stores(RedisRevocations(client), RedisRateLimiter(client), RedisStreamSessions(client))
    finally:
        await client.aclose()


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Poll `probe` until `done` holds (30 s deadline); print how long it took."""
    start = time.monotonic()
    while True:
        value = await probe()
        if done(value):
            print(f"{what} after {time.monotonic() - start:.3f} s")
            return value
        assert time.monotonic() - start < DEADLINE, f"{what}: still {value!r} after {DEADLINE} s"
        await asyncio.sleep(0.02)


# ---- revocations ----

async def test_revoked_ids_and_not_before_marks(stores: Stores) -> None:
    rev = stores.revocations
    assert await rev.state("j1", "alice") == (False, None)
    await rev.revoke("j1", 30)
    await rev.revoke("j0", 0)  # a token that has expired already needs no entry
    await rev.revoke("jneg", -5)
    assert await rev.state("j1", "alice") == (True, None)
    assert await rev.state("j0", "alice") == (False, None)
    assert await rev.state("jneg", "alice") == (False, None)
    await rev.revoke_before("alice", 1_700_000_000.25, 30)
    await rev.revoke_before("alice", 1_600_000_000.5, 30)  # an older mark never replaces a newer one
    assert await rev.state("j1", "alice") == (True, 1_700_000_000.25)
    assert await rev.state("j2", "alice") == (False, 1_700_000_000.25)
    assert await rev.state("j1", "bob") == (True, None)
    await rev.revoke_before("alice", 1_800_000_000.125, 30)
    assert await rev.state("j2", "alice") == (False, 1_800_000_000.125)


async def test_revocations_expire_after_their_ttl(stores: Stores) -> None:
    rev = stores.revocations
    await rev.revoke("short", 0.2)
    await rev.revoke_before("carol", 1_700_000_000.0, 0.2)
    await rev.revoke("long", 60)
    await eventually(lambda: rev.state("short", "carol"), lambda s: s == (False, None), "revocations expired")
    assert await rev.state("long", "carol") == (True, None)


# ---- rate limiter ----

async def timed(hit: Awaitable[Decision]) -> tuple[Decision, float, float]:
    before = time.monotonic()
    decision = await hit
    return decision, before, time.monotonic()


async def test_gcra_burst_then_refusals(stores: Stores) -> None:
    # 5 per hour: one request's share is 720 s, far longer than the burst takes, so the yes/no answers and the
    # remaining counts are exact; the seconds are checked against the clock readings around each call.
    quota = Quota(5, 3600.0)
    results = [await timed(stores.limiter.hit("k", quota, cost)) for cost in (1, 1, 3, 1, 1, 6)]
    decisions = [d for d, _, _ in results]
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    assert [d.remaining for d in decisions] == [4, 3, 0, 0, 0, 0]
    (_, b1, a1) = results[0]
    eps = 1e-3  # the Redis script works in whole microseconds

    def since_first(i: int) -> tuple[float, float]:
        """Bounds of (this call's clock reading - the first call's clock reading)."""
        return max(0.0, results[i][1] - a1), results[i][2] - b1

    assert decisions[0].reset == pytest.approx(720.0, abs=eps)
    for i, (reset_at, retry_at) in enumerate([(1440.0, None), (3600.0, None), (3600.0, 720.0), (3600.0, 720.0),
                                              (3600.0, math.inf)], start=1):
        lo, hi = since_first(i)
        d = decisions[i]
        assert reset_at - hi - eps <= d.reset <= reset_at - lo + eps, (i, d, lo, hi)
        if retry_at is None:
            assert d.retry_after == 0.0
        elif retry_at == math.inf:
            assert d.retry_after == math.inf  # a batch of 6 can never fit a quota of 5
        else:
            assert retry_at - hi - eps <= d.retry_after <= retry_at - lo + eps, (i, d, lo, hi)
    other = await stores.limiter.hit("other", quota)  # keys are independent
    assert (other.allowed, other.remaining, other.retry_after) == (True, 4, 0.0)


async def test_refused_batch_leaves_the_state_alone(stores: Stores) -> None:
    quota = Quota(3, 3600.0)
    too_big = await stores.limiter.hit("b", quota, 4)
    assert (too_big.allowed, too_big.remaining, too_big.retry_after, too_big.reset) == (False, 3, math.inf, 0.0)
    first = await stores.limiter.hit("b", quota, 1)
    assert (first.allowed, first.remaining, first.retry_after) == (True, 2, 0.0)


async def test_gcra_allows_again_once_the_interval_has_passed(stores: Stores) -> None:
    quota = Quota(2, 1.0)  # one request per 0.5 s, bursts of 2
    assert [(await stores.limiter.hit("r", quota)).allowed for _ in range(2)] == [True, True]
    refused, before, _ = await timed(stores.limiter.hit("r", quota))
    assert not refused.allowed and 0.0 < refused.retry_after <= 0.5
    # the refusal read its clock at `before` or later, so nothing can be allowed before before + retry_after
    allowed_after = before + refused.retry_after - 1e-3

    async def probe() -> tuple[Decision, float]:
        d, _, after = await timed(stores.limiter.hit("r", quota))
        return d, after

    decision, after = await eventually(probe, lambda v: v[0].allowed, "allowed again")
    assert after >= allowed_after
    assert decision.remaining == 0


# ---- stream sessions ----

def session(stream_id: str, created: float, expires_in: float = 60.0,
            transfer: StreamTransfer | None = None) -> StreamSession:
    return StreamSession(stream_id, "ops", created, created + expires_in,
                         transfer or ReceiveSpec(DatasetName.parse("tank/x y")))


async def test_stream_session_lifecycle(stores: Stores) -> None:
    streams, now = stores.streams, time.time()
    s = session("a" * 32, now)
    await streams.create(s, 120)
    assert await streams.get(s.stream_id) == s
    assert await streams.get("f" * 32) is None
    active = replace(s, state=StreamState.ACTIVE)
    assert await streams.claim(s.stream_id, now) == active
    assert await streams.claim(s.stream_id, now) is None  # single use
    assert await streams.get(s.stream_id) == active
    done = replace(active, bytes=12345, state=StreamState.DONE)
    assert await streams.update(s.stream_id, bytes=12345, state=StreamState.DONE) == done
    assert await streams.get(s.stream_id) == done
    failed = replace(done, state=StreamState.FAILED, error="receive failed: boom")
    assert await streams.update(s.stream_id, state=StreamState.FAILED, error="receive failed: boom") == failed
    assert await streams.get(s.stream_id) == failed
    assert await streams.update("f" * 32, bytes=1) is None
    assert await streams.claim("f" * 32, now) is None


async def test_stream_session_claims(stores: Stores) -> None:
    streams, now = stores.streams, time.time()
    expiring = session("b" * 32, now, expires_in=1.0)
    cancelled = session("c" * 32, now)
    await streams.create(expiring, 120)
    await streams.create(cancelled, 120)
    assert await streams.claim(expiring.stream_id, now + 1.0) is None  # expires_at is not claimable any more
    assert await streams.get(expiring.stream_id) == expiring
    assert await streams.claim(expiring.stream_id, now + 0.5) == replace(expiring, state=StreamState.ACTIVE)
    assert await streams.update(cancelled.stream_id, state=StreamState.CANCELLED) == replace(cancelled,
                                                                                  state=StreamState.CANCELLED)
    assert await streams.claim(cancelled.stream_id, now) is None


async def test_stream_sessions_listed_until_retention_ends(stores: Stores) -> None:
    streams, now = stores.streams, time.time()
    assert await streams.list() == []
    # a session created a while ago (its creator's clock) is kept for `retain` from when it is stored
    old = session("d" * 32, now - 300, expires_in=400, transfer=SendSpec(SnapshotName.parse("tank/a@s")))
    short = session("e" * 32, now)
    await streams.create(old, 120)
    await streams.create(short, 0.3)
    listed = sorted(await streams.list(), key=lambda s: s.stream_id)
    assert listed == [old, short]
    await eventually(lambda: streams.get(short.stream_id), lambda s: s is None, "short session gone")
    assert await streams.list() == [old]
    assert await streams.update(short.stream_id, bytes=1) is None
    assert await streams.claim(short.stream_id, now) is None
    assert await streams.get(old.stream_id) == old
