"""The JSON-RPC 2.0 envelope (https://www.jsonrpc.org/specification) as msgspec Structs: a request, an error
object, a response and batches of them; and RpcError, an error already in wire form."""

from __future__ import annotations

from typing import Any, Union

import msgspec

Id = Union[int, float, str, None]
Params = Union[dict[str, Any], list[Any]]


class Request(msgspec.Struct, kw_only=True):
    """A call; without an id (`UNSET`, never encoded) it is a notification, answered with nothing."""

    jsonrpc: str = "2.0"
    method: str
    params: Params | msgspec.UnsetType = msgspec.UNSET
    id: Id | msgspec.UnsetType = msgspec.UNSET


class ErrorObject(msgspec.Struct, omit_defaults=True):
    """The `error` member of a response: zfsapi's codes are in `codes`, its data is always an object."""

    code: int
    message: str = ""
    data: dict[str, Any] | None = None


class Response(msgspec.Struct, kw_only=True):
    """The answer to a call: exactly one of `result` and `error` is set (`UNSET` marks the other)."""

    jsonrpc: str = "2.0"
    result: Any = msgspec.UNSET
    error: ErrorObject | msgspec.UnsetType = msgspec.UNSET
    id: Id = None


RequestBatch = list[Request]
ResponseBatch = list[Response]


class RpcError(Exception):
    """An error in wire form: a protocol error or an auth or rate-limit refusal raised by the server, or the
    error object a server answered a client with."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_object(self) -> ErrorObject:
        return ErrorObject(self.code, self.message, self.data)

    @classmethod
    def of(cls, error: ErrorObject) -> RpcError:
        return cls(error.code, error.message, error.data)
