"""Domain errors to JSON-RPC error objects and back.

`encode`: the server's table from error types to (code, message, data); the most specific type in the MRO wins.
`decode`: a client's reading of another zfsapi's error object as the domain error its server raised (the codes
are stable API), every field cut short: what a remote answers reaches our errors only bounded."""

from __future__ import annotations

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
    ZfsApiError,
    ZfsCommandFailed,
    ZfsUnavailable,
)

from .codes import (
    ALREADY_EXISTS,
    BUSY,
    CONFLICT,
    INTERNAL_ERROR,
    INVALID_CREDENTIALS,
    INVALID_PARAMS,
    INVALID_TOKEN,
    NOT_FOUND,
    PERMISSION_DENIED,
    RATE_LIMITED,
    ZFS_FAILED,
    ZFS_UNAVAILABLE,
)
from .envelope import ErrorObject, RpcError

Describe = Callable[[Any], tuple[str, dict[str, Any]]]
MAX_TEXT = 300  # characters of a remote's text (a reason, a name) kept in a decoded error
MAX_STDERR = 1000  # ... of the stderr of its zfs
MAX_DATA = 8  # fields of a remote's conflict data kept, items of its lists


def retry_after(e: RateLimited) -> float | None:
    """Seconds, rounded up to the millisecond; None when the request can never fit (a batch over the limit)."""
    return None if math.isinf(e.retry_after) else math.ceil(e.retry_after * 1000) / 1000


# error type -> (code, the error's message and data)
_TABLE: dict[type[BaseException], tuple[int, Describe]] = {
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


def register(error_type: type[BaseException], code: int, describe: Describe) -> None:
    """Let an adapter add its own error types to the table: `describe` gives the message and data."""
    _TABLE[error_type] = (code, describe)


def _entry(error_type: type[BaseException]) -> tuple[int, Describe] | None:
    for cls in error_type.__mro__:
        entry = _TABLE.get(cls)
        if entry is not None:
            return entry
    return None


def code_of(error_type: type[BaseException]) -> int:
    """The code an error of this type is answered with (-32603 for types the table does not know)."""
    entry = _entry(error_type)
    return INTERNAL_ERROR if entry is None else entry[0]


def encode(exc: BaseException) -> RpcError | None:
    """The error in wire form; None for a type the table does not know (an internal error)."""
    if isinstance(exc, RpcError):
        return exc
    entry = _entry(type(exc))
    if entry is None:
        return None
    code, describe = entry
    message, data = describe(exc)
    return RpcError(code, message, data)


def short(value: Any, most: int = MAX_TEXT) -> str:
    """`value` as text of at most `most` characters (then "..." marks the cut)."""
    text = str(value)
    return text if len(text) <= most else text[:most] + "..."


def _scalar(value: Any, nested: bool = False) -> Any:
    """A remote's conflict datum as we keep it: a short string, a number, a bool, None, or a short list of those."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, list) and not nested:
        return [_scalar(v, True) for v in value[:MAX_DATA]]
    return short(value)


def _zfs_failed(error: ErrorObject, d: dict[str, Any]) -> ZfsCommandFailed:
    command = [short(x, 256) for x in (d.get("command") or [])[:24]] or ["zfs"]
    code = d.get("exit_code")
    return ZfsCommandFailed(command, code if isinstance(code, int) else -1,
                            short(d.get("stderr", error.message), MAX_STDERR))


def _busy(d: dict[str, Any]) -> ZfsApiError:
    dependents = [short(x) for x in (d.get("dependents") or [])[:MAX_DATA]]
    if dependents:
        return HasDependents(short(d.get("name", "")), short(d.get("reason", "")), dependents)
    return Busy(short(d.get("name", "")), short(d.get("reason", "")))


def decode(error: ErrorObject, where: str) -> ZfsApiError:
    """The domain error another zfsapi (`where`, e.g. "zfsapi at http://host:8545") answered with `error`.
    Errors about the caller's own values or rights, and ZFS being unavailable, name `where` in their reason; a
    code without a domain error of its own (protocol, auth, rate limit, internal) is ZfsUnavailable naming it."""
    d = error.data or {}

    def text(key: str, default: str = "") -> str:
        return short(d.get(key, default))

    if error.code == NOT_FOUND:
        return NotFound(text("kind", "dataset"), text("name"))
    if error.code == ALREADY_EXISTS:
        return AlreadyExists(text("kind", "dataset"), text("name"))
    if error.code == BUSY:
        return _busy(d)
    if error.code == ZFS_FAILED:
        return _zfs_failed(error, d)
    if error.code == CONFLICT:
        extra = {short(k, 40): _scalar(v) for k, v in list(d.items())[:MAX_DATA] if k != "reason"}
        return StateConflict(text("reason", error.message), **extra)
    if error.code == INVALID_PARAMS:
        return InvalidArgument(text("param", "params"), f"{where}: {text('reason', error.message)}")
    if error.code == PERMISSION_DENIED:
        dataset = d.get("dataset")
        return PermissionDenied(text("method"), short(dataset) if dataset else None, f"{where}: {text('reason')}")
    if error.code == ZFS_UNAVAILABLE:
        return ZfsUnavailable(f"{where}: {text('reason', error.message)}")
    return ZfsUnavailable(f"{where}: {short(error.message)} ({error.code})")
