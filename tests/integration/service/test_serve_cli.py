"""`zfsapi serve --port 0`: the kernel picks the port and the log says which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from .conftest import log_entries, serve_process


def test_port_0_picks_a_free_port_and_logs_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/state\nzfs: {{zfs: /nonexistent/zfs, zpool: /nonexistent/zpool}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    proc, log, url = serve_process(tmp_path, "--config", str(cfg), env=env)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        r = httpx.post(url + "/", json={"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}, timeout=30)
        assert r.status_code == 200 and r.json()["result"]["openrpc"]
        assert any(e.get("msg") == "configuration" and e.get("config") == str(cfg) for e in log_entries(log))
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_reload_finds_a_config_written_after_the_start(tmp_path):
    """Started without a config file (built-in defaults), then `zfsapi user add` writes ./config.yaml: SIGHUP
    reads it, as a start would have, and says which file it read."""
    import signal

    from argon2 import PasswordHasher

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")} | {
        "ZFSAPI_STATE_DIR": str(tmp_path / "state"), "ZFSAPI_ZFS__ZFS": "/nonexistent/zfs"}
    proc, log, url = serve_process(tmp_path, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    try:
        assert any(e.get("config") == "built-in defaults" for e in log_entries(log))
        digest = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("alice-pw")
        (tmp_path / "config.yaml").write_text(f"auth:\n  users:\n    alice: {{password_hash: '{digest}', "
                                              "role: admin}\n")
        proc.send_signal(signal.SIGHUP)
        while not (done := [e for e in log_entries(log) if e.get("msg") == "configuration reloaded"]):
            assert proc.poll() is None and time.monotonic() < deadline + 60, log.read_text()
            time.sleep(0.1)
        assert (done[0]["config"], done[0]["users"]) == ("config.yaml", 1), done
        r = httpx.post(url + "/", json={"jsonrpc": "2.0", "method": "auth_login", "id": 1,
                                        "params": {"username": "alice", "password": "alice-pw"}}, timeout=60)
        assert r.json()["result"]["token"], r.json()
    finally:
        proc.terminate()
        proc.wait(30)


def test_login_saves_a_token_that_later_commands_use_until_logout(tmp_path):
    """`zfsapi login` once, then more calls than the login limit allows logins (5 a minute), then `zfsapi logout`
    revokes the token on the server and forgets it; the password only ever on stdin."""
    from argon2 import PasswordHasher

    digest = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("alice-password")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/state\nzfs: {{zfs: /nonexistent/zfs, zpool: /nonexistent/zpool}}\n"
                   f"auth:\n  passwordless_localhost: false\n  users:\n    alice: {{password_hash: '{digest}', "
                   "role: admin}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")} | {
        "XDG_CONFIG_HOME": str(tmp_path / "home")}
    proc, log, url = serve_process(tmp_path, "--config", str(cfg), env=env)

    def zfsapi(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zfsapi", *args], input=stdin, text=True, capture_output=True,
                              timeout=120, env=env, cwd=tmp_path)

    try:
        r = zfsapi("call", "--url", url, "job_list")
        assert r.returncode == 1 and "(code -32001)" in r.stderr, r.stderr  # no token, no passwordless access
        r = zfsapi("login", "--url", url, "--user", "alice", stdin="wrong\n")
        assert r.returncode == 1 and "login refused" in r.stderr and "(code -32003)" in r.stderr
        r = zfsapi("login", "--url", url, "--user", "alice", stdin="alice-password\n")
        assert r.returncode == 0 and "logged in" in r.stderr and "alice-password" not in r.stderr, r.stderr
        saved = json.loads((tmp_path / "home" / "zfsapi" / "tokens.json").read_text())[url]["token"]
        for _ in range(7):  # more than 5 logins a minute would allow
            r = zfsapi("call", "--url", url, "job_list")
            assert r.returncode == 0 and json.loads(r.stdout)["total"] == 0, r.stderr
        r = zfsapi("logout", "--url", url)
        assert r.returncode == 0 and "logged out" in r.stderr, r.stderr
        assert url not in json.loads((tmp_path / "home" / "zfsapi" / "tokens.json").read_text())
        r = zfsapi("call", "--url", url, "--token", saved, "job_list")
        assert r.returncode == 1 and "(code -32002)" in r.stderr, r.stderr  # revoked on the server
        r = zfsapi("logout", "--url", url)
        assert r.returncode == 1 and "no saved token" in r.stderr
    finally:
        proc.terminate()
        proc.wait(30)
