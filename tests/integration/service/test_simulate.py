"""`zfsapi serve --simulate` as a process on a machine without ZFS: it says so (a warning, /health, every log
line), and the walk of the README's quick start works end to end through the real command line: list the
datasets, migrate tank/home to the backup pool with a progress display. A server without the flag that finds
no zfs says so in one line and still starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx

from .conftest import log_entries, serve_process


def _start(tmp_path, *args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")} | {
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **(env_extra or {})}
    proc, log, url = serve_process(tmp_path, *args, env=env, cwd=tmp_path)
    return proc, log, url, env


def _cli(env, tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "zfsapi", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_the_quick_start_walk_on_a_simulated_zfs(tmp_path):
    started = time.monotonic()
    proc, log, url, env = _start(tmp_path, "--simulate")
    try:
        warnings = [e for e in log_entries(log) if e["level"] == "WARNING"]
        assert warnings[0]["msg"].startswith("SIMULATED ZFS: pools tank and backup"), warnings
        state_dir = re.search(r"kept in (\S+),", warnings[0]["msg"]).group(1)
        health = httpx.get(url + "/health", timeout=30)
        assert health.status_code == 200 and health.json()["simulated"] is True, health.text
        listed = _cli(env, tmp_path, "call", "--url", url, "dataset_list")
        assert listed.returncode == 0 and "tank/home/alice" in json.loads(listed.stdout)["datasets"], listed
        snaps = json.loads(_cli(env, tmp_path, "call", "--url", url, "snapshot_list", "dataset=tank/home").stdout)
        migrated = _cli(env, tmp_path, "migrate", "--url", url, f"tank/home@{snaps['snapshots'][0]}", "backup/home")
        walk = time.monotonic() - started
        assert migrated.returncode == 0, migrated
        assert json.loads(migrated.stdout)["destination"] == "backup/home", migrated.stdout
        print(f"\nsimulated walk (start, dataset_list, migrate done): {walk:.1f} s")
        sent = httpx.post(url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "stream_init", "params": {
            "operation": "send", "dataset": "backup/home", "snapshot": snaps["snapshots"][0]}}, timeout=30)
        body = httpx.get(url + sent.json()["result"]["url"], timeout=60)  # over the real server's socket
        assert body.status_code == 200 and body.content.startswith(b'{"id": '), body.content[:100]
        after = json.loads(_cli(env, tmp_path, "call", "--url", url, "dataset_list").stdout)["datasets"]
        assert "backup/home" in after
    finally:
        proc.terminate()
        proc.wait(30)
    entries = log_entries(log)
    assert entries and all(e.get("simulated") is True for e in entries), [e for e in entries if not e.get("simulated")]
    assert not os.path.exists(state_dir)  # nothing of it outlives the process


def test_a_server_without_zfs_says_so_once_and_starts(tmp_path):
    proc, log, url, _ = _start(tmp_path, env_extra={"ZFSAPI_STATE_DIR": str(tmp_path / "state"),
                                                    "ZFSAPI_ZFS__ZFS": "/nonexistent/zfs",
                                                    "ZFSAPI_ZFS__ZPOOL": "/nonexistent/zpool"})
    try:
        health = httpx.get(url + "/health", timeout=30)
        assert health.status_code == 503 and "simulated" not in health.json(), health.text
    finally:
        proc.terminate()
        proc.wait(30)
    entries = log_entries(log)
    said = [e for e in entries if "--simulate" in e["msg"]]
    assert len(said) == 1 and said[0]["level"] == "WARNING", entries
    assert said[0]["missing"] == ["/nonexistent/zfs", "/nonexistent/zpool"]
    assert not any("simulated" in e for e in entries)
