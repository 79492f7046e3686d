"""The JSON-RPC 2.0 client over HTTP (httpx, async): calls to POST / and the job events of GET
/jobs/{id}/events. An error object answered is raised as RpcError; no answer at all (the server out of reach,
an HTTP status or a body that is not a JSON-RPC answer) as NoAnswer, saying why. Credentials are the caller's:
each call takes the bearer token to send."""

from __future__ import annotations

import enum
import itertools
import os
from typing import Any, AsyncGenerator, AsyncIterator, Mapping
from urllib.parse import quote

import httpx
import msgspec

from .envelope import ErrorObject, Params, Request, Response, RpcError

Event = tuple[str, dict[str, Any]]  # an event's name and its data (a job record)
EVENTS_TIMEOUT = httpx.Timeout(30.0, read=None)  # a queued job may wait long without a change to report


class Why(enum.Enum):
    UNREACHABLE = "unreachable"  # the exchange failed (no connection, a timeout, a reset)
    LOST = "lost"  # an event stream failed, before or after it started
    STATUS = "status"  # an HTTP status whose body is not an answer (a client that takes only 200)
    TOO_LARGE = "too large"  # the body is over the client's bound
    NOT_JSON = "not JSON"
    NOT_OBJECT = "not an object"
    NO_OUTCOME = "no outcome"  # an object with neither `result` nor `error`
    MALFORMED = "malformed"  # its `error` is not a JSON-RPC error object


class NoAnswer(Exception):
    """No JSON-RPC answer from `url`: `why`, with the HTTP `status`, the transport's `cause` or a `detail`."""

    def __init__(self, why: Why, url: str, *, status: int | None = None, cause: httpx.HTTPError | None = None,
                 detail: str = "") -> None:
        self.why, self.url, self.status, self.cause, self.detail = why, url, status, cause, detail
        super().__init__(self._text())

    def _text(self) -> str:
        if self.why is Why.UNREACHABLE:
            return f"cannot reach {self.url}: {_reason(self.cause)}"
        if self.why is Why.LOST:
            return f"lost {self.url}: {_reason(self.cause)}"
        if self.why is Why.TOO_LARGE:
            return f"{self.url} answered more than {self.detail} bytes"
        tail = {Why.STATUS: "", Why.NOT_JSON: ", not JSON-RPC", Why.NOT_OBJECT: ", not a JSON-RPC object",
                Why.NO_OUTCOME: " without a JSON-RPC result",
                Why.MALFORMED: f", not a JSON-RPC error object: {self.detail}"}[self.why]
        return f"{self.url} answered HTTP {self.status}{tail}"


def _reason(cause: BaseException | None) -> str:
    """The operating system's reason under a transport error ("[Errno 111] Connection refused"), which the
    async transport words as "All connection attempts failed"; else the error's own words."""
    seen: BaseException | None = cause
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"[Errno {seen.errno}] {os.strerror(seen.errno)}"
        seen = seen.__cause__ or seen.__context__
    return str(cause)


def outcome(content: bytes, status: int, url: str) -> Any:
    """The result of the JSON-RPC answer `content`. Raises RpcError (it is an error) or NoAnswer."""
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        raise NoAnswer(Why.NOT_JSON, url, status=status) from None
    if not isinstance(body, dict):
        raise NoAnswer(Why.NOT_OBJECT, url, status=status)
    if "error" not in body and "result" not in body:
        raise NoAnswer(Why.NO_OUTCOME, url, status=status)
    try:
        response = msgspec.convert(body, Response)
    except msgspec.ValidationError as exc:
        raise NoAnswer(Why.MALFORMED, url, status=status, detail=str(exc)) from None
    if isinstance(response.error, ErrorObject):
        raise RpcError.of(response.error)
    return response.result


class RpcClient:
    """Calls to the zfsapi at `url` through `http` (owned by the caller, who closes it). `max_answer`: the most
    bytes of an answer read (None: no bound); `only_ok`: any HTTP status but 200 is NoAnswer, its body unread
    (a redirect is never followed either way: httpx does not by default)."""

    def __init__(self, http: httpx.AsyncClient, url: str, *, max_answer: int | None = None,
                 only_ok: bool = False) -> None:
        self.url = url.rstrip("/") + "/"
        self._http, self._max, self._only_ok = http, max_answer, only_ok
        self._ids = itertools.count(1)

    @staticmethod
    def _auth(bearer: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {bearer}"} if bearer else {}

    async def call(self, method: str, params: Params | None = None, *, bearer: str | None = None) -> Any:
        """The method's result. Raises RpcError (the server answered an error) or NoAnswer."""
        request = Request(method=method, params=params if params is not None else {}, id=next(self._ids))
        headers = {"Content-Type": "application/json", **self._auth(bearer)}
        try:
            async with self._http.stream("POST", self.url, headers=headers,
                                         content=msgspec.json.encode(request)) as r:
                if self._only_ok and r.status_code != 200:
                    raise NoAnswer(Why.STATUS, self.url, status=r.status_code)
                content = await self._read(r)
        except httpx.HTTPError as exc:
            raise NoAnswer(Why.UNREACHABLE, self.url, cause=exc) from None
        return outcome(content, r.status_code, self.url)

    async def _read(self, r: httpx.Response) -> bytes:
        """The body, read no further than the bound."""
        chunks, size = [], 0
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if self._max is not None and size > self._max:
                raise NoAnswer(Why.TOO_LARGE, self.url, status=r.status_code, detail=str(self._max))
            chunks.append(chunk)
        return b"".join(chunks)

    async def events(self, job_id: str, *, bearer: str | None = None) -> AsyncGenerator[Event, None]:
        """GET /jobs/{job_id}/events: (event name, job record) as the server sends them (`progress` on every
        change, `end` last), until the stream ends. Raises RpcError (no such job, not allowed, or the stream
        ended by an `error` event: the token revoked or expired) or NoAnswer."""
        url = f"{self.url}jobs/{quote(job_id, safe='')}/events"
        try:
            async with self._http.stream("GET", url, headers=self._auth(bearer), timeout=EVENTS_TIMEOUT) as r:
                if r.status_code != 200:
                    outcome(await self._read(r), r.status_code, self.url)
                    raise NoAnswer(Why.STATUS, url, status=r.status_code)
                async for name, payload in _server_sent(r.aiter_lines(), url):
                    if name == "error":  # the server ended the stream: this caller may no longer follow
                        raise RpcError.of(_error_object(payload, url))
                    yield name, payload
        except httpx.HTTPError as exc:
            raise NoAnswer(Why.LOST, url, cause=exc) from None


async def _server_sent(lines: AsyncIterator[str], url: str) -> AsyncIterator[Event]:
    """The events of a text/event-stream: (event name, its data read as a JSON object)."""
    name, data = "message", []
    async for line in lines:
        if line:
            field, _, value = line.partition(":")
            if field == "event":
                name = value.strip()
            elif field == "data":
                data.append(value.removeprefix(" "))
        elif data:
            try:
                payload = msgspec.json.decode("\n".join(data))
            except msgspec.DecodeError:
                raise NoAnswer(Why.NOT_JSON, url, status=200) from None
            if not isinstance(payload, dict):
                raise NoAnswer(Why.NOT_OBJECT, url, status=200)
            yield name, payload
            name, data = "message", []


def _error_object(payload: Mapping[str, Any], url: str) -> ErrorObject:
    try:
        return msgspec.convert(payload, ErrorObject)
    except msgspec.ValidationError as exc:
        raise NoAnswer(Why.MALFORMED, url, status=200, detail=str(exc)) from None
