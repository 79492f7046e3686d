"""Remotes between real servers on loopback (issue 22, class 1): every outgoing call carries credentials, and a
migration to this same server runs with the caller's own rights, never as passwordless root. No ZFS here: the
job fails on its own missing zfs, but only after it has called the remote, whose access log names the caller."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

from .conftest import FAST, rpc, server
from .test_operations import log_lines, serving, wait_for, zfsapi

DEADLINE = 60.0
OP = {"password_hash": FAST.hash("op-pw"), "role": "operator", "datasets": ["tank/backups"]}


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("passwordless calls as root (the default local user) need this test to run as root")


def rpc_lines(log: Path) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "rpc" and record.get("logger") == "zfsapi.access":
            out.append(record)
    return out


def login(url: str, user: str, password: str) -> str:
    return rpc(url, "auth_login", {"username": user, "password": password}).json()["result"]["token"]


def finished(url: str, token: str, job_id: str) -> dict:
    started = time.monotonic()
    while True:
        job = rpc(url, "job_wait", {"job_id": job_id, "timeout": 5}, token).json()["result"]
        if job["state"] not in ("queued", "running"):
            print(f"job {job_id} {job['state']} after {time.monotonic() - started:.1f} s")
            return job
        assert time.monotonic() - started < DEADLINE, job


def seen_by(log: Path, method: str) -> list[dict]:
    """The remote's access-log lines for `method`, waited for (the log is written as the call ends)."""
    end = time.monotonic() + DEADLINE
    while not (lines := [r for r in rpc_lines(log) if r.get("method") == method]):
        assert time.monotonic() < end, log.read_text()[-3000:]
        time.sleep(0.1)
    return lines


@pytest.fixture
def two_servers(tmp_path):
    """a: the source, listing b (with op's credentials there) and itself (no credentials); b: another zfsapi."""
    pa, pb = free_port(), free_port()
    users = {"op": OP, "adm": {"password_hash": FAST.hash("adm-pw"), "role": "admin"}}
    remotes = {"b": {"url": f"http://127.0.0.1:{pb}", "username": "op", "password": "op-pw"},
               "self": {"url": f"http://127.0.0.1:{pa}"}}
    common = {"rate_limit": {"enabled": False}, "auth": {"users": users}}
    with server(tmp_path, {**common, "replication": {"remotes": remotes}}, port=pa) as log_a, \
            server(tmp_path, common, port=pb) as log_b:
        yield f"http://127.0.0.1:{pa}/", log_a, f"http://127.0.0.1:{pb}/", log_b


def test_the_outgoing_calls_carry_the_listed_credentials(two_servers):
    a, _, _, log_b = two_servers
    token = login(a, "op", "op-pw")
    created = rpc(a, "migration_create", {"source": "tank/backups/a@s1", "destination": "tank/backups/x",
                                          "remote": "b"}, token).json()
    job = finished(a, token, created["result"]["job_id"])
    assert job["state"] == "failed", job
    logins = seen_by(log_b, "auth_login")
    calls = seen_by(log_b, "dataset_get_properties")
    print("b saw:", [(r["method"], r["principal"], r["outcome"]) for r in rpc_lines(log_b)])
    assert logins[0]["outcome"] == "ok"
    assert {r["principal"] for r in calls} == {"op"}  # b's op, by the token a fetched: never passwordless root
    assert {r["principal"] for r in rpc_lines(log_b) if r["method"] != "auth_login"} == {"op"}


def test_a_migration_to_this_same_server_runs_with_the_callers_own_rights(two_servers):
    a, log_a, _, _ = two_servers
    token = login(a, "op", "op-pw")
    for remote in ("self", a.rstrip("/")):  # by name, and by its url
        created = rpc(a, "migration_create", {"source": "tank/backups/a@s1", "destination": "tank/backups/x",
                                              "remote": remote}, token).json()
        assert created["result"]["status"] == "created", created
        job = finished(a, token, created["result"]["job_id"])
        assert job["state"] == "failed", job
    calls = [r for r in seen_by(log_a, "dataset_get_properties")]
    print("a saw:", [(r["method"], r["principal"], r["outcome"]) for r in rpc_lines(log_a)])
    assert {r["principal"] for r in calls} == {"op"}  # the caller's minted token, not root's passwordless access
    inside = rpc(a, "migration_create", {"source": "tank/backups/a@s1", "destination": "tank/backups/a/x",
                                         "remote": "self"}, token).json()
    assert (inside["error"]["code"], inside["error"]["data"]["param"]) == (-32602, "destination")
    outside = rpc(a, "migration_create", {"source": "tank/backups/a@s1", "destination": "tank/other",
                                          "remote": "self"}, token).json()
    assert outside["error"]["code"] == -32004
    # root here has no token identity (no user root in auth.users): it may not call this server through a remote
    need_root()
    root = rpc(a, "migration_create", {"source": "tank/a@s1", "destination": "backup/a", "remote": "self"}).json()
    assert (root["error"]["code"], root["error"]["data"]["param"]) == (-32602, "remote"), root


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic cm9vdDpyb290", "Bearer", "", "bearer  x y"])
def test_a_request_with_an_authorization_header_never_gets_passwordless_access(two_servers, header):
    a = two_servers[0]
    answer = rpc(a, "pool_list", headers={"Authorization": header}).json()
    assert answer["error"]["code"] == -32002, answer
    assert "error" in rpc(a, "migration_create", {"source": "tank/a@s1", "destination": "backup/a"},
                          headers={"Authorization": header}).json()


def test_unlisted_remotes_are_refused_even_for_root_by_default(two_servers):
    need_root()
    a = two_servers[0]
    for remote in ("http://169.254.169.254/", "root@nas.example", "fe80::1%$(id)", "root@fe80::1%`id`"):
        answer = rpc(a, "migration_create", {"source": "tank/a@s1", "destination": "backup/a",
                                             "remote": remote}).json()  # root, passwordless: an unrestricted admin
        assert (answer["error"]["code"], answer["error"]["data"]["param"]) == (-32602, "remote"), answer


def test_sighup_swaps_the_remotes_in_and_a_bad_file_keeps_them(tmp_path):
    need_root()
    remotes = {"nas": {"ssh": "root@nas.example"}, "nas2": {"ssh": "root@nas2.example"}}
    with serving(tmp_path, {"rate_limit": {"enabled": False}, "replication": {"remotes": remotes}}) as (
            proc, port, path, log):
        url = f"http://127.0.0.1:{port}/"

        def answer(remote: str) -> dict:
            return rpc(url, "migration_create", {"source": "tank/a@s1", "destination": "backup/a",
                                                 "remote": remote}).json()

        assert "result" in answer("nas") and "result" in answer("root@nas2.example")
        written = yaml.safe_load(path.read_text())
        written["replication"]["remotes"] = {"nas2": {"ssh": "root@nas2.example"}}
        path.write_text(yaml.safe_dump(written))
        proc.send_signal(signal.SIGHUP)
        wait_for("nas gone", lambda: "error" in answer("nas"), log)
        assert answer("nas")["error"]["data"]["param"] == "remote" and "result" in answer("nas2")
        written["replication"]["remotes"] = {"evil": {"ssh": "root@fe80::1%;id;"}}
        path.write_text(yaml.safe_dump(written))
        proc.send_signal(signal.SIGHUP)
        wait_for("reload refused", lambda: any(e.get("msg") == "reload refused, the running configuration stays"
                                               for e in log_lines(log)), log)
        assert "result" in answer("nas2") and answer("evil")["error"]["data"]["param"] == "remote"


def test_zfsapi_migrate_takes_a_remote_name(tmp_path):
    need_root()
    with serving(tmp_path, {"replication": {"remotes": {"nas": {"ssh": "root@nas.example"}}}}) as (_, port, _, _):
        where = ("--url", f"http://127.0.0.1:{port}")
        named = zfsapi("migrate", "tank/a@s1", "backup/a", "--remote", "nas", *where)
        unlisted = zfsapi("migrate", "tank/a@s1", "backup/a", "--remote", "root@other.example", *where)
    assert named.returncode == 1 and " (code -32014)" in named.stderr.splitlines()[-1], named.stderr  # no zfs here
    last = unlisted.stderr.splitlines()[-1]
    assert unlisted.returncode == 1 and " (code -32602)" in last and "remote" in last, unlisted.stderr
