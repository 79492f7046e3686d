"""Alert webhooks: every change of an alert (raised, cleared, changed) POSTed as JSON to each configured hook
that takes its kind and severity. Delivery runs in the background, one queue per hook, in order: a slow or
failing hook never holds up the checks or another hook. A try that fails (no answer, 5xx, 429) is retried with
exponential backoff; a refusal (other 4xx) or a redirect (never followed) is not. The hook's URL is logged
without its userinfo and query, which may carry secrets; an exception's text, which may quote the URL, never."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx

from zfsapi.domain.alerts import AlertChange, severity_at_least

log = logging.getLogger("zfsapi.alerts")
QUEUE_LIMIT = 1000  # changes waiting per hook; past it the oldest is dropped (and logged)


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    kinds: tuple[str, ...] = ()  # empty: every kind
    min_severity: str = "warning"

    def takes(self, change: AlertChange) -> bool:
        f = change.alert.finding
        graver = f.severity if change.previous is None or severity_at_least(f.severity, change.previous) \
            else change.previous
        return (not self.kinds or f.kind in self.kinds) and severity_at_least(graver, self.min_severity)


def redacted(url: str) -> str:
    """The URL as it may be logged: scheme, host, port and path; no userinfo, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def payload(change: AlertChange) -> dict[str, Any]:
    """The JSON body of one delivery."""
    a, f = change.alert, change.alert.finding
    return {"event": change.change, "at": _iso(change.at), "previous_severity": change.previous,
            "alert": {"id": a.id, "kind": f.kind, "severity": f.severity, "subject": f.subject,
                      "message": f.message, "since": _iso(a.since)}}


class WebhookNotifier:
    """The AlertNotifier of the configured hooks. `deliver` queues and returns at once; `aclose` stops the
    deliveries still waiting (at shutdown) and closes the client."""

    def __init__(self, hooks: Sequence[Webhook], *, attempts: int = 6, timeout: float = 10.0,
                 first_delay: float = 1.0, max_delay: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._hooks = list(hooks)
        self._attempts, self._timeout = attempts, timeout
        self._first, self._max, self._sleep = first_delay, max_delay, sleep
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self.delivered = 0  # successful posts, for tests and logs

    def deliver(self, changes: Sequence[AlertChange]) -> None:
        for change in changes:
            body = payload(change)
            for i, hook in enumerate(self._hooks):
                if not hook.takes(change):
                    continue
                if self._queue(i).full():
                    self._drop(i, body)
                else:
                    self._queue(i).put_nowait(body)

    def _drop(self, i: int, body: dict[str, Any]) -> None:
        q = self._queue(i)
        dropped = q.get_nowait()
        log.warning("webhook queue full: oldest change dropped",
                    extra={"webhook": redacted(self._hooks[i].url), "alert": dropped["alert"]["id"]})
        q.put_nowait(body)

    def _queue(self, i: int) -> asyncio.Queue[dict[str, Any]]:
        if i not in self._queues:
            self._queues[i] = asyncio.Queue(QUEUE_LIMIT)
            self._workers.append(asyncio.create_task(self._work(i), name=f"zfsapi-webhook-{i}"))
        return self._queues[i]

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False,
                                             transport=self._transport)
        return self._client

    async def _work(self, i: int) -> None:
        queue = self._queues[i]
        while True:
            body = await queue.get()
            try:
                await self._post(self._hooks[i], body)
            except Exception:  # a bug in one delivery must not stop the hook's queue
                log.exception("webhook delivery failed", extra={"webhook": redacted(self._hooks[i].url)})
            finally:
                queue.task_done()

    async def _post(self, hook: Webhook, body: dict[str, Any]) -> bool:
        """One change to one hook, with its retries; whether it was taken."""
        where = redacted(hook.url)
        delay = self._first
        for attempt in range(1, self._attempts + 1):
            try:
                answer = await self._http().post(hook.url, json=body)
                status: int | None = answer.status_code
                reason = f"HTTP {status}"
            except httpx.HTTPError as exc:
                status, reason = None, type(exc).__name__
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                return True
            final = status is not None and status != 429 and status < 500
            log.warning("webhook delivery failed", extra={"webhook": where, "alert": body["alert"]["id"],
                                                          "attempt": attempt, "reason": reason,
                                                          "retrying": not final and attempt < self._attempts})
            if final:
                return False
            if attempt < self._attempts:
                await self._sleep(delay)
                delay = min(delay * 2, self._max)
        return False

    async def drain(self) -> None:
        """Wait until every queued change has been delivered or given up on."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def aclose(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers, self._queues = [], {}
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None
