"""ReplicatePolicyTarget on real OpenZFS: one policy (a dataset and its child, tiny) with two targets, `one` on
this host and `nas2`, a second zfsapi server process over HTTP (listed in replication.remotes with a password;
its pools are this host's). Snapshots (TakePolicySnapshots), both targets replicated full, then incremental;
then nas2 is down (its server stopped): `one` goes on (its retention prunes its destination), nas2's run fails
naming both datasets, and a prune of the source evaluated days later keeps nas2's base (its hold), a snapshot
made by hand and one with a foreign hold; back up, nas2 catches up incrementally. The duration is printed.
And destroy_snapshots (what a target's retention destroys with) on each replica side: this host, SSH, HTTP."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import httpx
import pytest

from tests.fakes import FixedClock
from zfsapi.adapters.outbound.replicas.http import HttpReplica
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.replicas.sides import RemoteConfig, ReplicaSides, Secret
from zfsapi.adapters.outbound.replicas.ssh import SshReplica
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.adapters.outbound.zfs.policy_ops import ZfsPolicyOps
from zfsapi.application.policies import Prune, TakePolicySnapshots
from zfsapi.application.policy_replication import ReplicatePolicyTarget, TargetIncomplete, TargetRun
from zfsapi.application.replication import Replicate
from zfsapi.domain.authz import LOCALHOST
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import Policy, parse_policy
from zfsapi.domain.replication import NamedRemote, Remote, RemoteBook

from .conftest import mountpoint, zfs
from .servers import Server, users_env

pytestmark = pytest.mark.zfs


@pytest.fixture(scope="module")
def nas2(pool, tmp_path_factory) -> Iterator[Server]:
    """The second zfsapi (`python -m zfsapi serve`) on a loopback port, with the user `repl`."""
    with Server(tmp_path_factory.mktemp("nas2"), users_env(repl={"password": "repl-pw"}), name="nas2") as server:
        yield server


@pytest.fixture
def names(pool) -> Iterator[tuple[str, str, str]]:
    """The source root and the two destinations, all destroyed (holds released) at the end."""
    tag = uuid.uuid4().hex[:6]
    out = (f"{pool}/prepl {tag}", f"{pool}/prepl {tag}-one", f"{pool}/prepl {tag}-two")
    yield out
    for name in out:
        snaps = zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", name, check=False).stdout.splitlines()
        for line in zfs("zfs", "holds", "-H", *snaps, check=False).stdout.splitlines() if snaps else []:
            snapshot, held, _ = line.split("\t")
            zfs("zfs", "release", held, snapshot, check=False)
        zfs("zfs", "destroy", "-R", name, check=False)


def write(dataset: str) -> None:
    with open(os.path.join(mountpoint(dataset), f"f-{uuid.uuid4().hex[:6]}"), "wb") as f:
        f.write(os.urandom(64 << 10))
    zfs("zpool", "sync", dataset.split("/")[0])


def guid(snapshot: str) -> int:
    return int(zfs("zfs", "get", "-H", "-p", "-o", "value", "guid", snapshot).stdout)


def holds(snapshot: str) -> list[str]:
    return sorted(line.split("\t")[1] for line in zfs("zfs", "holds", "-H", snapshot).stdout.splitlines())


def snapshots(dataset: str) -> list[str]:
    out = zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", "-s", "createtxg", dataset).stdout
    return [line.split("@", 1)[1] for line in out.splitlines()]


class Rig:
    def __init__(self, policy: Policy, url: str) -> None:
        executor = ZfsExecutor()
        gateway, pipelines = ZfsCliGateway(executor), ZfsPipelines(executor)
        self.ops = ZfsPolicyOps(executor)
        self.clock = FixedClock(datetime.now(timezone.utc))
        book = RemoteBook((NamedRemote("nas2", Remote.parse(url), credentials=True),))
        self.sides = ReplicaSides(LocalReplica(gateway, gateway, pipelines), executor,
                                  config=RemoteConfig(book, {"nas2": Secret("repl", "repl-pw")}))
        replicate = Replicate(gateway, gateway, gateway, pipelines, self.sides, self.clock, retries=1, backoff=0.2)
        self.replicate = ReplicatePolicyTarget(self.ops, replicate, self.sides, self.clock)
        self.take = TakePolicySnapshots(self.ops, self.clock)
        self.policy = policy

    async def snapshot(self) -> str:
        run = await self.take(self.policy)
        assert len(run.taken) == 2 and not run.failed
        self.clock.when += timedelta(minutes=1)
        return run.short

    async def run(self, target: str) -> TargetRun:
        started = time.monotonic()
        progress = ProgressMeter()
        done = await self.replicate(self.policy, target, who=LOCALHOST, progress=progress)
        print(f"{target}: {[d.mode for d in done.datasets]}, {done.bytes} bytes in {time.monotonic() - started:.1f} s")
        assert progress.read().bytes_done == done.bytes
        return done


async def test_a_policy_with_two_targets(names: tuple[str, str, str], nas2: Server) -> None:
    started = time.monotonic()
    root, one, two = names
    child = f"{root}/a"
    for name in (root, child):
        zfs("zfs", "create", name)
    policy = parse_policy({"name": "it", "datasets": [root], "snapshot": {"prefix": "auto"},
                           "retention": {"keep_last": 1},
                           "replicate": {"one": {"remote": "local", "destination": one},
                                         "nas2": {"remote": "nas2", "destination": two, "retention": "none"}}})
    rig = Rig(policy, nas2.url)
    try:
        s1 = await rig.snapshot()
        for target, destination in (("one", one), ("nas2", two)):
            run = await rig.run(target)
            assert [(d.destination, d.mode) for d in run.datasets] == [(destination, "full"),
                                                                       (f"{destination}/a", "full")]
            assert guid(f"{destination}/a@{s1}") == guid(f"{child}@{s1}")
        assert holds(f"{root}@{s1}") == ["zfsapi:it:nas2", "zfsapi:it:one"]

        write(child)
        s2 = await rig.snapshot()
        for target in ("one", "nas2"):
            run = await rig.run(target)
            assert [(d.snapshot, d.mode) for d in run.datasets] == [(s2, "incremental")] * 2
            assert run.base_snapshot == s2
        assert run.destroyed_on_target == []  # nas2 keeps everything ("none")
        assert (holds(f"{root}@{s1}"), holds(f"{child}@{s2}")) == ([], ["zfsapi:it:nas2", "zfsapi:it:one"])

        nas2.stop()  # nas2 is down from here
        write(child)
        s3 = await rig.snapshot()
        zfs("zfs", "snapshot", f"{root}@by-hand")
        zfs("zfs", "hold", "keep", f"{root}@{s1}")
        s4 = await rig.snapshot()
        run = await rig.run("one")
        assert [(d.snapshot, d.mode) for d in run.datasets] == [(s4, "incremental")] * 2
        # one's retention (same as the source: keep_last 1) pruned its destination; the base s4 and the
        # snapshot made by hand (sent with -I) stay
        assert sorted(run.destroyed_on_target) == sorted(f"{d}@{s}" for d in (one, f"{one}/a") for s in (s2, s3))
        assert snapshots(one) == ["by-hand", s4] and snapshots(f"{one}/a") == [s4]
        with pytest.raises(TargetIncomplete) as down:
            await rig.run("nas2")
        assert sorted(down.value.failed) == [root, child]
        assert nas2.url in down.value.failed[root]

        pruned = await Prune(rig.ops, rig.clock)(policy, at=datetime.now(timezone.utc) + timedelta(days=3))
        assert sorted(s.value for s in pruned.destroyed) == sorted([f"{root}@{s3}", f"{child}@{s1}",
                                                                    f"{child}@{s3}"])
        # s1: a foreign hold; s2: nas2's base; by-hand: not the policy's; s4: the newest (and one's base)
        assert snapshots(root) == [s1, s2, "by-hand", s4]
        assert snapshots(child) == [s2, s4]

        nas2.start()  # back: it catches up from its base s2
        run = await rig.run("nas2")
        assert [(d.snapshot, d.mode) for d in run.datasets] == [(s4, "incremental")] * 2
        assert guid(f"{two}/a@{s4}") == guid(f"{child}@{s4}")
        assert holds(f"{child}@{s2}") == [] and holds(f"{child}@{s4}") == ["zfsapi:it:nas2", "zfsapi:it:one"]
    finally:
        await rig.sides.aclose()
    print(f"policy replication, two targets: {time.monotonic() - started:.1f} s")


@pytest.fixture(params=["local", "ssh", "http"])
async def side(request, ssh_options, nas2):
    """Each replica side, on this host's pools."""
    executor = ZfsExecutor()
    if request.param == "local":
        gateway = ZfsCliGateway(executor)
        yield LocalReplica(gateway, gateway, ZfsPipelines(executor))
    elif request.param == "ssh":
        yield SshReplica(Remote.parse("root@127.0.0.1"), executor, options=ssh_options)
    else:
        if nas2.proc is None:
            nas2.start()
        async with httpx.AsyncClient(timeout=60) as client:
            yield HttpReplica(Remote.parse(nas2.url), client, executor, username="repl", password="repl-pw")


async def test_destroy_snapshots_on_each_side(side, dataset) -> None:
    """A target's retention destroys through its side: the held one is refused with ZFS's reason, a missing
    one skipped, the others destroyed; the detailed listing has each snapshot's creation and userrefs."""
    for short in ("s1", "s2", "s3"):
        zfs("zfs", "snapshot", f"{dataset}@{short}")
    zfs("zfs", "hold", "keep", f"{dataset}@s1")  # released by the `dataset` fixture
    ds = DatasetName.parse(dataset)
    listed = await side.snapshots(ds, details=True)
    assert [(s.short, s.userrefs) for s in listed or []] == [("s1", 1), ("s2", 0), ("s3", 0)]
    creations = {short: int(zfs("zfs", "get", "-H", "-p", "-o", "value", "creation", f"{dataset}@{short}").stdout)
                 for short in ("s1", "s2", "s3")}
    assert {s.short: s.creation for s in listed or []} == creations  # ZFS's own figure, whatever the clock says
    refused = await side.destroy_snapshots(ds, ["s1", "s2", "gone", "s3"])
    print(type(side).__name__, refused)
    assert list(refused) == ["s1"]
    assert snapshots(dataset) == ["s1"]
