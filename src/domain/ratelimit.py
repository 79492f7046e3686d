"""GCRA (the generic cell rate algorithm): `limit` requests per `period` seconds, with bursts up to `limit`.

State per key is one number, the theoretical arrival time (TAT). A request of cost n at time `now` is allowed
when `max(tat, now) + n * T - period <= now`, where T = period / limit is the emission interval; allowed
requests move the TAT forward by n * T. This is exact (no fixed-window double bursts) and the same arithmetic
runs in the Redis Lua script, so every worker and server sharing a Redis shares the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int  # requests...
    period: float  # ...per this many seconds

    @property
    def interval(self) -> float:
        return self.period / self.limit


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int  # requests still allowed right now
    retry_after: float  # seconds until this request would be allowed (0 when allowed)
    reset: float  # seconds until the full quota is available again


def gcra(quota: Quota, tat: float | None, now: float, cost: int = 1) -> tuple[Decision, float | None]:
    """The decision, and the new TAT to store (None: leave the stored state as it is)."""
    t = quota.interval
    base = now if tat is None or tat < now else tat
    new_tat = base + cost * t
    allow_at = new_tat - quota.period
    if cost > quota.limit or allow_at > now + 1e-9:
        retry = math.inf if cost > quota.limit else allow_at - now
        remaining = max(0, math.floor((quota.period - (base - now)) / t + 1e-9))
        return Decision(False, remaining, retry, max(0.0, base - now)), None
    remaining = max(0, math.floor((quota.period - (new_tat - now)) / t + 1e-9))
    return Decision(True, remaining, 0.0, new_tat - now), new_tat
