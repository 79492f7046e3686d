"""The remote replica sides on real OpenZFS, each against this host: SSH to root@127.0.0.1 (a throwaway key,
added to root's authorized_keys for the module and removed after) and HTTP to a second zfsapi server process
on a loopback port (passwordless, as root). For each: the snapshots of a missing and a present dataset, a full
receive of a `zfs send` written through open_receive (plain, and zstd on the wire), holds set and released
twice, and a kill mid-stream that leaves no zfs or ssh process behind and a resume token, read back and
resumed to the same snapshot. Times are printed, never asserted."""

from __future__ import annotations

import asyncio
import os
import time
from typing import AsyncIterator, Iterator

import httpx
import pytest

from zfsapi.adapters.outbound.replicas.http import HttpReplica
from zfsapi.adapters.outbound.replicas.ssh import SshReplica
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.application.ports import ReceivePipe, ReplicaSide
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.replication import Remote
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeSend, ResumeToken, SendSpec

from .conftest import zfs, zfs_processes
from .servers import Server, users_env

TAG = HoldTag.parse("zfsapi:replication")


@pytest.fixture(scope="module")
def server_url(pool, tmp_path_factory) -> Iterator[str]:
    """A second zfsapi (`python -m zfsapi serve`) on a loopback port, for the module."""
    with Server(tmp_path_factory.mktemp("remote"), users_env(repl={"password": "repl-pw"})) as server:
        yield server.url


@pytest.fixture(params=["ssh", "http"])
async def side(request, ssh_options, server_url) -> AsyncIterator[ReplicaSide]:
    if request.param == "ssh":
        yield SshReplica(Remote.parse("root@127.0.0.1"), ZfsExecutor(), options=ssh_options)
        return
    async with httpx.AsyncClient(timeout=60) as client:
        yield HttpReplica(Remote.parse(server_url), client, ZfsExecutor(), username="repl", password="repl-pw")


@pytest.fixture
def target(dataset) -> Iterator[str]:
    name = dataset + "-recv"
    yield name
    zfs("zfs", "destroy", "-r", name, check=False)


def fill(dataset: str, mib: int) -> None:
    mp = zfs("zfs", "get", "-H", "-o", "value", "mountpoint", dataset).stdout.strip()
    with open(os.path.join(mp, f"data{mib}.bin"), "wb") as f:
        f.write(os.urandom(mib << 20))
    zfs("sync")


def guid(snapshot: str) -> int:
    return int(zfs("zfs", "get", "-H", "-p", "-o", "value", "guid", snapshot).stdout)


def holding(target: str) -> list[str]:
    """Every process other than this one whose command line names `target` (zfs receive, ssh, a remote shell)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode("utf-8", "replace")
        except OSError:
            continue
        if target in cmdline and int(pid) != os.getpid():
            found.append(cmdline.replace("\0", " "))
    return found


def read_by_zfs_receive(target: str) -> int:
    """Bytes the running `zfs receive ... target` has read (/proc/PID/io rchar), 0 while there is none."""
    for pid in zfs_processes("receive", target):
        try:
            io = dict(line.split(": ") for line in open(f"/proc/{pid}/io").read().splitlines())
            return int(io["rchar"])
        except OSError:
            continue
    return 0


async def send_into(pipe: ReceivePipe, source: SendSpec | ResumeSend, stop_after: int | None = None) -> int:
    """Write the send's stream into `pipe` (at most `stop_after` bytes); the bytes written."""
    send = await ZfsPipelines(ZfsExecutor()).open_send(source)
    written = 0
    try:
        while chunk := await send.read():
            if stop_after is not None and written + len(chunk) > stop_after:
                chunk = chunk[:stop_after - written]
            await pipe.write(chunk)
            written += len(chunk)
            if stop_after is not None and written >= stop_after:
                break
    finally:
        await send.kill()
    return written


async def test_snapshots_of_a_missing_and_a_present_dataset(side, dataset):
    assert await side.snapshots(DatasetName.parse(dataset + "-missing")) is None
    assert await side.resume_token(DatasetName.parse(dataset + "-missing")) is None
    assert await side.snapshots(DatasetName.parse(dataset)) == []
    zfs("zfs", "snapshot", f"{dataset}@s 1")
    zfs("zfs", "snapshot", f"{dataset}@s2")
    snaps = await side.snapshots(DatasetName.parse(dataset))
    assert [(s.name, s.guid) for s in snaps] == [(f"{dataset}@s 1", guid(f"{dataset}@s 1")),
                                                 (f"{dataset}@s2", guid(f"{dataset}@s2"))]
    assert snaps[0].createtxg < snaps[1].createtxg


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.ZSTD])
async def test_full_receive_through_open_receive(side, dataset, target, compression):
    fill(dataset, 3)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    started = time.monotonic()
    pipe = await side.open_receive(ReceiveSpec(DatasetName.parse(target)), compression)
    try:
        await send_into(pipe, SendSpec(SnapshotName.parse(f"{dataset}@s1")))
        assert await pipe.finish() == f"{target}@s1"
    finally:
        await pipe.kill()
    print(f"{type(side).__name__} {compression.value}: full receive in {time.monotonic() - started:.1f} s")
    assert guid(f"{target}@s1") == guid(f"{dataset}@s1")
    assert [s.guid for s in await side.snapshots(DatasetName.parse(target)) or []] == [guid(f"{dataset}@s1")]


async def test_hold_and_release_are_idempotent(side, dataset):
    zfs("zfs", "snapshot", f"{dataset}@s1")
    snap = SnapshotName.parse(f"{dataset}@s1")
    await side.hold(snap, TAG)
    await side.hold(snap, TAG)
    assert TAG.value in zfs("zfs", "holds", "-H", snap.value).stdout
    await side.release(snap, TAG)
    await side.release(snap, TAG)
    assert zfs("zfs", "holds", "-H", snap.value).stdout == ""
    await side.release(SnapshotName.parse(f"{dataset}@missing"), TAG)


async def test_kill_mid_stream_leaves_no_child_and_a_resume_token(side, dataset, target):
    fill(dataset, 6)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    source = SendSpec(SnapshotName.parse(f"{dataset}@s1"))
    pipe = await side.open_receive(ReceiveSpec(DatasetName.parse(target), resumable=True), Compression.NONE)
    try:
        await send_into(pipe, source, stop_after=5 << 20)
        deadline = time.monotonic() + 120
        while read_by_zfs_receive(target) < 2 << 20:  # the receive is under way there
            assert time.monotonic() < deadline, holding(target)
            await asyncio.sleep(0.2)
    finally:
        killed = time.monotonic()
        await pipe.kill()
    deadline = time.monotonic() + 60
    while left := holding(target):
        assert time.monotonic() < deadline, left
        await asyncio.sleep(0.2)
    print(f"{type(side).__name__}: every process gone {time.monotonic() - killed:.1f} s after kill")
    token = await side.resume_token(DatasetName.parse(target))
    assert token is not None
    assert token == ResumeToken(zfs("zfs", "get", "-H", "-o", "value", "receive_resume_token", target).stdout.strip())

    pipe = await side.open_receive(ReceiveSpec(DatasetName.parse(target), resume_token=token), Compression.ZSTD)
    try:
        await send_into(pipe, ResumeSend(token))
        assert await pipe.finish() == f"{target}@s1"
    finally:
        await pipe.kill()
    assert guid(f"{target}@s1") == guid(f"{dataset}@s1")
    assert await side.resume_token(DatasetName.parse(target)) is None
