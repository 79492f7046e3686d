"""Real `zfsapi serve` processes over real sockets: the browser-facing guard on loopback, a peer that is not
loopback (a network namespace pair made by the test), and two uvicorn workers sharing one limit in Redis.
No ZFS on the host: a call that passes every check ends in -32014 (ZFS unavailable), which is how these
tests tell "let through" from "refused"."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import free_port

from .conftest import PASSWORDS, need_root, rpc, server, users


def test_browser_attacks_on_loopback(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with server(tmp_path, {"auth": {"users": users()}}, port=port):
        # let through (then ZFS is missing on this host)
        assert rpc(url, "pool_list").json()["error"]["code"] == -32014
        # DNS rebinding: the browser sends the attacker's host name
        assert rpc(url, "pool_list", headers={"Host": "evil.example"}).status_code == 421
        assert rpc(url, "pool_list", headers={"Host": f"evil.example:{port}"}).status_code == 421
        # CSRF: cross-site origin, fetch metadata, and a "simple" text/plain body
        assert rpc(url, "pool_list", headers={"Origin": "http://evil.example"}).status_code == 403
        assert rpc(url, "pool_list", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        r = httpx.post(url, content=b'{"jsonrpc":"2.0","method":"pool_list","id":1}',
                       headers={"Content-Type": "text/plain"}, timeout=30)
        assert r.status_code == 415
        # proxy headers from a loopback peer change nothing (still the passwordless local admin)
        r = rpc(url, "pool_list", headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"})
        assert r.json()["error"]["code"] == -32014
        # no CORS, ever
        pre = httpx.options(url, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert not any(h.startswith("access-control-") for h in pre.headers)
        assert not any(h.startswith("access-control-") for h in r.headers)


@pytest.fixture
def netns_pair():
    """Two namespaces joined by a veth pair: the server in one (10.231.N.1), the client in the other (.2)."""
    need_root("network namespaces")
    tag = uuid.uuid4().hex[:6]
    srv, cli = f"zs-{tag}", f"zc-{tag}"
    net = 10 + int(tag[:2], 16) % 200
    cmds = [
        ["ip", "netns", "add", srv], ["ip", "netns", "add", cli],
        ["ip", "link", "add", f"vs{tag}", "type", "veth", "peer", "name", f"vc{tag}"],
        ["ip", "link", "set", f"vs{tag}", "netns", srv], ["ip", "link", "set", f"vc{tag}", "netns", cli],
        ["ip", "-n", srv, "addr", "add", f"10.231.{net}.1/30", "dev", f"vs{tag}"],
        ["ip", "-n", cli, "addr", "add", f"10.231.{net}.2/30", "dev", f"vc{tag}"],
        ["ip", "-n", srv, "link", "set", f"vs{tag}", "up"], ["ip", "-n", cli, "link", "set", f"vc{tag}", "up"],
        ["ip", "-n", srv, "link", "set", "lo", "up"], ["ip", "-n", cli, "link", "set", "lo", "up"],
    ]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True)
        yield srv, cli, f"10.231.{net}.1"
    finally:
        subprocess.run(["ip", "netns", "del", srv], capture_output=True)
        subprocess.run(["ip", "netns", "del", cli], capture_output=True)


CLIENT = r"""
import json, sys, httpx
url, calls = sys.argv[1], json.loads(sys.argv[2])
out, token = [], None
for method, params, headers, use_token in calls:
    h = dict(headers)
    if use_token:
        h["Authorization"] = "Bearer " + token
    r = httpx.post(url, json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1}, headers=h, timeout=30)
    body = r.json()
    if method == "auth_login" and "result" in body:
        token = body["result"]["token"]
    out.append([r.status_code, body.get("error", {}).get("code"), "result" in body])
print(json.dumps(out))
"""


def test_a_peer_that_is_not_loopback_needs_a_token(tmp_path, netns_pair):
    srv, cli, address = netns_pair
    config = {"auth": {"users": users(), "passwordless_localhost": True, "allow_passwordless_with_public_bind": True}}
    calls = [
        ("pool_list", {}, {}, False),
        ("pool_list", {}, {"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1"}, False),
        ("pool_list", {}, {"Host": "localhost:8545"}, False),
        ("auth_login", {"username": "root", "password": "wrong"}, {}, False),
        ("auth_login", {"username": "viewer", "password": PASSWORDS["viewer"]}, {}, False),
        ("dataset_create", {"dataset": "tank/x"}, {}, True),
        ("pool_list", {}, {}, True),
        ("auth_logout", {}, {}, True),
        ("pool_list", {}, {}, True),
    ]
    with server(tmp_path, config, host=address, port=8545, netns=srv):
        out = subprocess.run(["ip", "netns", "exec", cli, sys.executable, "-c", CLIENT, f"http://{address}:8545/",
                              json.dumps(calls)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == [
        [200, -32001, False],  # no token
        [200, -32001, False],  # proxy headers claiming loopback count for nothing
        [200, -32001, False],  # nor does a loopback Host header
        [200, -32003, False],
        [200, None, True],
        [200, -32004, False],  # readonly may not create
        [200, -32014, False],  # authorized; this host has no ZFS
        [200, None, True],
        [200, -32002, False],  # logged out
    ]


def test_two_workers_sharing_redis_hold_one_limit(tmp_path, redis_url):
    port = free_port()
    rport = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    limit = 20
    config = {"redis": {"host": "127.0.0.1", "port": rport, "db": 1}, "server": {"http": {"workers": 2}},
              "rate_limit": {"requests": limit, "window": 3600, "local_requests": limit, "local_window": 3600}}
    with server(tmp_path, config, port=port) as log:
        url = f"http://127.0.0.1:{port}/"

        def one(_: int) -> int:
            # a fresh connection per request, so the kernel spreads them over both workers
            return httpx.post(url, json={"jsonrpc": "2.0", "method": "pool_list", "id": 1},
                              headers={"Connection": "close"}, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, range(2 * limit)))
    workers = set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))
    assert len(workers) == 2, log.read_text()
    assert (codes.count(200), codes.count(429)) == (limit, limit), codes  # one GCRA state in Redis for both
