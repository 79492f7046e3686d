"""The HTTP edge: passwordless loopback only with a loopback Host, no cross-site browser requests, JSON only,
no token for remote peers, body limits, /health and /metrics."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tests.conftest import http_client
from zfsapi.adapters.inbound.http.guard import check_passwordless, is_loopback_address, is_loopback_host
from zfsapi.bootstrap.lifecycle import http_app

CALL = {"jsonrpc": "2.0", "method": "pool_list", "id": 1}


@pytest.fixture
def app(container):
    return http_app(container)


@pytest.mark.parametrize("peer, host, headers, status, code", [
    ("127.0.0.1", "127.0.0.1:8545", {}, 200, None),
    ("127.0.0.2", "localhost:8545", {}, 200, None),
    ("::1", "[::1]:8545", {}, 200, None),
    ("::ffff:127.0.0.1", "localhost", {}, 200, None),
    ("127.0.0.1", "evil.example", {}, 421, None),
    ("127.0.0.1", "evil.example:8545", {}, 421, None),
    ("127.0.0.1", "127.0.0.1.evil.example", {}, 421, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://evil.example"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "null"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://localhost:3000"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://127.0.0.1:8545"}, 200, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Sec-Fetch-Site": "cross-site"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Sec-Fetch-Site": "same-site"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Sec-Fetch-Site": "same-origin"}, 200, None),
    # the peer decides, never X-Forwarded-For / Forwarded
    ("127.0.0.1", "127.0.0.1:8545", {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}, 200, None),
    ("192.0.2.10", "127.0.0.1:8545", {"X-Forwarded-For": "127.0.0.1"}, 200, -32001),
    ("192.0.2.10", "zfs.example", {}, 200, -32001),
    ("192.0.2.10", "zfs.example", {"Authorization": "Bearer abc.def.ghi"}, 200, -32002),
    # a Host is host [":" port] (RFC 9110), strictly: userinfo, paths, junk ports and padding are not loopback
    ("127.0.0.1", "127.0.0.1:8545@evil.example", {}, 421, None),
    ("127.0.0.1", "evil.example@127.0.0.1:8545", {}, 421, None),
    ("127.0.0.1", "127.0.0.1:8545/x", {}, 400, None),  # Litestar refuses it before the guard
    ("127.0.0.1", "127.0.0.1:85x5", {}, 421, None),
    ("127.0.0.1", "127.0.0.1:99999", {}, 421, None),
    ("127.0.0.1", "127.0.0.1:", {}, 421, None),
    ("127.0.0.1", "127.0.0.1 evil.example", {}, 400, None),  # likewise
    ("127.0.0.1", "[::1", {}, 421, None),
    ("127.0.0.1", "[::1]evil", {}, 421, None),
    ("127.0.0.1", "", {}, 421, None),
    # a malformed Origin is a refusal (403), never a 500
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://127.0.0.1:notaport"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://127.0.0.1:99999999999"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://[::1"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://127.0.0.1:8545@evil.example"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://evil.example@127.0.0.1:8545"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "javascript://127.0.0.1:8545"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "http://127.0.0.1:8545/path"}, 403, None),
    ("127.0.0.1", "127.0.0.1:8545", {"Origin": "HTTP://127.0.0.1:8545"}, 200, None),
    ("127.0.0.1", "localhost", {"Origin": "http://localhost"}, 200, None),
    ("127.0.0.1", "localhost", {"Origin": "http://localhost:80"}, 403, None),
])
async def test_access_decisions(app, peer, host, headers, status, code):
    async with http_client(app, peer=peer) as c:  # the Host header as sent, even where it is no valid URL
        r = await c.post("/", json=CALL, headers={"Host": host, **headers})
    assert r.status_code == status, r.text
    if status == 200:
        body = r.json()
        if code is None:
            assert body["result"]["pools"] == ["tank"]
        else:
            assert body["error"]["code"] == code
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
async def test_non_json_content_types_are_refused(app, ctype):
    async with http_client(app) as c:
        headers = {"Content-Type": ctype} if ctype else {}
        r = await c.post("/", content=b'{"jsonrpc":"2.0","method":"pool_list","id":1}', headers=headers)
    assert r.status_code == 415


async def test_json_with_charset_is_fine(app):
    async with http_client(app) as c:
        r = await c.post("/", content=b'{"jsonrpc":"2.0","method":"pool_list","id":1}',
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200 and r.json()["result"]["pools"] == ["tank"]


async def test_oversized_body_is_413(app):
    async with http_client(app) as c:
        r = await c.post("/", content=b"[" + b" " * (1 << 20) + b"]", headers={"Content-Type": "application/json"})
    assert r.status_code == 413


async def test_public_methods_need_no_token(app):
    async with http_client(app, peer="192.0.2.10", host="zfs.example") as c:
        r = await c.post("/", json={"jsonrpc": "2.0", "method": "rpc.discover", "id": 1})
    assert r.json()["result"]["openrpc"]


async def test_request_id_echoed_or_generated(app):
    async with http_client(app) as c:
        r = await c.post("/", json=CALL, headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        r = await c.post("/", json=CALL, headers={"X-Request-ID": "bad id\x01"})
        assert re.fullmatch("[0-9a-f]{32}", r.headers["x-request-id"])  # refused, a fresh one instead


async def test_health_and_metrics(app, fake_zfs):
    async with http_client(app) as c:
        h = await c.get("/health")
        assert h.status_code == 200
        body = h.json()
        assert body["status"] == "ok" and body["zfs"]["version"] == "2.3.2"
        assert body["pools"] == [{"name": "tank", "health": "ONLINE"}] and body["sessions"] == "memory"
        await c.post("/", json=CALL)
        m = await c.get("/metrics")
        assert m.headers["content-type"] == CONTENT_TYPE_LATEST  # the charset once: Prometheus 3 refuses it twice
        text = m.text
        assert 'zfsapi_rpc_requests_total{method="pool_list",outcome="ok"} 1.0' in text
        assert 'zfsapi_pool_health{health="ONLINE",pool="tank"} 1.0' in text
        assert "zfsapi_pool_size_bytes" in text
        bad = await c.get("/health", headers={"Host": "evil.example"})
        assert bad.status_code == 421


async def test_health_503_when_zfs_unavailable(container):
    from dependency_injector import providers

    from zfsapi.domain.errors import ZfsUnavailable

    class Broken:
        async def version(self):
            raise ZfsUnavailable("The ZFS modules are not loaded.")

    container.zfs.override(providers.Object(Broken()))
    async with http_client(http_app(container)) as c:
        h = await c.get("/health")
    assert h.status_code == 503 and h.json()["failing"] == "zfs"


def test_guard_helpers():
    assert is_loopback_address("127.8.9.10") and is_loopback_address("::1") and is_loopback_address("::ffff:127.0.0.1")
    assert not is_loopback_address("10.0.0.1") and not is_loopback_address(None) and not is_loopback_address("x")
    assert is_loopback_host("LOCALHOST:1") and is_loopback_host("[::1]") and not is_loopback_host("[::2]:1")
    assert check_passwordless(None, None, None).status == 421


async def test_only_post_on_the_rpc_route(app):
    async with http_client(app) as c:
        r = await c.get("/")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


async def test_notification_only_request_is_204_with_empty_body(app):
    async with http_client(app) as c:
        r = await c.post("/", json={"jsonrpc": "2.0", "method": "pool_list"})
    assert r.status_code == 204 and r.content == b"" and r.headers["x-request-id"]


@pytest.mark.parametrize("depth", [1_000, 20_000, 100_000])
@pytest.mark.parametrize("where", ["body", "params"])
async def test_deeply_nested_json_is_a_parse_error_not_a_500(app, depth, where):
    nested = "[" * depth + "]" * depth
    body = nested if where == "body" else f'{{"jsonrpc": "2.0", "method": "pool_list", "params": {nested}, "id": 1}}'
    async with http_client(app) as c:
        r = await c.post("/", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json() == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}


async def test_nesting_the_decoder_accepts_still_reaches_param_checks(app):
    body = '{"jsonrpc": "2.0", "method": "pool_list", "params": ' + "[" * 50 + "]" * 50 + ', "id": 1}'
    async with http_client(app) as c:
        r = await c.post("/", content=body, headers={"Content-Type": "application/json"})
    assert r.json()["error"]["code"] == -32602
