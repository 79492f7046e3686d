"""The rate limit of requests and event streams: whose quota a request counts in, what it costs, and the
RateLimit headers (IETF draft-ietf-httpapi-ratelimit-headers) that tell the caller what is left."""

from __future__ import annotations

import math

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.ports import RateLimiter
from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import RateLimited
from zfsapi.domain.ratelimit import Decision, Quota

from .live import Access, Live
from .replies import Headers, retry_after


def policy_header(quota: Quota) -> tuple[bytes, bytes]:
    """The policy, quota q per window w (fixed for the app)."""
    return b"ratelimit-policy", f'"default";q={quota.limit};w={math.ceil(quota.period)}'.encode()


def rate_headers(policy: tuple[bytes, bytes], d: Decision) -> Headers:
    """The policy and what is left of it right now."""
    return [policy, (b"ratelimit", f'"default";r={d.remaining};t={math.ceil(d.reset)}'.encode())]


def limit_key(principal: Principal | None, passwordless: bool, peer: str) -> str:
    """Whose rate limit a request (or an event stream) counts in: a token's user, a local user by its uid-mapped
    name (its own quota), else the peer address."""
    if principal is not None:
        return ("l:" if passwordless else "u:") + principal.name
    return "a:" + peer


class Charge:
    """What one request costs in its caller's quota: `await charge(cost)` for each part (raises RateLimited when
    the quota is spent), and the headers of the last decision."""

    def __init__(self, limiter: RateLimiter, quota: Quota | None, key: str) -> None:
        self._limiter, self._quota, self._key = limiter, quota, key
        self.decision: Decision | None = None

    async def __call__(self, cost: int) -> None:
        if self._quota is None:
            return
        self.decision = await self._limiter.hit(self._key, self._quota, cost)
        if not self.decision.allowed:
            raise RateLimited(self.decision.retry_after)

    def headers(self) -> Headers:
        """The policy and what is left; none without a quota or before anything was charged."""
        if self._quota is None or self.decision is None:
            return []
        return rate_headers(policy_header(self._quota), self.decision)


class RateLimits:
    """The quotas as they are now (reloadable): each token's user and each address known only by its address
    has `rate_limit`, each local user without a token `local_limit` (None: no limit)."""

    def __init__(self, limiter: RateLimiter, metrics: Metrics, access: Live[Access]) -> None:
        self._limiter, self._metrics, self._access = limiter, metrics, access

    def charge(self, principal: Principal | None, peer: str) -> Charge:
        """The charge of one request by `principal` (None: nobody) from `peer`."""
        passwordless = principal is not None and principal.token_id is None
        access = self._access.current
        quota = access.local_limit if passwordless else access.rate_limit
        return Charge(self._limiter, quota, limit_key(principal, passwordless, peer))

    def refused(self) -> None:
        """Count a request refused for its rate limit."""
        self._metrics.rate_limited.labels("requests").inc()

    async def charge_stream(self, principal: Principal | None, peer: str, extra: Headers) -> None:
        """Count an event stream in its caller's rate limit, as a request is counted (raise RateLimited, with
        the headers of a 429 added to `extra`)."""
        charge = self.charge(principal, peer)
        try:
            await charge(1)
        except RateLimited as exc:
            self.refused()
            extra.extend(charge.headers() + retry_after(exc.retry_after))
            raise
