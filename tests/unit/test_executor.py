"""The executor with stand-in binaries: timeouts and cancellation kill and reap the child."""

from __future__ import annotations

import asyncio
import os
import stat
import time

import pytest

from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.domain.errors import ZfsCommandFailed, ZfsUnavailable


def script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); check its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


async def test_runs_argv_and_collects(tmp_path):
    zfs = script(tmp_path, "zfs", 'printf "%s|" "$@"; echo err >&2; exit 3\n')
    metrics = Metrics()
    done = await ZfsExecutor(zfs=zfs, metrics=metrics).run(["zfs", "list", "-H", "a b; rm -rf /"])
    assert done.exit_code == 3 and done.stdout == b"list|-H|a b; rm -rf /|" and done.stderr == "err"
    assert metrics.zfs_commands.labels("zfs", "list", "failed")._value.get() == 1


async def test_missing_binary_is_unavailable(tmp_path):
    with pytest.raises(ZfsUnavailable):
        await ZfsExecutor(zfs=str(tmp_path / "nope")).run(["zfs", "list"])


async def test_timeout_kills_the_child(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f'echo $$ > {pidfile}; exec sleep 30\n')
    with pytest.raises(ZfsCommandFailed) as exc:
        await ZfsExecutor(zfs=zfs).run(["zfs", "list"], timeout=0.5)
    assert "timed out" in exc.value.stderr
    if pidfile.exists() and pidfile.read_text().strip():  # on a busy machine it may be killed before writing it
        assert not alive(int(pidfile.read_text()))


async def test_cancellation_kills_and_reaps_the_child(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f'echo $$ > {pidfile}; exec sleep 30\n')
    task = asyncio.create_task(ZfsExecutor(zfs=zfs).run(["zfs", "list"]))
    deadline = time.monotonic() + 30  # generous: the machine may be busy
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the child never started"
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(int(pidfile.read_text()))


async def test_concurrency_cap(tmp_path):
    zfs = script(tmp_path, "zfs", f'mkdir {tmp_path}/lock 2>/dev/null || exit 9; sleep 0.05; rmdir {tmp_path}/lock\n')
    ex = ZfsExecutor(zfs=zfs, max_concurrency=1)
    results = await asyncio.gather(*(ex.run(["zfs", "list"]) for _ in range(5)))
    assert [r.exit_code for r in results] == [0] * 5
