"""A job runs with its owner's rights when it runs, and an event stream lasts only as long as its caller may follow
it, on a real `zfsapi serve` (uvicorn, real sockets, real SIGHUP). No ZFS: `zpool scrub tank` is a script that
sleeps (a job that keeps running until it is cancelled), everything else it and `zfs` are asked fails and is
noted in a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from .conftest import FAST
from .test_operations import log_lines, serving, wait_for

DEADLINE = 60.0
PASSWORDS = {"root": "root-pw", "ops": "ops-pw"}


def fake_binaries(tmp_path: Path) -> tuple[dict, Path]:
    """`zpool scrub tank` sleeps; every other zpool or zfs call is noted in `calls` and fails."""
    calls = tmp_path / "calls"
    for name, sleeps in (("zpool", '"scrub tank") exec sleep 300;;'), ("zfs", "")):
        script = tmp_path / f"fake-{name}"
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\ncase "$*" in {sleeps} *) ;; esac\n'
                          f'echo "fake {name}: refused" >&2\nexit 1\n')
        script.chmod(0o755)
    return {"zfs": str(tmp_path / "fake-zfs"), "zpool": str(tmp_path / "fake-zpool")}, calls


def users(with_ops: bool = True) -> dict:
    out = {"root": {"password_hash": FAST.hash(PASSWORDS["root"]), "role": "admin"}}
    if with_ops:
        out["ops"] = {"password_hash": FAST.hash(PASSWORDS["ops"]), "role": "operator", "datasets": ["tank/ops"]}
    return out


def call(port: int, method: str, token: str | None = None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"http://127.0.0.1:{port}/", json={"jsonrpc": "2.0", "method": method, "params": params,
                                                          "id": 1}, headers=headers, timeout=DEADLINE)


def result(port: int, method: str, token: str | None = None, **params):
    body = call(port, method, token, **params).json()
    assert "result" in body, body
    return body["result"]


def login(port: int, user: str) -> str:
    return result(port, "auth_login", username=user, password=PASSWORDS[user])["token"]


def running_scrub(port: int, token: str | None = None) -> str:
    """A background scrub (its `zpool scrub` sleeps): the job's id once it runs."""
    job_id = result(port, "pool_scrub_start", token, pool="tank", background=True)["job_id"]
    wait_for("the scrub job running", lambda: result(port, "job_get", job_id=job_id)["state"] == "running")
    return job_id


def events(lines, until_blank: bool = True):
    """The next SSE event (name, data) from an iterator of lines."""
    name, data = None, []
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))
        elif not line and data:
            return name, json.loads("\n".join(data))
    return None  # the stream ended


def follow_until_closed(port: int, job_id: str, token: str, act=None):
    """Open the job's event stream, read its first event, `act()`, then read to the end: (first event, last
    event, seconds from `act` to the end of the stream)."""
    url = f"http://127.0.0.1:{port}/jobs/{job_id}/events"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"},
                      timeout=httpx.Timeout(DEADLINE, read=DEADLINE)) as r:  # a hang fails, it does not wait forever
        assert r.status_code == 200, r.read()
        lines = r.iter_lines()
        first = events(lines)
        if act is not None:
            act()
        acted = time.monotonic()
        seen = [first]
        while (event := events(lines)) is not None:
            seen.append(event)
        return first, seen[-1], time.monotonic() - acted


def test_logout_closes_an_open_event_stream_with_a_last_event_saying_why(tmp_path):
    binaries, _ = fake_binaries(tmp_path)
    with serving(tmp_path, {"zfs": binaries, "auth": {"users": users()}}) as (_, port, _, _):
        job_id = running_scrub(port)
        token = login(port, "root")
        first, last, took = follow_until_closed(port, job_id, token,
                                                lambda: result(port, "auth_logout", token))
        print(f"event stream ended {took:.2f} s after auth_logout answered")
        assert first == ("progress", first[1]) and first[1]["state"] == "running"
        assert last == ("error", {"code": -32002, "message": "Invalid token", "data": {"reason": "token revoked"}})
        assert result(port, "job_get", job_id=job_id)["state"] == "running"  # the job is not the stream's
        r = httpx.get(f"http://127.0.0.1:{port}/jobs/{job_id}/events", headers={"Authorization": f"Bearer {token}"},
                      timeout=DEADLINE)
        assert (r.status_code, r.json()["error"]["code"]) == (401, -32002)  # and it cannot be opened again

        second = login(port, "root")  # `zfsapi jobs watch` following with a token that is then revoked
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
        watch = subprocess.Popen([sys.executable, "-m", "zfsapi", "jobs", "watch", job_id, "--url",
                                  f"http://127.0.0.1:{port}", "--token", second], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert watch.stderr is not None
        assert watch.stderr.readline().startswith(f"pool_scrub_start {job_id}: ")  # following
        result(port, "auth_logout", second)
        watch.wait(DEADLINE)
        error = watch.stderr.read().splitlines()[-1]
        assert watch.returncode == 1 and "(code -32002)" in error and "token revoked" in error, error
        result(port, "job_cancel", job_id=job_id)


def test_an_expired_token_closes_the_stream(tmp_path):
    binaries, _ = fake_binaries(tmp_path)
    config = {"zfs": binaries, "auth": {"users": users(), "token_lifetime": 10}}
    with serving(tmp_path, config) as (_, port, _, _):
        job_id = running_scrub(port)
        logged_in = time.monotonic()
        issued = result(port, "auth_login", username="root", password=PASSWORDS["root"])
        _, last, _ = follow_until_closed(port, job_id, issued["token"])
        print(f"event stream ended {time.monotonic() - logged_in:.2f} s after login; the token lasts "
              f"{issued['expires_in']} s")
        assert last == ("error", {"code": -32002, "message": "Invalid token", "data": {"reason": "token expired"}})
        result(port, "job_cancel", job_id=job_id)


def test_event_streams_and_long_polls_count_in_the_callers_rate_limit(tmp_path):
    binaries, _ = fake_binaries(tmp_path)
    config = {"zfs": binaries, "auth": {"users": users()}, "rate_limit": {"requests": 3, "window": 600}}
    with serving(tmp_path, config) as (_, port, _, _):
        token = login(port, "root")  # auth_login: the per-peer login limit, not this one
        started = result(port, "pool_scrub_start", token, pool="nopool", background=True)  # 1: fails in its job
        url = f"http://127.0.0.1:{port}/jobs/{started['job_id']}/events"
        headers = {"Authorization": f"Bearer {token}"}
        waited = result(port, "job_wait", token, job_id=started["job_id"], timeout=DEADLINE)  # 2: a long poll
        assert waited["state"] == "failed"
        ok = httpx.get(url, headers=headers, timeout=DEADLINE)  # 3: an event stream
        assert ok.status_code == 200 and "event: end" in ok.text
        refused = httpx.get(url, headers=headers, timeout=DEADLINE)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1, refused.text
        assert refused.json()["error"]["code"] == -32000
        assert call(port, "job_wait", token, job_id=started["job_id"]).json()["error"]["code"] == -32000


def test_an_operator_removed_by_sighup_has_its_queued_send_and_migration_fail(tmp_path):
    """One worker, busy with a scrub; the operator queues a background send_to_file and a migration; SIGHUP
    removes it; once the worker is free both jobs fail -32004 naming why, and neither calls zfs."""
    binaries, calls = fake_binaries(tmp_path)
    (tmp_path / "files").mkdir()
    config = {"zfs": binaries, "auth": {"users": users()}, "jobs": {"workers": 1},
              "transfer": {"directories": [str(tmp_path / "files")]}}
    with serving(tmp_path, config) as (proc, port, path, log):
        blocker = running_scrub(port)  # root, a local user: the one worker is busy
        ops = login(port, "ops")
        sent = result(port, "send_to_file", ops, dataset="tank/ops/a", snapshot="s1", output_file="a.zfs",
                      background=True)["job_id"]
        migrated = result(port, "migration_create", ops, source="tank/ops/a@s1", destination="tank/ops/b")["job_id"]
        assert [result(port, "job_get", job_id=j)["state"] for j in (sent, migrated)] == ["queued", "queued"]
        noted = calls.read_text()

        changed = yaml.safe_load(path.read_text())
        changed["auth"]["users"] = users(with_ops=False)
        path.write_text(yaml.safe_dump(changed))
        proc.send_signal(signal.SIGHUP)
        wait_for("reloaded", lambda: any(e.get("msg") == "configuration reloaded" for e in log_lines(log)), log)
        assert call(port, "job_list", ops).json()["error"]["code"] == -32002  # its token went with it

        result(port, "job_cancel", job_id=blocker)
        for job_id, kind in ((sent, "send_to_file"), (migrated, "migration_create")):
            job = result(port, "job_wait", job_id=job_id, timeout=DEADLINE)
            assert (job["state"], job["error"]["code"]) == ("failed", -32004), job
            assert job["error"]["data"]["method"] == kind
            assert job["error"]["data"]["reason"] == "owner removed: ops is no longer configured"
        assert calls.read_text() == noted, calls.read_text()  # nothing of either ran
