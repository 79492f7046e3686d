"""JSON-RPC 2.0 dispatch (https://www.jsonrpc.org/specification): the body decoded once, params converted
strictly into per-method Structs, batches run concurrently, notifications answered with nothing."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Awaitable, Callable

import msgspec

from zfsapi.adapters.metrics import Metrics

from . import audit
from .errors import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    invalid_params,
    outcome_of,
    to_rpc_error,
)
from .registry import CallContext, Method, Registry

_MISSING: Any = object()
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()
_AT_PATH = re.compile(r" - at `\$\.([^.`\[]+)[^`]*`$")
_FIELD = re.compile(r"field `([^`]+)`")

# A policy hook runs before each call: it may raise RpcError or a domain error (auth, permissions).
Policy = Callable[[Method, Any, CallContext], Awaitable[None]]
# A background hook queues a call whose params say `background: true` as a job and answers for it.
Background = Callable[[Method, Any, CallContext], Awaitable[Any]]
# A charge hook runs once per request, after decoding and before any call, with the number of calls it holds
# (a batch of N costs N). Raising refuses the whole request: every call gets the error and none runs.
Charge = Callable[[int], Awaitable[None]]


def _response(id_: Any, result: Any = _MISSING, error: RpcError | None = None) -> dict[str, Any]:
    if error is not None:
        err: dict[str, Any] = {"code": error.code, "message": error.message}
        if error.data is not None:
            err["data"] = error.data
        return {"jsonrpc": "2.0", "error": err, "id": id_}
    return {"jsonrpc": "2.0", "result": result, "id": id_}


def param_error(exc: msgspec.ValidationError) -> RpcError:
    """msgspec's 'Expected `bool`, got `str` - at `$.recursive`' -> {param: 'recursive', reason: ...}."""
    text = str(exc)
    reason, param = text, ""
    if m := _AT_PATH.search(text):
        reason = text[: m.start()]
        param = m.group(1)
    if not param and (m := _FIELD.search(reason)):
        param = m.group(1)
    return invalid_params(param or "params", reason)


class Dispatcher:
    def __init__(self, registry: Registry, *, max_batch: int = 100, metrics: Metrics | None = None,
                 policy: Policy | None = None, background: Background | None = None) -> None:
        self.registry = registry
        self._background = background
        self.max_batch = max_batch
        self._metrics = metrics
        self._policy = policy
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    async def handle(self, body: bytes, ctx: CallContext, charge: Charge | None = None) -> bytes | None:
        """The response body, or None when nothing is owed (notifications only). An exception raised by
        `charge` propagates after nothing has run; `refusal_body` renders it."""
        try:
            message = _DECODER.decode(body)
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            return _ENCODER.encode(_response(None, error=RpcError(PARSE_ERROR, "Parse error")))
        if isinstance(message, list):
            if not message:
                return _ENCODER.encode(_response(None, error=RpcError(INVALID_REQUEST, "Invalid Request")))
            if len(message) > self.max_batch:
                error = RpcError(INVALID_REQUEST, "Invalid Request",
                                 {"reason": f"batch of {len(message)} exceeds the limit of {self.max_batch}"})
                return _ENCODER.encode(_response(None, error=error))
            if charge is not None:
                await charge(len(message))
            answers = await asyncio.gather(*(self._one(item, ctx) for item in message))
            replies = [a for a in answers if a is not None]
            return _ENCODER.encode(replies) if replies else None
        if charge is not None:
            await charge(1)
        answer = await self._one(message, ctx)
        return None if answer is None else _ENCODER.encode(answer)

    @staticmethod
    def refusal_body(body: bytes, exc: BaseException) -> bytes:
        """The answer to a request refused as a whole: the error once per call that has an id, in the request's
        shape (a batch gets an array), so clients match it to their ids."""
        error = to_rpc_error(exc, "request")
        try:
            message = _DECODER.decode(body)
        except (msgspec.DecodeError, RecursionError):
            message = None
        items = message if isinstance(message, list) else [message]
        ids = [x["id"] for x in items if isinstance(x, dict) and "id" in x]
        if not isinstance(message, list):
            return _ENCODER.encode(_response(ids[0] if ids else None, error=error))
        return _ENCODER.encode([_response(i, error=error) for i in ids] or [_response(None, error=error)])

    async def _one(self, request: Any, ctx: CallContext) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _response(None, error=RpcError(INVALID_REQUEST, "Invalid Request"))
        id_ = request.get("id", _MISSING)
        if id_ is not _MISSING and (isinstance(id_, bool) or not isinstance(id_, (str, int, float, type(None)))):
            return _response(None, error=RpcError(INVALID_REQUEST, "Invalid Request", {"reason": "invalid id"}))
        reply_id = None if id_ is _MISSING else id_
        method_name = request.get("method")
        params = request.get("params", _MISSING)
        if (
            request.get("jsonrpc") != "2.0"
            or not isinstance(method_name, str)
            or not (params is _MISSING or isinstance(params, (dict, list)))
        ):
            return _response(reply_id, error=RpcError(INVALID_REQUEST, "Invalid Request"))
        notification = id_ is _MISSING
        started = time.perf_counter()
        method = self.registry.get(method_name)
        label = method_name if method is not None else "unknown"
        args = None
        try:
            if method is None:
                raise RpcError(METHOD_NOT_FOUND, "Method not found", {"method": method_name[:200]})
            args = self._convert(method, {} if params is _MISSING else params)
            if self._policy is not None:
                await self._policy(method, args, ctx)
            if method.background and args.background and self._background is not None:
                result = await self._background(method, args, ctx)
            else:
                result = await method.handler(args, ctx)
        except Exception as exc:  # every error becomes a JSON-RPC error object; internals are logged only
            error = to_rpc_error(exc, label)
            self._observe(label, error.code, started, ctx)
            if method is not None and audit.audited(method):
                audit.record(method, args, params, ctx, error.code)
            return None if notification else _response(reply_id, error=error)
        self._observe(label, None, started, ctx)
        if audit.audited(method):
            audit.record(method, args, params, ctx, None)
        return None if notification else _response(reply_id, result)

    @staticmethod
    def _convert(method: Method, params: dict[str, Any] | list[Any]) -> Any:
        if isinstance(params, list):
            if len(params) > len(method.fields):
                raise invalid_params("params", f"{len(params)} positional params given, {method.name} takes "
                                               f"at most {len(method.fields)}")
            params = dict(zip(method.fields, params))
        try:
            return msgspec.convert(params, method.params, strict=True)
        except msgspec.ValidationError as exc:
            raise param_error(exc) from None

    def _observe(self, method: str, code: int | None, started: float, ctx: CallContext) -> None:
        ctx.calls.append((method, code))  # for the request's access line
        if self._metrics is None:
            return
        outcome = outcome_of(code)
        children = self._children.get((method, outcome))
        if children is None:  # label lookups are cached: the label set is bounded by the registry
            children = (self._metrics.rpc_requests.labels(method, outcome),
                        self._metrics.rpc_latency.labels(method, outcome))
            self._children[(method, outcome)] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)
