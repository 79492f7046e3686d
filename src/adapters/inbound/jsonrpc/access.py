"""From a call's params to the domain's AccessRequest, the same way for every method: the params its row
declares as carrying names (datasets, snapshots, bookmarks, pools), properties being set or a force flag."""

from __future__ import annotations

from typing import Any

from zfsapi.domain.authz import AccessRequest, access_request as gather, authorize

from .errors import AUTH_REQUIRED, INVALID_TOKEN, RpcError
from .registry import CallContext, Method


def access_request(method: Method, params: Any) -> AccessRequest:
    return gather(method.name, method.action, [(kind, getattr(params, field)) for field, kind in method.carries])


async def require_permission(method: Method, params: Any, ctx: CallContext) -> None:
    """The dispatcher's policy: authenticated (unless the method is public), then role and dataset scope."""
    if method.public:
        return
    if ctx.principal is None:
        if ctx.auth_error is not None:
            raise ctx.auth_error
        if ctx.credentials_presented:
            raise RpcError(INVALID_TOKEN, "Invalid token")
        raise RpcError(AUTH_REQUIRED, "Authentication required")
    authorize(ctx.principal, access_request(method, params))
