"""The server's side of the error codec: any exception raised by a call in wire form (zfsapi.protocol.codec's
table; an error the table does not know is logged and answered as an internal error). The codes and the table
themselves live in zfsapi.protocol, re-exported here for the inbound adapters."""

from __future__ import annotations

import logging

from zfsapi.protocol.codec import code_of, encode, register, retry_after
from zfsapi.protocol.codes import (
    ALREADY_EXISTS,
    AUTH_REQUIRED,
    BUSY,
    CONFLICT,
    INTERNAL_ERROR,
    INVALID_CREDENTIALS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    INVALID_TOKEN,
    MEANINGS,
    METHOD_NOT_FOUND,
    NOT_FOUND,
    PARSE_ERROR,
    PERMISSION_DENIED,
    RATE_LIMITED,
    ZFS_FAILED,
    ZFS_UNAVAILABLE,
    outcome_of,
)
from zfsapi.protocol.envelope import RpcError

__all__ = [
    "ALREADY_EXISTS", "AUTH_REQUIRED", "BUSY", "CONFLICT", "INTERNAL_ERROR", "INVALID_CREDENTIALS", "INVALID_PARAMS",
    "INVALID_REQUEST", "INVALID_TOKEN", "MEANINGS", "METHOD_NOT_FOUND", "NOT_FOUND", "PARSE_ERROR",
    "PERMISSION_DENIED", "RATE_LIMITED", "ZFS_FAILED", "ZFS_UNAVAILABLE", "RpcError", "code_of", "invalid_params",
    "outcome_of", "register", "retry_after", "to_rpc_error",
]

log = logging.getLogger("zfsapi.rpc")


def invalid_params(param: str, reason: str) -> RpcError:
    return RpcError(INVALID_PARAMS, "Invalid params", {"param": param, "reason": reason})


def to_rpc_error(exc: BaseException, method: str) -> RpcError:
    """`exc` in wire form; an error of a type the table does not know is logged (with `method`) and answered
    as an internal error, saying nothing more."""
    error = encode(exc)
    if error is not None:
        return error
    log.exception("unexpected error in %s", method, exc_info=exc)
    return RpcError(INTERNAL_ERROR, "Internal error", {})
