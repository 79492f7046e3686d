"""`python -m zfsapi serve` as a real process on a loopback port, answering on real ZFS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from tests.conftest import free_port


def test_serve_answers_on_loopback(pool, tmp_path):
    port = free_port()
    env = {**os.environ, "ZFSAPI_SERVER__HTTP__PORT": str(port)}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/", json={"jsonrpc": "2.0", "method": "pool_list", "id": 1},
                               timeout=30)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.5)
        assert pool in r.json()["result"]["pools"]
        assert re.fullmatch("[0-9a-f]{32}", r.headers["x-request-id"])
        h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)
        assert h.status_code == 200
        rebinding = httpx.post(f"http://127.0.0.1:{port}/", headers={"Host": "attacker.example"},
                               json={"jsonrpc": "2.0", "method": "pool_list", "id": 1}, timeout=30)
        assert rebinding.status_code == 421
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    lines = (tmp_path / "server.log").read_text().splitlines()
    assert any('"request_id"' in line for line in lines), lines[-5:]
