"""`python -m zfsapi serve` as a real process on a loopback port, answering on real ZFS."""

from __future__ import annotations

import re

import httpx

from .servers import Server


def test_serve_answers_on_loopback(pool, tmp_path):
    with Server(tmp_path) as server:
        r = httpx.post(f"{server.url}/", json={"jsonrpc": "2.0", "method": "pool_list", "id": 1}, timeout=30)
        assert pool in r.json()["result"]["pools"]
        assert re.fullmatch("[0-9a-f]{32}", r.headers["x-request-id"])
        h = httpx.get(f"{server.url}/health", timeout=30)
        assert h.status_code == 200
        rebinding = httpx.post(f"{server.url}/", headers={"Host": "attacker.example"},
                               json={"jsonrpc": "2.0", "method": "pool_list", "id": 1}, timeout=30)
        assert rebinding.status_code == 421
    lines = server.log.read_text().splitlines()
    assert any('"request_id"' in line for line in lines), lines[-5:]
