"""Drills on signals: SIGHUP with two workers reloads each in place (its running job goes on and succeeds, the
workers are the same processes), SIGTERM ends event streams and long polls first and then stops the jobs, so the
server exits promptly, no zfs child remains and the job is recorded as interrupted."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.integration.service.conftest import FAST
from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore
from zfsapi.domain.jobs import JobState

from .conftest import FakeZfs, RedisServer, Serve, base_config, read_events, wait_for


def _children(pid: int) -> set[int]:
    return {int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _running(s: Serve, job_id: str) -> bool:
    return s.job(job_id)["state"] == "running"


def test_sighup_with_two_workers_reloads_in_place_and_the_running_job_succeeds(
        tmp_path: Path, fake: FakeZfs, transfer_dir: Path, redis_server: RedisServer) -> None:
    fake.set(send_bytes=4 << 20, send_seconds=8)
    config = base_config(tmp_path, fake, transfer_dir, redis=redis_server.section, auth={"users": {}},
                         server={"http": {"workers": 2}})
    with Serve(tmp_path, config).start() as s:
        assert s.proc is not None
        wait_for("both workers serve", lambda: sum(x.get("msg") == "Application startup complete."
                                                   or "startup complete" in str(x.get("msg")) for x in s.lines()) >= 2
                 or len(_children(s.proc.pid)) >= 2)
        job_id = s.call("send_to_file", dataset="tank/a", snapshot="s1", output_file="during-reload.zfs",
                        background=True)["job_id"]
        wait_for("the job runs", lambda: _running(s, job_id))
        workers = _children(s.proc.pid)
        written = yaml.safe_load(s.config_path.read_text())
        written["auth"]["users"] = {"carol": {"password_hash": FAST.hash("carol-pw"), "role": "readonly"}}
        s.config_path.write_text(yaml.safe_dump(written))
        s.signal(signal.SIGHUP)
        wait_for("every worker reloaded", lambda: sum(x.get("msg") == "configuration reloaded" for x in s.lines()) >= 2,
                 log=s.log)
        assert all("result" in s.rpc("auth_login", username="carol", password="carol-pw") for _ in range(10))
        record = s.call("job_wait", job_id=job_id, timeout=120)
        assert record["state"] == "succeeded", record
        assert record["result"]["size_bytes"] == 4 << 20
        assert _children(s.proc.pid) == workers  # reloaded in place: no worker was replaced
        assert len(fake.sends()) == 1  # and the send ran once


def test_sigterm_ends_streams_and_long_polls_first_then_stops_the_job_and_queues_it_again(
        tmp_path: Path, fake: FakeZfs, transfer_dir: Path) -> None:
    fake.set(send_bytes=64 << 20, send_seconds=300)
    config = base_config(tmp_path, fake, transfer_dir)
    s = Serve(tmp_path, config).start()
    try:
        job_id = s.call("send_to_file", dataset="tank/a", snapshot="s1", output_file="long.zfs",
                        background=True)["job_id"]
        wait_for("the send runs", lambda: _running(s, job_id) and fake.running())
        events: list[tuple[str, dict[str, Any]]] = []
        polled: list[dict[str, Any]] = []
        threads = [threading.Thread(target=read_events, args=(f"{s.url}/jobs/{job_id}/events", events)),
                   threading.Thread(target=lambda: polled.append(s.rpc("job_wait", timeout=330, job_id=job_id)))]
        for t in threads:
            t.start()
        wait_for("the stream is open", lambda: events)
        time.sleep(0.5)  # the long poll is waiting too
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        s.wait_exit(30)
        print(f"SIGTERM to exit: {time.monotonic() - started:.2f} s")
        for t in threads:
            t.join(30)
        assert events[-1][0] == "end" and events[-1][1]["closed"]["reason"] == "shutdown", events[-1]
        assert polled and polled[0]["result"]["state"] == "running", polled  # answered at once, as it was
        assert fake.running() == []  # no zfs child outlived the server
        assert not [p for p in transfer_dir.iterdir() if p.name.startswith(".long.zfs")]
    finally:
        s.stop()
    # send_to_file is resumable: the stopping server queued it again itself (not left for its lease to lapse)
    store = EmbeddedJobStore(config["state_dir"])
    left = asyncio.run(store.get(job_id))
    store.close()
    assert left is not None and left.state is JobState.QUEUED and left.attempts == 1, left
    with Serve(tmp_path, config, name="after").start() as again:  # and the next server runs it again
        wait_for("the next server sends again", lambda: len(fake.sends()) == 2)
        assert again.job(job_id)["attempts"] == 2
