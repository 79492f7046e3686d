"""Redis-backed session state shared by every worker and server using the same Redis: token revocations and
the GCRA rate limiter (one atomic Lua script per check, run with EVALSHA, with Redis's clock as "now" so
servers with skewed clocks still share one limit).

When Redis cannot be reached the rate limiter falls back to a per-process limiter (each process then enforces
the limit on its own: limits stay in force, looser by the number of processes, instead of refusing everyone
or letting everyone through); revocation checks fail closed (ServiceUnavailable), since letting a revoked
token through is worse than refusing a valid one for the length of an outage.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Callable, cast

import msgspec
import msgspec.structs
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from zfsapi.application.auth import Revocations
from zfsapi.application.ports import RateLimiter
from zfsapi.domain.names import (
    BookmarkName,
    DatasetName,
    SnapshotName,
    parse_snapshot_or_bookmark,
)
from zfsapi.domain.ratelimit import Decision, Quota
from zfsapi.domain.transfer import (
    Operation,
    ReceiveSpec,
    ResumeSend,
    ResumeToken,
    SendSpec,
    StreamSession,
    StreamState,
)

from ..memory.sessions import MemoryRateLimiter
from .client import PREFIX, guarded

log = logging.getLogger("zfsapi.sessions")

# KEYS[1] = the limiter key; ARGV = interval (ms), period (ms), cost.
# Returns {allowed (0/1), remaining, retry_after_ms, reset_ms}. Times in integer microseconds from TIME.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = now
if tat > now then base = tat end
local new_tat = base + cost * interval
local allow_at = new_tat - period
if cost * interval > period or allow_at > now then
  local remaining = math.floor((period - (base - now)) / interval)
  if remaining < 0 then remaining = 0 end
  local retry = allow_at - now
  if cost * interval > period then retry = -1 end
  return {0, remaining, retry, base - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
local remaining = math.floor((period - (new_tat - now)) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, 0, new_tat - now}
"""


class RedisRateLimiter(RateLimiter):
    RETRY_AFTER = 2.0  # seconds between attempts to reach Redis again while it is down

    def __init__(self, client: aioredis.Redis, fallback: MemoryRateLimiter | None = None) -> None:
        self._client = client
        self._script = client.register_script(GCRA_LUA)  # EVALSHA, loading the script on NOSCRIPT
        self._fallback = fallback or MemoryRateLimiter()
        self._degraded = False
        self._next_try = 0.0

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        interval_us = quota.interval * 1e6
        if self._degraded and time.monotonic() < self._next_try:
            return self._fallback.hit_now(key, quota, cost)
        try:
            allowed, remaining, retry_us, reset_us = await self._script(
                keys=[PREFIX + "rl:" + key], args=[repr(interval_us), repr(quota.period * 1e6), cost])
        except (RedisError, OSError) as exc:
            if not self._degraded:
                log.warning("redis unreachable, rate limiting per process until it is back",
                            extra={"error": type(exc).__name__})
                self._degraded = True
            self._next_try = time.monotonic() + self.RETRY_AFTER
            return self._fallback.hit_now(key, quota, cost)
        if self._degraded:
            log.warning("redis reachable again, rate limits shared again")
            self._degraded = False
        retry = math.inf if int(retry_us) < 0 else int(retry_us) / 1e6
        return Decision(bool(allowed), int(remaining), retry, int(reset_us) / 1e6)


# KEYS[1] = the user's not-before key; ARGV = the mark, TTL (ms). Keeps the later mark if another server wrote one.
NOT_BEFORE_LUA = """
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1
"""


class RedisRevocations(Revocations):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._not_before = client.register_script(NOT_BEFORE_LUA)

    async def revoke(self, jti: str, ttl: float) -> None:
        if ttl > 0:
            await guarded(self._client.set(PREFIX + "revoked:" + jti, b"1", px=max(1, math.ceil(ttl * 1000))))

    async def revoke_before(self, subject: str, issued_before: float, ttl: float) -> None:
        await guarded(self._not_before(keys=[PREFIX + "nbf:" + subject],
                                        args=[repr(issued_before), max(1, math.ceil(ttl * 1000))]))

    async def state(self, jti: str, subject: str) -> tuple[bool, float | None]:
        revoked, nbf = await guarded(self._client.mget(PREFIX + "revoked:" + jti, PREFIX + "nbf:" + subject))
        return revoked is not None, float(nbf) if nbf is not None else None


# KEYS[1] = the session key; ARGV = the JSON read, the JSON to store. Stores only when nobody changed the session
# since it was read (compare-and-set), keeping its retention. Lua's cjson would round the numbers to 14 digits, so
# the session is decoded and changed in Python, with msgspec, and only swapped here.
SWAP_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""


class StreamRecord(msgspec.Struct, frozen=True):
    """A stream session as stored: flat, names as text (the shape sessions stored by earlier versions have)."""

    stream_id: str
    operation: str
    username: str
    created: float
    expires_at: float
    dataset: str | None = None  # send: the source dataset
    snapshot: str | None = None  # send: the full snapshot name
    from_snapshot: str | None = None
    target_dataset: str | None = None  # receive
    force: bool = False
    resumable: bool = True
    resume_token: str | None = None
    trusted: bool = False  # receive: the stream's mount properties apply (an unrestricted admin's receive)
    raw: bool = False
    native_compressed: bool = True
    recursive: bool = False
    state: str = "pending"
    bytes: int = 0
    error: str | None = None


def _text(name: DatasetName | SnapshotName | BookmarkName | ResumeToken | None) -> str | None:
    return None if name is None else name.value


def encode_session(s: StreamSession) -> bytes:
    t = s.transfer
    record = StreamRecord(s.stream_id, s.operation.value, s.username, s.created, s.expires_at, state=s.state.value,
                          bytes=s.bytes, error=s.error)
    if isinstance(t, ReceiveSpec):
        record = msgspec.structs.replace(record, target_dataset=t.target.value, force=t.force,
                                         resumable=t.resumable, resume_token=_text(t.resume_token),
                                         trusted=t.trusted)
    elif isinstance(t, ResumeSend):
        record = msgspec.structs.replace(record, dataset=_text(t.dataset), snapshot=_text(t.snapshot),
                                         resume_token=t.token.value, raw=t.raw, native_compressed=t.native_compressed)
    else:
        record = msgspec.structs.replace(record, dataset=t.snapshot.dataset.value, snapshot=t.snapshot.value,
                                         from_snapshot=_text(t.from_), raw=t.raw,
                                         native_compressed=t.native_compressed, recursive=t.recursive)
    return msgspec.json.encode(record)


def decode_session(raw: bytes | str) -> StreamSession:
    """The one way back from the stored text: every name parsed again into its value object."""
    r = msgspec.json.decode(raw, type=StreamRecord)
    token = ResumeToken.parse(r.resume_token) if r.resume_token is not None else None
    transfer: SendSpec | ResumeSend | ReceiveSpec
    if Operation(r.operation) is Operation.RECEIVE:
        assert r.target_dataset is not None
        transfer = ReceiveSpec(DatasetName.parse(r.target_dataset), force=r.force, resumable=r.resumable,
                               resume_token=token, trusted=r.trusted)
    elif token is not None:
        transfer = ResumeSend(token, DatasetName.parse(r.dataset) if r.dataset else None,
                              SnapshotName.parse(r.snapshot) if r.snapshot else None, raw=r.raw,
                              native_compressed=r.native_compressed)
    else:
        assert r.snapshot is not None
        transfer = SendSpec(SnapshotName.parse(r.snapshot),
                            parse_snapshot_or_bookmark(r.from_snapshot) if r.from_snapshot else None,
                            recursive=r.recursive, raw=r.raw, native_compressed=r.native_compressed)
    return StreamSession(r.stream_id, r.username, r.created, r.expires_at, transfer, StreamState(r.state), r.bytes,
                         r.error)


class RedisStreamSessions:
    """Stream sessions as JSON in Redis (claim and updates atomic: compare-and-set in Lua), indexed by a sorted set."""

    INDEX = PREFIX + "streams"

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._swap = client.register_script(SWAP_LUA)

    @staticmethod
    def _key(stream_id: str) -> str:
        return PREFIX + "stream:" + stream_id

    @staticmethod
    def _decode(raw: bytes | str | None) -> StreamSession | None:
        return None if not raw else decode_session(raw)

    async def create(self, session: StreamSession, retain: float) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._key(session.stream_id), encode_session(session), px=max(1, math.ceil(retain * 1000)))
        pipe.zadd(self.INDEX, {session.stream_id: time.time() + retain})  # listed as long as it is kept
        await guarded(pipe.execute())

    async def get(self, stream_id: str) -> StreamSession | None:
        return self._decode(await guarded(self._client.get(self._key(stream_id))))

    async def _change(self, stream_id: str, change: Callable[[StreamSession], StreamSession | None]
                      ) -> StreamSession | None:
        """Apply `change` to the stored session atomically (retried when another writer came first)."""
        key = self._key(stream_id)
        while True:
            raw = cast(bytes | None, await guarded(self._client.get(key)))
            current = self._decode(raw)
            new = None if raw is None or current is None else change(current)
            if raw is None or new is None:
                return None
            if await guarded(self._swap(keys=[key], args=[raw, encode_session(new)])):
                return new

    async def claim(self, stream_id: str, now: float) -> StreamSession | None:
        return await self._change(stream_id, lambda s: replace(s, state=StreamState.ACTIVE)
                                  if s.effective_state(now) is StreamState.PENDING else None)

    async def update(self, stream_id: str, *, state: StreamState | None = None, bytes: int | None = None,
                     error: str | None = None) -> StreamSession | None:
        return await self._change(stream_id, lambda s: replace(
            s, state=s.state if state is None else state, bytes=s.bytes if bytes is None else bytes,
            error=s.error if error is None else error))

    async def list(self) -> list[StreamSession]:
        now = time.time()
        await guarded(self._client.zremrangebyscore(self.INDEX, "-inf", now))
        ids = [i.decode() for i in cast(list[bytes], await guarded(self._client.zrange(self.INDEX, 0, -1)))]
        if not ids:
            return []
        raws = await guarded(self._client.mget([self._key(i) for i in ids]))
        return [s for s in (self._decode(r) for r in raws) if s is not None]
