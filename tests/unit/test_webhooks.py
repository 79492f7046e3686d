"""Alert webhooks (adapters/outbound/alerts/webhooks.py) over httpx's MockTransport: the body, the hooks'
filters, retries with backoff, redirects never followed, secrets never logged."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from zfsapi.adapters.outbound.alerts.webhooks import Webhook, WebhookNotifier, payload, redacted
from zfsapi.domain.alerts import Alert, AlertChange, Finding

SECRET_URL = "https://user:pa55word@hooks.example:8443/alert?token=t0psecret"


def change(kind: str = "pool_health", severity: str = "critical", what: str = "raised",
           previous: str | None = None) -> AlertChange:
    f = Finding(kind, "tank", severity, "pool tank is FAULTED")  # type: ignore[arg-type]
    return AlertChange(what, Alert(f, 1_800_000_000.0), 1_800_000_060.0, previous)  # type: ignore[arg-type]


class Hook:
    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers={"location": "http://elsewhere/"} if answer == 302 else {})


def notifier(hook: Hook, hooks: list[Webhook], delays: list[float], attempts: int = 4) -> WebhookNotifier:
    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return WebhookNotifier(hooks, attempts=attempts, transport=httpx.MockTransport(hook), sleep=sleep)


async def test_the_body_and_one_post_per_change() -> None:
    hook, delays = Hook(), []
    n = notifier(hook, [Webhook("http://hooks.example/a")], delays)
    n.deliver([change()])
    await n.drain()
    await n.aclose()
    assert len(hook.seen) == 1
    request = hook.seen[0]
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == payload(change()) == {
        "event": "raised", "at": "2027-01-15T08:01:00Z", "previous_severity": None,
        "alert": {"id": "pool_health:tank", "kind": "pool_health", "severity": "critical", "subject": "tank",
                  "message": "pool tank is FAULTED", "since": "2027-01-15T08:00:00Z"}}


def test_hooks_filter_by_kind_and_severity() -> None:
    every, pools, critical = Webhook("http://a"), Webhook("http://b", ("pool_health",)), \
        Webhook("http://c", (), "critical")
    assert every.takes(change("scrub_age", "warning"))
    assert pools.takes(change()) and not pools.takes(change("scrub_age"))
    assert not critical.takes(change(severity="warning"))
    assert critical.takes(change(severity="warning", what="changed", previous="critical"))  # it hears the drop


async def test_failures_are_retried_with_backoff_and_refusals_are_not() -> None:
    hook, delays = Hook(503, httpx.ConnectError("down"), 429, 200), []
    n = notifier(hook, [Webhook("http://hooks.example/a")], delays, attempts=5)
    n.deliver([change()])
    await n.drain()
    assert len(hook.seen) == 4 and delays == [1.0, 2.0, 4.0] and n.delivered == 1
    hook.answers, delays[:] = [400], []
    n.deliver([change(what="cleared")])
    await n.drain()
    assert len(hook.seen) == 5 and delays == [] and n.delivered == 1
    await n.aclose()


async def test_tries_are_bounded_and_the_backoff_capped() -> None:
    hook, delays = Hook(*[500] * 20), []
    n = WebhookNotifier([Webhook("http://h")], attempts=9, max_delay=16.0, transport=httpx.MockTransport(hook),
                        sleep=lambda s: _record(delays, s))
    n.deliver([change()])
    await n.drain()
    await n.aclose()
    assert len(hook.seen) == 9 and delays == [1, 2, 4, 8, 16, 16, 16, 16]


async def _record(delays: list[float], seconds: float) -> None:
    delays.append(seconds)


async def test_a_redirect_is_not_followed() -> None:
    hook, delays = Hook(302), []
    n = notifier(hook, [Webhook("http://hooks.example/a")], delays)
    n.deliver([change()])
    await n.drain()
    await n.aclose()
    assert [str(r.url) for r in hook.seen] == ["http://hooks.example/a"] and n.delivered == 0


async def test_a_slow_hook_holds_up_no_other(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    gate = asyncio.Event()
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "slow":
            await gate.wait()
        return httpx.Response(200)

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await answer(request)

    n = WebhookNotifier([Webhook("http://slow/"), Webhook("http://fast/")], transport=Transport())
    n.deliver([change()])  # returns at once
    deadline = asyncio.get_running_loop().time() + 30
    while n.delivered < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert n.delivered == 1 and "fast" in seen
    gate.set()
    await n.drain()
    await n.aclose()
    assert n.delivered == 2


async def test_secrets_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    hook, delays = Hook(httpx.ConnectError(f"cannot reach {SECRET_URL}"), 500), []
    n = notifier(hook, [Webhook(SECRET_URL)], delays, attempts=2)
    with caplog.at_level(logging.DEBUG, logger="zfsapi.alerts"):
        n.deliver([change()])
        await n.drain()
    await n.aclose()
    assert len(hook.seen) == 2
    assert hook.seen[0].headers["authorization"].startswith("Basic ")  # the userinfo is still used
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "hooks.example" in text and "pa55word" not in text and "t0psecret" not in text
    assert redacted(SECRET_URL) == "https://hooks.example:8443/alert"
