"""Outcome drills. On real Redis: a redis-server of the test's own (append-only file, so it keeps the records over a
restart) is stopped while a job runs; the job's work ends meanwhile; its outcome waits in the runner's memory and
is written once Redis is back on the same port, also when another runner saw the lease lapse first (the success
counts: nobody claimed the job since). A job left running while Redis stays away past the lease is fenced: its
child killed and reaped. On the embedded store: state_dir on a small tmpfs filled up while the job ends."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import free_port
from tests.job_drills import ChildWork, runner
from tests.unit.test_jobs import ADMIN, until
from zfsapi.adapters.outbound.state.redis.jobs import RedisJobStore
from zfsapi.adapters.outbound.state.redis.client import connect
from zfsapi.domain.jobs import JobState


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server not installed")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


async def test_an_outcome_reached_while_redis_is_down_is_recorded_when_it_is_back(redis: RedisServer) -> None:
    clients = [connect("127.0.0.1", redis.port, 0, None) for _ in range(2)]
    store, other = RedisJobStore(clients[0]), RedisJobStore(clients[1])
    work = ChildWork()
    jobs, r = runner(store, work, "a", lease=2.0, grace=1.0)
    _, sweeper = runner(other, ChildWork(), "b", lease=2.0, grace=1.0)  # another server on the same Redis
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        redis.stop()
        work.gate.set()  # the work ends (its file complete) while Redis is down
        await until(lambda: r.unwritten == 1 and not work.alive, "the outcome kept in memory, the child reaped")
        await asyncio.sleep(4.0)  # past lease + grace: when Redis is back the others may see the lease lapsed
        assert r.unwritten == 1
        redis.start()
        await sweeper.start()  # it may lapse the job before the first writes its outcome: the success counts
        started = time.monotonic()
        await until(lambda: r.unwritten == 0, "the outcome written after Redis came back")
        print(f"outcome written {time.monotonic() - started:.2f} s after Redis came back")
        done = await other.get(job.job_id)
        assert done is not None and (done.state, done.result) == (JobState.SUCCEEDED, {"fence": 1, "worker": "a"})
        assert work.started == [(job.job_id, 1)]  # done once, not again
    finally:
        await r.stop()
        await sweeper.stop()
        for c in clients:
            await c.aclose()


async def test_a_job_running_while_redis_stays_away_past_its_lease_is_fenced(redis: RedisServer) -> None:
    client = connect("127.0.0.1", redis.port, 0, None)
    store = RedisJobStore(client)
    work = ChildWork()
    jobs, r = runner(store, work, "a", lease=2.0, grace=1.0)
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        redis.stop()
        started = time.monotonic()
        await until(lambda: not work.alive and r.running == 0, "the child killed once the lease ran out here")
        print(f"child reaped {time.monotonic() - started:.2f} s after Redis went away (lease 2.0 s)")
        redis.start()
        # the record still says running under the old lease: it lapses (after the grace) and is resumed
        await until(lambda: len(work.started) == 2, "the job resumed under a new token")
        stored: Any = await store.get(job.job_id)
        assert stored.state is JobState.RUNNING and stored.fence == 2 and r.unwritten == 0
        assert work.started == [(job.job_id, 1), (job.job_id, 2)] and work.peak == 1
        work.gate.set()
        assert (await jobs.wait(ADMIN, job.job_id, 30)).result == {"fence": 2, "worker": "a"}
    finally:
        await r.stop()
        await client.aclose()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own (root only), unmounted afterwards."""
    import os
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(path: Path) -> None:
    """Write to `path` until the disk is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


async def test_an_outcome_reached_while_the_state_dir_is_full_is_recorded_after(small_disk: Path) -> None:
    """(A read-only remount is refused while the store's files are open for writing: "locked" stands in for
    "unwritable" in tests/unit/test_job_fencing.py.)"""
    from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore

    store = EmbeddedJobStore(str(small_disk / "state"))
    work = ChildWork()
    work.pad = "x" * 300_000  # a result that needs pages the file does not have yet
    jobs, r = runner(store, work, "a", lease=30.0)
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        _fill(small_disk / "filler")
        work.gate.set()
        await until(lambda: r.unwritten == 1 and not work.alive, "the job ended, its outcome kept")
        await asyncio.sleep(1.5)  # a few tries, each refused
        assert r.unwritten == 1
        (small_disk / "filler").unlink()
        started = time.monotonic()
        await until(lambda: r.unwritten == 0, "the outcome written once the disk has room")
        print(f"outcome written {time.monotonic() - started:.2f} s after the fault ended")
        done = await store.get(job.job_id)
        assert done is not None and done.state is JobState.SUCCEEDED and done.result["pad"] == work.pad
    finally:
        await r.stop()
        store.close()
