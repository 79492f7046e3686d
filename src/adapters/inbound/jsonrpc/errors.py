"""The one table from error types to JSON-RPC codes; the most specific type in the MRO wins."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    FileFailed,
    HasDependents,
    InvalidArgument,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    StateConflict,
    TooManyJobs,
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


# What each code means, in one line: the message of rpc.discover's error objects.
MEANINGS = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    RATE_LIMITED: "Rate limit exceeded",
    AUTH_REQUIRED: "Authentication required",
    INVALID_TOKEN: "Invalid token",
    INVALID_CREDENTIALS: "Invalid credentials",
    PERMISSION_DENIED: "Permission denied",
    NOT_FOUND: "Not found",
    ALREADY_EXISTS: "Already exists",
    BUSY: "Busy or has dependents",
    ZFS_FAILED: "ZFS refused or failed",
    ZFS_UNAVAILABLE: "ZFS unavailable",
    CONFLICT: "Conflict with current state",
}

# The outcome label of metrics and access lines: callers' mistakes, auth refusals and ZFS failures apart.
_OUTCOMES = {AUTH_REQUIRED: "auth", INVALID_TOKEN: "auth", INVALID_CREDENTIALS: "auth", PERMISSION_DENIED: "auth",
             ZFS_FAILED: "zfs_error", ZFS_UNAVAILABLE: "zfs_error", INTERNAL_ERROR: "internal"}


def outcome_of(code: int | None) -> str:
    """ok, auth, zfs_error, internal, or client_error (bad params, not found, exists, busy, conflict...)."""
    return "ok" if code is None else _OUTCOMES.get(code, "client_error")


# error type -> (code, the error's message and data)
_TABLE: dict[type[BaseException], tuple[int, Callable[[Any], tuple[str, dict[str, Any]]]]] = {
    InvalidArgument: (INVALID_PARAMS, lambda e: ("Invalid params", {"param": e.param, "reason": e.reason})),
    PermissionDenied: (PERMISSION_DENIED,
                       lambda e: (e.message, {"method": e.method, "dataset": e.dataset, "reason": e.reason})),
    NotFound: (NOT_FOUND, lambda e: (e.message, {"kind": e.kind, "name": e.name})),
    AlreadyExists: (ALREADY_EXISTS, lambda e: (e.message, {"kind": e.kind, "name": e.name})),
    HasDependents: (BUSY, lambda e: (e.message, {"name": e.name, "reason": e.reason, "dependents": e.dependents})),
    Busy: (BUSY, lambda e: (e.message, {"name": e.name, "reason": e.reason, "dependents": []})),
    ZfsCommandFailed: (ZFS_FAILED,
                       lambda e: (e.message, {"command": e.command, "exit_code": e.exit_code, "stderr": e.stderr})),
    FileFailed: (ZFS_FAILED, lambda e: (e.message, {"param": e.param, "path": e.path, "operation": e.operation,
                                                    "reason": e.reason, "errno": e.errno_name})),
    ZfsUnavailable: (ZFS_UNAVAILABLE, lambda e: (e.message, {"reason": e.reason})),
    StateConflict: (CONFLICT, lambda e: (e.message, {"reason": e.reason, **e.details})),
    InvalidCredentials: (INVALID_CREDENTIALS, lambda e: ("Invalid credentials", {})),
    InvalidToken: (INVALID_TOKEN, lambda e: ("Invalid token", {})),
    RateLimited: (RATE_LIMITED, lambda e: ("Rate limit exceeded", {"retry_after": retry_after(e)})),
    ServiceUnavailable: (INTERNAL_ERROR, lambda e: (e.message, {"service": e.service})),
    TooManyJobs: (RATE_LIMITED, lambda e: ("Too many jobs", {"retry_after": None, "reason": e.message,
                                                             "limit": e.limit, "count": e.count})),
}


def retry_after(e: RateLimited) -> float | None:
    """Seconds, rounded up to the millisecond; None when the request can never fit (a batch over the limit)."""
    return None if math.isinf(e.retry_after) else math.ceil(e.retry_after * 1000) / 1000


def register(error_type: type[BaseException], code: int,
             describe: Callable[[Any], tuple[str, dict[str, Any]]]) -> None:
    """Let another adapter add its error types to the table: `describe` gives the message and data."""
    _TABLE[error_type] = (code, describe)


def _entry(error_type: type[BaseException]) -> tuple[int, Callable[[Any], tuple[str, dict[str, Any]]]] | None:
    for cls in error_type.__mro__:
        entry = _TABLE.get(cls)
        if entry is not None:
            return entry
    return None


def code_of(error_type: type[BaseException]) -> int:
    """The code an error of this type is answered with (-32603 for types the table does not know)."""
    entry = _entry(error_type)
    return INTERNAL_ERROR if entry is None else entry[0]


def to_rpc_error(exc: BaseException, method: str) -> RpcError:
    if isinstance(exc, RpcError):
        return exc
    entry = _entry(type(exc))
    if entry is not None:
        code, describe = entry
        message, data = describe(exc)
        return RpcError(code, message, data)
    log.exception("unexpected error in %s", method, exc_info=exc)
    return RpcError(INTERNAL_ERROR, "Internal error", {})
