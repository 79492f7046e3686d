"""From a call's params to the domain's AccessRequest, the same way for every method: every parameter that
names a dataset, snapshot, bookmark or pool is checked, so a new method cannot forget one."""

from __future__ import annotations

from typing import Any

from zfsapi.domain.authz import AccessRequest, Action, authorize

from .errors import AUTH_REQUIRED, INVALID_TOKEN, RpcError
from .registry import CallContext, Method

# Parameters that always name a dataset, snapshot or bookmark in full.
_FULL_NAMES = ("dataset", "target", "new_name", "source", "snapshot1", "target_dataset")
# Parameters that are short names unless they carry '@' or '#' (then they name their own dataset).
_MAYBE_FULL = ("snapshot", "snapshot2", "from_snapshot", "bookmark")


def access_request(method: Method[Any], params: Any) -> AccessRequest:
    datasets = [v for f in _FULL_NAMES if isinstance(v := getattr(params, f, None), str)]
    datasets += [v for f in _MAYBE_FULL if isinstance(v := getattr(params, f, None), str) and ("@" in v or "#" in v)]
    pool = getattr(params, "pool", None)
    props = getattr(params, "properties", None)
    setting = list(props) if isinstance(props, dict) else []
    if method.action is Action.CHANGE and isinstance(prop := getattr(params, "property", None), str):
        setting.append(prop)
    return AccessRequest(
        method=method.name,
        action=method.action,
        datasets=tuple(datasets),
        pools=(pool,) if isinstance(pool, str) else (),
        properties=tuple(setting),
        force=getattr(params, "force", False) is True,
    )


async def require_permission(method: Method[Any], params: Any, ctx: CallContext) -> None:
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
