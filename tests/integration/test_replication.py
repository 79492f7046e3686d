"""Replication on real OpenZFS between two file-backed pools of one session: full, incremental, up to date,
diverged (-32015 naming the snapshots), recursive with a child, holds and bookmark following the replicated
snapshot, cancel mid-transfer (no zfs child left, the token kept) and resume from it, a receive killed mid-transfer
resumed by the retry, and a 1 MB/s limit (the measured rate is printed, and must stay under 1.5x)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid

import pytest

from zfsapi.adapters.inbound.jsonrpc.errors import to_rpc_error
from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.application.ports import ReplicaSide
from zfsapi.application.replication import Replicate, ReplicationResult
from zfsapi.domain.authz import LOCALHOST, Principal
from zfsapi.domain.errors import InvalidArgument, StateConflict
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.replication import NamedRemote, ReplicationMode, ReplicationSpec

from .conftest import file_pools, zfs
from .test_transfers import fill, same_snapshot

pytestmark = pytest.mark.zfs
FULL, INCREMENTAL, UP_TO_DATE = ReplicationMode.FULL, ReplicationMode.INCREMENTAL, ReplicationMode.UP_TO_DATE
HOLD = "zfsapi:replication"


@pytest.fixture(scope="session")
def pools():
    """Two small pools (source, destination), destroyed at the end even after failures."""
    with file_pools("zr", 2, 256 << 20) as names:
        yield tuple(names)


class Here:
    """The Replicas port for this host only."""

    def __init__(self, side: ReplicaSide) -> None:
        self._side = side

    def resolve(self, remote: str, who: Principal) -> NamedRemote:
        raise InvalidArgument("remote", "this host only")

    def side(self, target: NamedRemote | None, who: Principal) -> ReplicaSide:
        return self._side


@pytest.fixture
def replicate() -> Replicate:
    executor = ZfsExecutor()
    gateway, pipelines = ZfsCliGateway(executor), ZfsPipelines(executor)
    return Replicate(gateway, gateway, gateway, pipelines, Here(LocalReplica(gateway, gateway, pipelines)),
                     SystemClock(), retries=3, backoff=0.2)


@pytest.fixture
def pair(pools):
    """A fresh source filesystem with an awkward name, and the name of its destination in the other pool."""
    tag = uuid.uuid4().hex[:6]
    source, destination = f"{pools[0]}/src {tag}:x.y", f"{pools[1]}/dst {tag}.z"
    zfs("zfs", "create", source)
    yield source, destination
    for name in (source, destination):
        for snap in zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", name, check=False).stdout.split("\n"):
            if snap:
                zfs("zfs", "release", HOLD, snap, check=False)
        zfs("zfs", "destroy", "-R", name, check=False)


async def run(uc: Replicate, source: str, destination: str, progress: ProgressMeter | None = None,
              **params: object) -> ReplicationResult:
    spec = ReplicationSpec.parse(source=source, destination=destination, **params)  # type: ignore[arg-type]
    return await uc.execute(who=LOCALHOST, spec=spec, progress=progress or ProgressMeter())


def holds(snapshot: str) -> list[str]:
    return sorted(line.split("\t")[1] for line in zfs("zfs", "holds", "-H", snapshot).stdout.splitlines())


def bookmarks(dataset: str) -> list[str]:
    out = zfs("zfs", "list", "-H", "-o", "name", "-t", "bookmark", "-d", "1", dataset).stdout
    return [line.split("#", 1)[1] for line in out.splitlines()]


def token(dataset: str) -> str:
    return zfs("zfs", "get", "-H", "-o", "value", "receive_resume_token", dataset).stdout.strip()


def zfs_children() -> list[str]:
    """zfs processes this test process started and that still run (or wait to be reaped)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines()
            if line.split()[1].strip("[]").rsplit("/", 1)[-1] == "zfs"]


async def bytes_reach(progress: ProgressMeter, nbytes: int, task: asyncio.Task[object]) -> None:
    deadline = time.monotonic() + 120
    while progress.bytes_done < nbytes:
        assert not task.done(), task
        assert time.monotonic() < deadline, "the transfer never got going"
        await asyncio.sleep(0.05)


async def test_full_incremental_up_to_date_with_holds_and_bookmark(replicate, pair) -> None:
    source, destination = pair
    fill(source, 2)
    zfs("zfs", "snapshot", f"{source}@s1")
    started = time.monotonic()
    progress = ProgressMeter()
    first = await run(replicate, f"{source}@s1", destination, progress=progress)
    assert (first.mode, first.from_snapshot, first.resumed) == (FULL, None, False)
    assert first.bytes == progress.read().bytes_done and first.bytes >= 2 << 20
    same_snapshot(f"{source}@s1", f"{destination}@s1")
    assert holds(f"{source}@s1") == holds(f"{destination}@s1") == [HOLD]
    assert bookmarks(source) == ["zfsapi-repl-s1"]

    fill(source, 1, "more.bin")
    zfs("zfs", "snapshot", f"{source}@s2")
    fill(source, 1, "last.bin")
    zfs("zfs", "snapshot", f"{source}@s3")
    zfs("zfs", "set", "atime=on", destination)
    os.listdir(zfs("zfs", "get", "-H", "-o", "value", "mountpoint", destination).stdout.strip())  # touch the replica
    second = await run(replicate, f"{source}@s3", destination)
    assert (second.mode, second.from_snapshot) == (INCREMENTAL, f"{source}@s1")
    for short in ("s2", "s3"):  # -I: the snapshot between went too
        same_snapshot(f"{source}@{short}", f"{destination}@{short}")
    assert holds(f"{source}@s1") == holds(f"{destination}@s1") == []
    assert holds(f"{source}@s3") == holds(f"{destination}@s3") == [HOLD]
    assert bookmarks(source) == ["zfsapi-repl-s3"]

    third = await run(replicate, f"{source}@s3", destination)
    assert (third.mode, third.bytes) == (UP_TO_DATE, 0)
    print(f"full, incremental, up to date: {time.monotonic() - started:.1f} s")


async def test_a_dataset_source_is_snapshotted_now(replicate, pair) -> None:
    source, destination = pair
    result = await run(replicate, source, destination, sync=False)
    short = result.source_snapshot.split("@")[1]
    assert short.startswith("zfsapi-repl_") and result.mode is FULL
    same_snapshot(result.source_snapshot, f"{destination}@{short}")
    assert holds(result.source_snapshot) == [] and bookmarks(source) == []


async def test_incremental_from_the_bookmark(replicate, pair) -> None:
    source, destination = pair
    zfs("zfs", "snapshot", f"{source}@s1")
    await run(replicate, f"{source}@s1", destination)
    zfs("zfs", "release", HOLD, f"{source}@s1")
    zfs("zfs", "destroy", f"{source}@s1")
    fill(source, 1)
    zfs("zfs", "snapshot", f"{source}@s2")
    result = await run(replicate, f"{source}@s2", destination)
    assert (result.mode, result.from_snapshot) == (INCREMENTAL, f"{source}#zfsapi-repl-s1")
    same_snapshot(f"{source}@s2", f"{destination}@s2")
    assert holds(f"{destination}@s1") == [] and bookmarks(source) == ["zfsapi-repl-s2"]


async def test_a_diverged_destination_is_refused_naming_the_snapshots(replicate, pair) -> None:
    source, destination = pair
    zfs("zfs", "snapshot", f"{source}@s1")
    await run(replicate, f"{source}@s1", destination, sync=False)
    zfs("zfs", "snapshot", f"{destination}@mine")
    zfs("zfs", "snapshot", f"{source}@s2")
    with pytest.raises(StateConflict) as diverged:
        await run(replicate, f"{source}@s2", destination)
    error = to_rpc_error(diverged.value, "migration_create")
    assert error.code == -32015
    assert error.data == {"reason": diverged.value.reason, "destination_snapshot": f"{destination}@mine",
                          "common": f"{destination}@s1"}
    assert f"{destination}@mine" in diverged.value.reason and f"{destination}@s1" in diverged.value.reason


async def test_recursive_keeps_the_child_in_step(replicate, pair) -> None:
    source, destination = pair
    zfs("zfs", "create", f"{source}/kid 1")
    fill(f"{source}/kid 1", 1)
    zfs("zfs", "snapshot", "-r", f"{source}@r1")
    first = await run(replicate, f"{source}@r1", destination, recursive=True)
    assert first.mode is FULL
    same_snapshot(f"{source}/kid 1@r1", f"{destination}/kid 1@r1")
    fill(f"{source}/kid 1", 1, "more.bin")
    zfs("zfs", "snapshot", "-r", f"{source}@r2")
    second = await run(replicate, f"{source}@r2", destination, recursive=True)
    assert (second.mode, second.from_snapshot) == (INCREMENTAL, f"{source}@r1")
    same_snapshot(f"{source}/kid 1@r2", f"{destination}/kid 1@r2")
    assert holds(f"{source}/kid 1@r2") == holds(f"{destination}/kid 1@r2") == [HOLD]
    assert holds(f"{source}/kid 1@r1") == holds(f"{destination}/kid 1@r1") == []


async def test_cancel_leaves_no_zfs_child_and_the_token_then_resume(replicate, pair) -> None:
    source, destination = pair
    fill(source, 4)
    zfs("zfs", "snapshot", f"{source}@big")
    progress = ProgressMeter()
    task = asyncio.ensure_future(run(replicate, f"{source}@big", destination, progress=progress, limit=1))
    await bytes_reach(progress, 2 << 20, task)
    assert zfs_children(), "the transfer's zfs processes are children of this process"
    total = progress.read().bytes_total
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert zfs_children() == []
    assert token(destination) not in ("", "-")

    resumed = await run(replicate, f"{source}@big", destination)
    assert (resumed.mode, resumed.resumed) == (FULL, True)
    assert total is not None and resumed.bytes <= total - (1 << 20)  # the rest, not the whole stream again
    same_snapshot(f"{source}@big", f"{destination}@big")
    assert token(destination) == "-"
    print(f"resumed with {resumed.bytes} bytes of the stream")


async def test_a_killed_receive_is_resumed_by_the_retry(replicate, pair) -> None:
    source, destination = pair
    fill(source, 3)
    zfs("zfs", "snapshot", f"{source}@s1")
    progress = ProgressMeter()
    task = asyncio.ensure_future(run(replicate, f"{source}@s1", destination, progress=progress, limit=1))
    await bytes_reach(progress, 1 << 20, task)
    (receive,) = [line for line in zfs_children() if " receive " in line]
    os.kill(int(receive.split()[0]), signal.SIGKILL)
    result = await asyncio.wait_for(task, 120)
    assert (result.mode, result.resumed) == (FULL, True)
    same_snapshot(f"{source}@s1", f"{destination}@s1")


async def test_the_limit_caps_the_rate(replicate, pair) -> None:
    source, destination = pair
    fill(source, 3)
    zfs("zfs", "snapshot", f"{source}@s1")
    result = await run(replicate, f"{source}@s1", destination, limit=1, sync=False)
    rate = result.bytes / result.duration
    print(f"limit 1 MB/s: {result.bytes} bytes in {result.duration:.2f} s = {rate / 1e6:.3f} MB/s")
    assert rate <= 1.5e6
    same_snapshot(f"{source}@s1", f"{destination}@s1")
