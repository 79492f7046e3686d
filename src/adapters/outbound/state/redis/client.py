"""The Redis connection every Redis store of this server shares, its key prefix, and the guard that turns a
failed Redis call into the store being unavailable."""

from __future__ import annotations

from typing import Awaitable, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from zfsapi.domain.errors import ServiceUnavailable

T = TypeVar("T")
PREFIX = "zfsapi:"


def connect(host: str, port: int, db: int, password: str | None) -> aioredis.Redis:
    # one quick retry, no backoff: a request must not wait seconds on a Redis that is down
    return aioredis.Redis(host=host, port=port, db=db, password=password, socket_timeout=2.0,
                          socket_connect_timeout=1.0, health_check_interval=30, retry=Retry(NoBackoff(), 1))


async def guarded(awaitable: Awaitable[T], service: str = "session store") -> T:
    """A Redis call whose failure is the store being unavailable (fail closed)."""
    try:
        return await awaitable
    except (RedisError, OSError) as exc:
        raise ServiceUnavailable(service, type(exc).__name__) from None
