"""`zfsapi serve --port 0`: the kernel picks the port and the log says which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx


def test_port_0_picks_a_free_port_and_logs_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/state\nzfs: {{zfs: /nonexistent/zfs, zpool: /nonexistent/zpool}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve", "--config", str(cfg), "--port", "0"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # generous: the machine may be busy
        url = None
        while url is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            for line in log.read_text().splitlines():
                if line.startswith("{") and json.loads(line).get("msg") == "listening":
                    url = json.loads(line)["url"]
            time.sleep(0.1)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        r = httpx.post(url + "/", json={"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}, timeout=30)
        assert r.status_code == 200 and r.json()["result"]["openrpc"]
        entries = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        assert any(e.get("msg") == "configuration" and e.get("config") == str(cfg) for e in entries)
    finally:
        proc.terminate()
        proc.wait(30)


def _log_entries(log):
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


def test_a_reload_finds_a_config_written_after_the_start(tmp_path):
    """Started without a config file (built-in defaults), then `zfsapi user add` writes ./config.yaml: SIGHUP
    reads it, as a start would have, and says which file it read."""
    import signal

    from argon2 import PasswordHasher

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")} | {
        "ZFSAPI_STATE_DIR": str(tmp_path / "state"), "ZFSAPI_ZFS__ZFS": "/nonexistent/zfs"}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve", "--port", "0"], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (url := next((e["url"] for e in _log_entries(log) if e.get("msg") == "listening"), None)):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert any(e.get("config") == "built-in defaults" for e in _log_entries(log))
        digest = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("alice-pw")
        (tmp_path / "config.yaml").write_text(f"auth:\n  users:\n    alice: {{password_hash: '{digest}', "
                                              "role: admin}\n")
        proc.send_signal(signal.SIGHUP)
        while not (done := [e for e in _log_entries(log) if e.get("msg") == "configuration reloaded"]):
            assert proc.poll() is None and time.monotonic() < deadline + 60, log.read_text()
            time.sleep(0.1)
        assert (done[0]["config"], done[0]["users"]) == ("config.yaml", 1), done
        r = httpx.post(url + "/", json={"jsonrpc": "2.0", "method": "auth_login", "id": 1,
                                        "params": {"username": "alice", "password": "alice-pw"}}, timeout=60)
        assert r.json()["result"]["token"], r.json()
    finally:
        proc.terminate()
        proc.wait(30)
