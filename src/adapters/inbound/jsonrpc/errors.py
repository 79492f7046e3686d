"""The one table from error types to JSON-RPC codes; the most specific type in the MRO wins."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    StateConflict,
    ZfsCommandFailed,
    ZfsUnavailable,
)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RATE_LIMITED = -32000
AUTH_REQUIRED = -32001
INVALID_TOKEN = -32002
INVALID_CREDENTIALS = -32003
PERMISSION_DENIED = -32004
NOT_FOUND = -32010
ALREADY_EXISTS = -32011
BUSY = -32012
ZFS_FAILED = -32013
ZFS_UNAVAILABLE = -32014
CONFLICT = -32015

log = logging.getLogger("zfsapi.rpc")


class RpcError(Exception):
    """An error already in wire form (protocol errors, auth and rate-limit refusals)."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def invalid_params(param: str, reason: str) -> RpcError:
    return RpcError(INVALID_PARAMS, "Invalid params", {"param": param, "reason": reason})


_TABLE: dict[type[BaseException], Callable[[Any], RpcError]] = {
    RpcError: lambda e: e,
    InvalidArgument: lambda e: invalid_params(e.param, e.reason),
    PermissionDenied: lambda e: RpcError(PERMISSION_DENIED, e.message,
                                           {"method": e.method, "dataset": e.dataset, "reason": e.reason}),
    NotFound: lambda e: RpcError(NOT_FOUND, e.message, {"kind": e.kind, "name": e.name}),
    AlreadyExists: lambda e: RpcError(ALREADY_EXISTS, e.message, {"kind": e.kind, "name": e.name}),
    HasDependents: lambda e: RpcError(
        BUSY, e.message, {"name": e.name, "reason": e.reason, "dependents": e.dependents}
    ),
    Busy: lambda e: RpcError(BUSY, e.message, {"name": e.name, "reason": e.reason, "dependents": []}),
    ZfsCommandFailed: lambda e: RpcError(
        ZFS_FAILED, e.message, {"command": e.command, "exit_code": e.exit_code, "stderr": e.stderr}
    ),
    ZfsUnavailable: lambda e: RpcError(ZFS_UNAVAILABLE, e.message, {"reason": e.reason}),
    StateConflict: lambda e: RpcError(CONFLICT, e.message, {"reason": e.reason, **e.details}),
    InvalidCredentials: lambda e: RpcError(INVALID_CREDENTIALS, "Invalid credentials", {}),
    InvalidToken: lambda e: RpcError(INVALID_TOKEN, "Invalid token", {}),
    RateLimited: lambda e: RpcError(RATE_LIMITED, "Rate limit exceeded", {"retry_after": retry_after(e)}),
    ServiceUnavailable: lambda e: RpcError(INTERNAL_ERROR, e.message, {"service": e.service}),
}


def retry_after(e: RateLimited) -> float | None:
    """Seconds, rounded up to the millisecond; None when the request can never fit (a batch over the limit)."""
    return None if math.isinf(e.retry_after) else math.ceil(e.retry_after * 1000) / 1000


def register(error_type: type[BaseException], convert: Callable[[Any], RpcError]) -> None:
    """Let another adapter (auth, streams) add its error types to the table."""
    _TABLE[error_type] = convert


def to_rpc_error(exc: BaseException, method: str) -> RpcError:
    for cls in type(exc).__mro__:
        convert = _TABLE.get(cls)
        if convert is not None:
            return convert(exc)
    log.exception("unexpected error in %s", method, exc_info=exc)
    return RpcError(INTERNAL_ERROR, "Internal error", {})
