"""The client for callers without an event loop (the command line): RpcClient run on an event loop of its
own, kept with its connections for the client's life. Ctrl-C while a call waits cancels it and raises
KeyboardInterrupt, as it would in blocking code."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Iterator

import httpx

from .client import Event, RpcClient
from .envelope import Params


class BlockingClient:
    """`with BlockingClient(url, token) as c: c.call("pool_list")`. `token`: the bearer sent with each call
    (set it after a login)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 330.0) -> None:
        self.token = token
        self._runner = asyncio.Runner()
        self._http = httpx.AsyncClient(timeout=timeout)
        self._rpc = RpcClient(self._http, url)

    @property
    def url(self) -> str:
        return self._rpc.url

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._runner.run(self._http.aclose())
        finally:
            self._runner.close()

    def call(self, method: str, params: Params | None = None) -> Any:
        """The method's result. Raises RpcError (the server answered an error) or NoAnswer."""
        return self._runner.run(self._rpc.call(method, params, bearer=self.token))

    def events(self, job_id: str) -> Iterator[Event]:
        """RpcClient.events, one event per step."""
        events = self._rpc.events(job_id, bearer=self.token)
        try:
            while (event := self._runner.run(_next(events))) is not None:
                yield event
        finally:
            self._runner.run(events.aclose())


async def _next(events: AsyncGenerator[Event, None]) -> Event | None:
    """The next event; None at the end."""
    return await anext(events, None)
