"""auth_login / auth_logout. auth_login is public, with its own per-peer limit against password guessing."""

from __future__ import annotations

from typing import Annotated, Callable, Literal

from msgspec import Meta

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.auth import IssuedToken, Login, Logout
from zfsapi.application.ports import RateLimiter
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import InvalidCredentials, RateLimited
from zfsapi.domain.ratelimit import Quota

from .method_common import iso
from .registry import CallContext, Params, Registry, Result, Table

AUTH = Table()


class AuthLogin(Params, frozen=True, forbid_unknown_fields=True):
    username: Annotated[str, Meta(min_length=1, max_length=256, description="The user's name.")]
    password: Annotated[str, Meta(max_length=4096, description="The user's password.")]


class AuthLogout(Params, frozen=True, forbid_unknown_fields=True):
    all_sessions: Annotated[bool, Meta(
        description="Also revoke every other token of this user issued until now.")] = False


class LoginResult(Result, frozen=True, kw_only=True):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int  # seconds
    expires_at: str  # ISO 8601 UTC


class LogoutResult(Result, frozen=True, kw_only=True):
    logged_out: Literal[True] = True
    revoked: bool  # false for a passwordless caller: it has no token


class LimitedLogin:
    """Exchange a username and password for a short-lived bearer token; attempts are limited per peer.

    Raises:
        InvalidCredentials: no such user, a wrong password, or logins are off (all alike).
        RateLimited: this peer tried too often.
    """

    def __init__(self, login: Login, limiter: RateLimiter, quota: Callable[[], Quota | None], metrics: Metrics) -> None:
        self._login, self._limiter, self._quota, self._metrics = login, limiter, quota, metrics  # quota: the current

    async def execute(self, *, peer: str, username: str, password: str) -> IssuedToken:
        quota = self._quota()
        if quota is not None:
            decision = await self._limiter.hit("login:" + peer, quota)
            if not decision.allowed:
                self._metrics.rate_limited.labels("login").inc()
                raise RateLimited(decision.retry_after)
        try:
            issued = await self._login.execute(username=username, password=password)
        except InvalidCredentials:
            self._metrics.logins.labels("refused").inc()
            raise
        self._metrics.logins.labels("ok").inc()
        return issued


@AUTH.method(Action.SELF, public=True, errors=(InvalidCredentials, RateLimited))
async def auth_login(uc: LimitedLogin, p: AuthLogin, ctx: CallContext) -> LoginResult:
    issued = await uc.execute(peer=ctx.peer, username=p.username, password=p.password)
    return LoginResult(token=issued.token, expires_in=round(issued.expires_at - issued.issued_at),
                       expires_at=iso(issued.expires_at))


@AUTH.method(Action.SELF)
async def auth_logout(uc: Logout, p: AuthLogout, ctx: CallContext) -> LogoutResult:
    assert ctx.principal is not None  # the policy lets no anonymous call through
    return LogoutResult(revoked=await uc.execute(principal=ctx.principal, all_sessions=p.all_sessions))


def register_auth(registry: Registry, login: Login, logout: Logout, limiter: RateLimiter,
                  quota: Callable[[], Quota | None], metrics: Metrics) -> None:
    use_cases = {LimitedLogin: LimitedLogin(login, limiter, quota, metrics), Logout: logout}
    registry.include(AUTH, use_cases.__getitem__)
