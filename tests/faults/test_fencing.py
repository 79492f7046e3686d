"""Fencing drill on real Redis with two real processes, each running a job runner whose job keeps a real child
process: the first holder is stopped with SIGSTOP past its lease (with its children, as a paused VM; or alone, as
a stalled server whose children run on), the second claims the job under a new token and starts its own child.
When the first runs again it kills and reaps its child before anything else, and its writes are refused: the
record stays the second's. While the first is stopped with its children, never are two children running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from redis import Redis

DEADLINE = 60.0
LEASE, GRACE = 2.0, 1.0

HOLDER = textwrap.dedent("""
    import asyncio, logging, os, sys
    from zfsapi.adapters.outbound.state.redis.jobs import RedisJobStore
    from zfsapi.adapters.outbound.state.redis.client import connect
    from zfsapi.application.jobs import JobRunner, Jobs
    from tests.job_drills import toy_kinds

    async def main(port, name, out):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        store = RedisJobStore(connect("127.0.0.1", int(port), 0, None))

        async def work(job, meter):
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(600)")
            mark = f"{name}-{job.fence}"
            with open(os.path.join(out, "child-" + mark), "w") as f:
                f.write(str(proc.pid))
            try:
                while not os.path.exists(os.path.join(out, "finish")):
                    meter.add(1)
                    await asyncio.sleep(0.05)
                return {"worker": name, "fence": job.fence}
            finally:
                proc.kill()
                await proc.wait()
                open(os.path.join(out, "reaped-" + mark), "w").close()

        runner = JobRunner(store, Jobs(store), kinds=toy_kinds({"copy": work}, frozenset({"copy"})),
                           lease=float(sys.argv[4]), grace=float(sys.argv[5]))
        await runner.start()
        with open(os.path.join(out, "worker-" + name), "w") as f:
            f.write(runner.worker_id)
        while not os.path.exists(os.path.join(out, "stop")):
            await asyncio.sleep(0.05)
        await runner.stop()

    asyncio.run(main(*sys.argv[1:4]))
""")


def wait_for(what: str, check: Callable[[], Any], seconds: float = DEADLINE) -> Any:
    start = time.monotonic()
    while not (value := check()):
        assert time.monotonic() - start < seconds, f"not within {seconds} s: {what}"
        time.sleep(0.01)
    print(f"{what}: {time.monotonic() - start:.2f} s")
    return value


def proc_state(pid: int) -> str | None:
    """The kernel's state letter of a process (R, S, T for stopped, Z...); None once it is gone (reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def holder(port: int, name: str, out: Path) -> subprocess.Popen[bytes]:
    log = open(out / f"log-{name}", "wb")
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(port), name, str(out), str(LEASE), str(GRACE)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.parametrize("stopped", ["with its children", "alone"])
async def test_a_stopped_holder_is_fenced_and_kills_its_child_when_it_runs_again(
        redis_url: str, tmp_path: Path, stopped: str) -> None:
    from zfsapi.adapters.outbound.state.redis.client import connect
    from zfsapi.adapters.outbound.state.redis.jobs import RedisJobStore
    from zfsapi.application.jobs import Jobs
    from zfsapi.domain.authz import Principal, Role
    from zfsapi.domain.jobs import JobState

    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    Redis(port=port).flushdb()
    client = connect("127.0.0.1", port, 0, None)
    store = RedisJobStore(client)
    job = await Jobs(store).submit("copy", Principal("root", Role.ADMIN), {}, ())
    procs = [holder(port, "a", tmp_path)]
    try:
        child_a = int(wait_for("first holder's child started", lambda: _read(tmp_path / "child-a-1")))
        procs.append(holder(port, "b", tmp_path))
        wait_for("second holder running", lambda: (tmp_path / "worker-b").exists())
        (os.killpg if stopped == "with its children" else os.kill)(procs[0].pid, signal.SIGSTOP)
        start = time.monotonic()
        child_b = int(wait_for("second holder took the job and started its child after SIGSTOP",
                               lambda: _read(tmp_path / "child-b-2")))
        print(f"second holder's child after {time.monotonic() - start:.1f} s (lease {LEASE} s, grace {GRACE} s);"
              f" the first's child meanwhile: {proc_state(child_a)}")
        running = [sum(proc_state(p) not in (None, "T", "Z") for p in (child_a, child_b)) for _ in _samples(0.5)]
        print(f"children running at once, over {len(running)} samples while the first is stopped: {max(running)}")
        if stopped == "with its children":  # (stopped alone, its child runs on until it runs again: see README)
            assert proc_state(child_a) == "T" and max(running) == 1
        (os.killpg if stopped == "with its children" else os.kill)(procs[0].pid, signal.SIGCONT)
        wait_for("first holder's child killed and reaped after SIGCONT", lambda: proc_state(child_a) is None)
        wait_for("first holder fenced", lambda: "job fenced" in (tmp_path / "log-a").read_text())
        assert proc_state(child_b) not in (None, "Z")  # the second's run goes on
        taken = await store.get(job.job_id)
        assert taken is not None and (taken.state, taken.fence, taken.lease_owner) == (
            JobState.RUNNING, 2, _read(tmp_path / "worker-b"))
        (tmp_path / "finish").touch()
        done = await _wait_state(store, job.job_id)
        assert (done.state, done.result) == (JobState.SUCCEEDED, {"worker": "b", "fence": 2})
        assert (tmp_path / "reaped-a-1").exists() and not (tmp_path / "child-a-2").exists()
    finally:
        (tmp_path / "stop").touch()
        for p in procs:
            os.killpg(p.pid, signal.SIGCONT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        await client.aclose()
    print(json.dumps({p: (tmp_path / f"log-{p}").read_text().count("fenced") for p in ("a", "b")}))


def _samples(seconds: float) -> Any:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield
        time.sleep(0.005)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


async def _wait_state(store: Any, job_id: str) -> Any:
    import asyncio
    start = time.monotonic()
    while not (job := await store.get(job_id)).state.finished:
        assert time.monotonic() - start < DEADLINE, "the job never ended"
        await asyncio.sleep(0.05)
    return job
