"""Drills on the job store: Redis down makes /health 503 naming the job store (and zfsapi_store_up 0), a new event
stream 503 with a JSON-RPC error body, an open one ends with an `end` event saying why; when Redis is back the
same server recovers without a restart. Two servers on one Redis, one SIGKILLed: every job ends final, none runs
twice. 100 event-stream readers that never read: the server's fds and memory come back to their baseline."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import httpx

from .conftest import FakeZfs, RedisServer, Serve, base_config, read_events, wait_for


def _health(s: Serve) -> httpx.Response:
    return httpx.get(s.url + "/health", timeout=30)


def _store_up(s: Serve) -> str:
    text = httpx.get(s.url + "/metrics", timeout=30).text
    return next(line for line in text.splitlines() if line.startswith("zfsapi_store_up{"))


def test_redis_down_is_reported_streams_get_503_or_an_end_and_the_server_recovers(
        tmp_path: Path, fake: FakeZfs, transfer_dir: Path, redis_server: RedisServer) -> None:
    fake.set(send_bytes=8 << 20, send_seconds=60)
    config = base_config(tmp_path, fake, transfer_dir, redis=redis_server.section)
    with Serve(tmp_path, config).start() as s:
        ok = _health(s)
        assert ok.status_code == 200 and ok.json()["job_store"] == {"backend": "redis", "status": "ok"}, ok.text
        assert _store_up(s).endswith(" 1.0")
        job_id = s.call("send_to_file", dataset="tank/a", snapshot="s1", output_file="outage.zfs",
                        background=True)["job_id"]
        events: list[tuple[str, dict[str, Any]]] = []
        reader = threading.Thread(target=read_events, args=(f"{s.url}/jobs/{job_id}/events", events))
        reader.start()
        wait_for("the stream is open", lambda: events)
        redis_server.stop()
        down = wait_for("health says the store is down", lambda: (r := _health(s)).status_code == 503 and r)
        body = down.json()
        assert body["failing"] == "job_store" and body["job_store"]["status"] == "error", body
        assert body["sessions"] == "redis" and body["job_store"]["reason"], body
        assert _store_up(s).endswith(" 0.0")
        reader.join(60)
        assert events[-1][0] == "end" and events[-1][1]["closed"]["reason"] == "store_unavailable", events[-1]
        refused = httpx.get(f"{s.url}/jobs/{job_id}/events", timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["data"]["service"] == "job store", refused.text
        redis_server.start()  # empty again (no persistence): the server must come back to it on its own
        wait_for("health is ok again", lambda: _health(s).status_code == 200)
        assert _store_up(s).endswith(" 1.0")
        again = s.call("send_to_file", dataset="tank/a", snapshot="s1", output_file="after.zfs", background=True)
        fake.set(send_seconds=0)
        assert s.call("job_wait", job_id=again["job_id"], timeout=60)["state"] in ("running", "succeeded")


def test_two_servers_on_redis_one_killed_every_job_final_none_run_twice(
        tmp_path: Path, fake: FakeZfs, transfer_dir: Path, redis_server: RedisServer) -> None:
    fake.set(send_bytes=1 << 20, send_seconds=1.5)
    config = base_config(tmp_path, fake, transfer_dir, redis=redis_server.section, jobs={"lease": 5, "workers": 4})
    a = Serve(tmp_path, config, name="a").start()
    b = Serve(tmp_path, config, name="b").start()
    try:
        ids = [(a if i % 2 else b).call("send_to_file", dataset="tank/a", snapshot="s1", output_file=f"j{i}.zfs",
                                         background=True)["job_id"] for i in range(16)]
        wait_for("some jobs run", lambda: sum(b.job(j)["state"] == "running" for j in ids) >= 2)
        a.kill()
        final = {"succeeded", "failed", "interrupted", "cancelled"}
        records = wait_for("every job final", lambda: all(b.job(j)["state"] in final for j in ids)
                           and [b.job(j) for j in ids], seconds=120)
        states = [r["state"] for r in records]
        print("end states:", {s: states.count(s) for s in set(states)})
        assert "succeeded" in states
        started = [line.split()[0] for line in fake.sends()]
        files = [line.split()[-1] for line in fake.sends()]
        assert len(set(started)) == len(started)
        done = [p.name for p in transfer_dir.iterdir() if not p.name.startswith(".")]
        assert len(done) == states.count("succeeded")  # each succeeded job wrote its file once
        assert len(files) == len(started)
    finally:
        a.stop()
        b.stop()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_hundred_readers_that_never_read_leave_fds_and_memory_at_baseline(
        tmp_path: Path, fake: FakeZfs, transfer_dir: Path) -> None:
    fake.set(send_bytes=4 << 20, send_seconds=20)
    with Serve(tmp_path, base_config(tmp_path, fake, transfer_dir)).start() as s:
        assert s.proc is not None
        pid = s.proc.pid
        job_id = s.call("send_to_file", dataset="tank/a", snapshot="s1", output_file="watched.zfs",
                        background=True)["job_id"]
        for _ in range(3):
            _health(s)
        fds, rss = _fds(pid), _rss_kib(pid)
        request = (f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").encode()
        readers = []
        for _ in range(100):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(request)
            readers.append(c)  # never read
        wait_for("the streams are open", lambda: _fds(pid) >= fds + 50)  # (a few may still wait in the backlog)
        peak = _rss_kib(pid)
        for c in readers:
            c.close()
        wait_for("fds back to baseline", lambda: _fds(pid) <= fds + 2)
        print(f"fds {fds} -> {fds + 100}+ -> {_fds(pid)}; RSS {rss} KiB -> {peak} KiB -> {_rss_kib(pid)} KiB")
        assert _rss_kib(pid) < rss + 32 * 1024  # nothing per reader stays behind (32 MiB of slack for the allocator)
        assert _health(s).status_code == 200



def test_an_unusable_embedded_store_is_reported_by_health(tmp_path: Path, fake: FakeZfs, transfer_dir: Path) -> None:
    config = base_config(tmp_path, fake, transfer_dir)
    (tmp_path / "state").mkdir()
    store = tmp_path / "state" / "jobs.sqlite3"
    store.write_bytes(b"not a database at all " * 4096)  # e.g. a disk error, or another program's file
    with Serve(tmp_path, config).start() as s:
        down = _health(s)
        assert down.status_code == 503, down.text
        body = down.json()
        assert body["failing"] == "job_store" and body["job_store"]["backend"] == "embedded", body
        assert _store_up(s).endswith(" 0.0")
        store.unlink()  # the operator moves it away: the same server is healthy again, no restart
        wait_for("health is ok again", lambda: _health(s).status_code == 200)
        assert s.call("job_list")["total"] == 0
