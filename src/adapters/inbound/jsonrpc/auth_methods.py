"""auth_login / auth_logout. auth_login is public, with its own per-peer limit against password guessing."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from zfsapi.adapters.metrics import Metrics
from zfsapi.application.auth import Login, Logout
from zfsapi.application.ports import RateLimiter
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import InvalidCredentials, RateLimited
from zfsapi.domain.ratelimit import Quota

from .methods import iso
from .registry import CallContext, Params, Registry


class AuthLogin(Params, frozen=True, forbid_unknown_fields=True):
    username: Annotated[str, Meta(min_length=1, max_length=256)]
    password: Annotated[str, Meta(max_length=4096)]


class AuthLogout(Params, frozen=True, forbid_unknown_fields=True):
    all_sessions: bool = False  # also revoke every other token of this user issued until now


def register_auth(registry: Registry, login: Login, logout: Logout, limiter: RateLimiter, quota: Quota | None,
                  metrics: Metrics) -> None:
    async def auth_login(p: AuthLogin, ctx: CallContext) -> dict[str, Any]:
        if quota is not None:
            decision = await limiter.hit("login:" + ctx.peer, quota)
            if not decision.allowed:
                metrics.rate_limited.labels("login").inc()
                raise RateLimited(decision.retry_after)
        try:
            issued = await login.execute(username=p.username, password=p.password)
        except InvalidCredentials:
            metrics.logins.labels("refused").inc()
            raise
        metrics.logins.labels("ok").inc()
        return {"token": issued.token, "token_type": "Bearer",
                "expires_in": round(issued.expires_at - issued.issued_at), "expires_at": iso(issued.expires_at)}

    async def auth_logout(p: AuthLogout, ctx: CallContext) -> dict[str, Any]:
        assert ctx.principal is not None  # the policy lets no anonymous call through
        revoked = await logout.execute(principal=ctx.principal, all_sessions=p.all_sessions)
        return {"logged_out": True, "revoked": revoked}

    registry.add("auth_login", AuthLogin, auth_login, summary=Login.__doc__ or "", action=Action.SELF,
                 result=("token", "token_type", "expires_in", "expires_at"), public=True)
    registry.add("auth_logout", AuthLogout, auth_logout, summary=Logout.__doc__ or "", action=Action.SELF,
                 result=("logged_out", "revoked"))
