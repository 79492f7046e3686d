"""In-process session state (the default when no Redis is configured): token revocations and rate-limit
state, kept in dicts with expiry. One process only: several workers need Redis to share it."""

from __future__ import annotations

import time
from dataclasses import replace

from zfsapi.application.auth import Revocations
from zfsapi.application.ports import RateLimiter
from zfsapi.domain.ratelimit import Decision, Quota, gcra
from zfsapi.domain.transfer import StreamSession, StreamState


class Expiring:
    """A dict whose entries vanish after their TTL (checked on read, swept every `sweep_every` writes)."""

    def __init__(self, sweep_every: int = 1024) -> None:
        self._data: dict[str, tuple[float, object]] = {}
        self._writes = 0
        self._sweep_every = sweep_every

    def get(self, key: str, now: float | None = None) -> object | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= (time.monotonic() if now is None else now):
            self._data.pop(key, None)
            return None
        return item[1]

    def put(self, key: str, value: object, ttl: float) -> None:
        now = time.monotonic()
        self._data[key] = (now + ttl, value)
        self._writes += 1
        if self._writes % self._sweep_every == 0:
            self._data = {k: v for k, v in self._data.items() if v[0] > now}

    def replace(self, key: str, value: object) -> None:
        """New value, same expiry."""
        item = self._data.get(key)
        if item is not None:
            self._data[key] = (item[0], value)

    def values(self) -> list[object]:
        now = time.monotonic()
        return [v for expiry, v in self._data.values() if expiry > now]


class MemoryRevocations(Revocations):
    def __init__(self) -> None:
        self._store = Expiring()

    async def revoke(self, jti: str, ttl: float) -> None:
        if ttl > 0:
            self._store.put("jti:" + jti, True, ttl)

    async def revoke_before(self, subject: str, issued_before: float, ttl: float) -> None:
        current = self._store.get("nbf:" + subject)
        if isinstance(current, float) and current >= issued_before:
            return
        self._store.put("nbf:" + subject, issued_before, ttl)

    async def state(self, jti: str, subject: str) -> tuple[bool, float | None]:
        nbf = self._store.get("nbf:" + subject)
        return self._store.get("jti:" + jti) is not None, nbf if isinstance(nbf, float) else None


class MemoryRateLimiter(RateLimiter):
    """GCRA with the TAT per key in an expiring dict (an entry lives no longer than one period past its TAT)."""

    def __init__(self) -> None:
        self._tats = Expiring()

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        return self.hit_now(key, quota, cost)

    def hit_now(self, key: str, quota: Quota, cost: int = 1) -> Decision:
        now = time.monotonic()
        tat = self._tats.get(key, now)
        decision, new_tat = gcra(quota, tat if isinstance(tat, float) else None, now, cost)
        if new_tat is not None:
            self._tats.put(key, new_tat, new_tat - now + 1.0)
        return decision


class MemoryStreamSessions:
    """Stream sessions in this process (lost on restart, invisible to other workers)."""

    def __init__(self) -> None:
        self._store = Expiring()

    async def create(self, session: StreamSession, retain: float) -> None:
        self._store.put(session.stream_id, session, retain)

    async def get(self, stream_id: str) -> StreamSession | None:
        s = self._store.get(stream_id)
        return s if isinstance(s, StreamSession) else None

    async def claim(self, stream_id: str, now: float) -> StreamSession | None:
        s = await self.get(stream_id)  # no await between the check and the update: atomic on the loop
        if s is None or s.state is not StreamState.PENDING or now >= s.expires_at:
            return None
        return self._put(replace(s, state=StreamState.ACTIVE))

    async def update(self, stream_id: str, *, state: StreamState | None = None, bytes: int | None = None,
                     error: str | None = None) -> StreamSession | None:
        s = await self.get(stream_id)
        if s is None:
            return None
        return self._put(replace(s, state=s.state if state is None else state, bytes=s.bytes if bytes is None else bytes,
                                 error=s.error if error is None else error))

    def _put(self, s: StreamSession) -> StreamSession:
        self._store.replace(s.stream_id, s)
        return s

    async def list(self) -> list[StreamSession]:
        return [s for s in self._store.values() if isinstance(s, StreamSession)]
