"""A real `zfsapi serve` run as an operator runs it: SIGHUP reloads users and limits while a keep-alive connection
stays open, systemd's notify socket hears READY/WATCHDOG/STOPPING, `zfsapi call` talks to it, and logging.file
gets the JSON lines."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

from .conftest import FAST


def wait_for(what: str, check, log: Path | None = None, seconds: float = 60):
    """Poll `check()` until it returns something truthy (generous deadline: the machine may be busy)."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: " + (log.read_text() if log else "")
        time.sleep(0.1)
    return result


def log_lines(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


@contextmanager
def serving(tmp_path: Path, config: dict, env: dict | None = None):
    """`python -m zfsapi serve` on a free port; yields (process, port, config path, log path)."""
    port = free_port()
    cfg = {"state_dir": str(tmp_path / "state"), "zfs": {"zfs": "/nonexistent/zfs", "zpool": "/nonexistent/zpool"},
           **config}
    cfg["server"] = {"http": {**config.get("server", {}).get("http", {}), "port": port}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "serve.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZFSAPI_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve", "--config", str(path)],
                                env=base | (env or {}), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("server up", lambda: proc.poll() is not None or any(e.get("msg") == "listening"
                                                                      for e in log_lines(log)), log)
        assert proc.poll() is None, log.read_text()
        yield proc, port, path, log
    finally:
        proc.terminate()
        proc.wait(30)


def post(conn: http.client.HTTPConnection, method: str, params: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    conn.request("POST", "/", json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}), headers)
    response = conn.getresponse()
    body = json.loads(response.read())
    return {"status": response.status, **body}


def reload(proc: subprocess.Popen, path: Path, config: dict, log: Path, count: int) -> None:
    path.write_text(yaml.safe_dump(config))
    proc.send_signal(signal.SIGHUP)
    wait_for("reloaded", lambda: sum(e.get("msg") == "configuration reloaded" for e in log_lines(log)) == count, log)


def test_sighup_reloads_users_and_limits_without_dropping_connections(tmp_path):
    users = {"alice": {"password_hash": FAST.hash("alice-pw"), "role": "admin"}}
    with serving(tmp_path, {"auth": {"users": users, "local_users": {}}}) as (proc, port, path, log):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        alice = post(conn, "auth_login", {"username": "alice", "password": "alice-pw"})["result"]["token"]
        kept = conn.sock  # the keep-alive connection, open across the reload

        config = yaml.safe_load(path.read_text())
        config["auth"]["users"] = {"bob": {"password_hash": FAST.hash("bob-pw"), "role": "readonly"}}
        reload(proc, path, config, log, 1)
        assert post(conn, "auth_login", {"username": "alice", "password": "alice-pw"})["error"]["code"] == -32003
        assert post(conn, "auth_logout", {}, token=alice)["error"]["code"] == -32002  # her token went with her
        bob = post(conn, "auth_login", {"username": "bob", "password": "bob-pw"})["result"]["token"]
        assert conn.sock is kept  # the same connection answered all along

        config["rate_limit"] = {"requests": 2, "window": 600}
        reload(proc, path, config, log, 2)
        assert "result" in post(conn, "rpc.discover", {}, token=bob)
        assert "result" in post(conn, "rpc.discover", {}, token=bob)
        refused = post(conn, "rpc.discover", {}, token=bob)  # the new limit: 2 per 600 s
        assert (refused["status"], refused["error"]["code"]) == (429, -32000)

        path.write_text("auth: [not, a, mapping\n")
        proc.send_signal(signal.SIGHUP)
        refusal = wait_for("refused", lambda: [e for e in log_lines(log) if e.get("msg", "").startswith("reload "
                                                                                                          "refused")])
        assert len(refusal) == 1 and "not valid YAML" in refusal[0]["reason"]
        assert "result" in post(conn, "auth_login", {"username": "bob", "password": "bob-pw"})  # still bob's
        assert conn.sock is kept and proc.poll() is None
        conn.close()


def test_systemd_notify_ready_watchdog_and_stopping(tmp_path):
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(60)
        with serving(tmp_path, {}, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}) as (proc, *_):
            assert listener.recv(4096) == b"READY=1\nSTATUS=serving"
            assert listener.recv(4096) == b"WATCHDOG=1"
            assert listener.recv(4096) == b"WATCHDOG=1"  # every half WatchdogSec
            proc.send_signal(signal.SIGTERM)
            while (message := listener.recv(4096)) == b"WATCHDOG=1":
                pass
            assert message == b"STOPPING=1"
            assert proc.wait(30) == 0


def zfsapi(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    return subprocess.run([sys.executable, "-m", "zfsapi", *args], capture_output=True, text=True,
                          timeout=120, env=base | (env or {}), stdin=subprocess.DEVNULL)


def zfsapi_call(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return zfsapi("call", *args, env=env)


def test_call_prints_results_and_errors(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the passwordless call needs this test to run as root (the default local user)")
    users = {"ops": {"password_hash": FAST.hash("ops-pw"), "role": "operator"}}
    config = {"auth": {"users": users}, "logging": {"file": str(tmp_path / "zfsapi.log")}}
    with serving(tmp_path, config) as (_, port, path, _):
        url = f"http://127.0.0.1:{port}"
        r = zfsapi_call("--url", url, "--user", "ops", "auth_logout", "all_sessions=false",
                        env={"ZFSAPI_PASSWORD": "ops-pw"})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"logged_out": True, "revoked": True}

        r = zfsapi_call("--config", str(path), "dataset_list", "recursive=yes")  # the URL from the config
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("zfsapi: Invalid params (code -32602): ") and '"param": "recursive"' in r.stderr

        r = zfsapi_call("--url", url, "--user", "ops", "pool_list", env={"ZFSAPI_PASSWORD": "wrong"})
        assert (r.returncode, r.stderr) == (1, "zfsapi: Invalid credentials (code -32003)\n")

        r = zfsapi_call("--url", url, '{"dataset": "tank"}', "extra")
        assert r.returncode == 2
    logged = log_lines(tmp_path / "zfsapi.log")  # logging.file: the same JSON lines, appended
    access = [e for e in logged if e["logger"] == "zfsapi.access"]
    assert [(e["method"], e["outcome"], e["principal"]) for e in access] == [
        ("auth_login", "ok", "root"), ("auth_logout", "ok", "ops"), ("dataset_list", "client_error", "root"),
        ("auth_login", "auth", "root")]  # root: this test's uid, a local user (passwordless) by default
    assert all(len(e["request_id"]) == 32 for e in access)


def test_jobs_of_a_user_followed_with_its_token(tmp_path):
    """`--user` logs in once; the token also opens GET /jobs/{id}/events. Without zfs the job fails with -32014:
    watch prints it and exits 1."""
    users = {"ops": {"password_hash": FAST.hash("ops-pw"), "role": "operator"}}
    (tmp_path / "files").mkdir()
    config = {"auth": {"users": users}, "transfer": {"directories": [str(tmp_path / "files")]}}
    env = {"ZFSAPI_PASSWORD": "ops-pw"}
    with serving(tmp_path, config) as (_, port, _, _):
        who = ("--url", f"http://127.0.0.1:{port}", "--user", "ops")
        r = zfsapi_call(*who, "send_to_file", "dataset=tank/a b", "snapshot=s1", "output_file=x", "background=true",
                        env=env)
        assert r.returncode == 0, r.stderr
        job_id = json.loads(r.stdout)["job_id"]
        r = zfsapi("jobs", "watch", job_id, *who, env=env)
        assert (r.returncode, r.stdout) == (1, ""), r.stderr
        failed, error = r.stderr.splitlines()[-2:]
        assert failed.startswith(f"send_to_file {job_id}: 0 B, failed: ")
        assert error.startswith("zfsapi: ") and " (code -32014)" in error
        r = zfsapi("jobs", "list", "--state", "failed", *who, env=env)
        assert [row.split()[:4] for row in r.stdout.splitlines()[1:]] == [[job_id, "send_to_file", "failed", "ops"]]
        r = zfsapi("jobs", "watch", job_id, "--url", f"http://127.0.0.1:{port}", "--token", "not-a-token")
        assert r.returncode == 1 and r.stderr.startswith("zfsapi: ") and "(code -32002)" in r.stderr


def test_migrate_on_a_host_without_zfs_exits_1_with_the_error(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the passwordless call needs this test to run as root (the default local user)")
    with serving(tmp_path, {}) as (_, port, _, _):
        r = zfsapi("migrate", "tank/a b@s1", "backup/a b", "--limit", "2", "--compression", "zstd", "--url",
                   f"http://127.0.0.1:{port}")
    assert (r.returncode, r.stdout) == (1, ""), r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith("zfsapi: ") and " (code -32014)" in last


def test_sighup_with_several_workers_reloads_each_on_the_new_config(tmp_path, redis_url):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    config = {"redis": {"host": "127.0.0.1", "port": port}, "auth": {"users": {}},
              "rate_limit": {"enabled": False}}
    with serving(tmp_path, {**config, "server": {"http": {"workers": 2}}}) as (proc, port, path, log):
        url = f"http://127.0.0.1:{port}/"

        def login() -> dict:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a new connection: any worker
            try:
                return post(conn, "auth_login", {"username": "carol", "password": "carol-pw"})
            finally:
                conn.close()

        wait_for("workers up", lambda: "error" in login(), log)
        assert login()["error"]["code"] == -32003
        written = yaml.safe_load(path.read_text())
        written["auth"]["users"] = {"carol": {"password_hash": FAST.hash("carol-pw"), "role": "readonly"}}
        path.write_text(yaml.safe_dump(written))
        proc.send_signal(signal.SIGHUP)
        # every worker reloaded the new file in place: ten logins in a row succeed, whichever worker takes them
        wait_for("carol everywhere", lambda: all("result" in login() for _ in range(10)), log, seconds=120)
        assert proc.poll() is None, url
