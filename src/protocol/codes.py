"""The JSON-RPC error codes zfsapi answers with (api-contract "Errors"), what each means, and how they group."""

from __future__ import annotations

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

AUTH_CODES = frozenset({AUTH_REQUIRED, INVALID_TOKEN, INVALID_CREDENTIALS})
# -32010 and below in the implementation-defined range: the call ran and met a state that failed it
_RAN_AND_FAILED = range(-32099, NOT_FOUND + 1)

# The outcome label of metrics and access lines: callers' mistakes, auth refusals and ZFS failures apart.
_OUTCOMES = {AUTH_REQUIRED: "auth", INVALID_TOKEN: "auth", INVALID_CREDENTIALS: "auth", PERMISSION_DENIED: "auth",
             ZFS_FAILED: "zfs_error", ZFS_UNAVAILABLE: "zfs_error", INTERNAL_ERROR: "internal"}


def outcome_of(code: int | None) -> str:
    """ok, auth, zfs_error, internal, or client_error (bad params, not found, exists, busy, conflict...)."""
    return "ok" if code is None else _OUTCOMES.get(code, "client_error")


def refused(code: int) -> bool:
    """Whether a call answered with `code` was turned away (malformed, unknown method, bad params, no or bad
    credentials, not allowed, over a limit) rather than failed while it ran (-32010 to -32099, and -32603)."""
    return code != INTERNAL_ERROR and code not in _RAN_AND_FAILED
