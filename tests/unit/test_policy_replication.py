"""ReplicatePolicyTarget without ZFS: a policy's datasets replicated over FakeZfs (two pools) with FakeStreams, the
real Replicate and LocalReplica, and FakePolicyOps at the PolicyZfs port. A first run is full and a second
incremental; the target's base (its own hold and bookmark) follows; a target's retention prunes the destination
(by guid, and by name what the source no longer has) and keeps the base, held and foreign snapshots; a target
that is down keeps its old base held, so the source prune keeps it, and catches up once back; two targets' holds
are independent; one failing dataset does not stop the others. And destinations, and each replica side's
destroy_snapshots (this host, SSH through a stand-in, HTTP against a stand-in zfsapi)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

import pytest

from tests.fakes import FakePolicyOps, FakeStreams, FakeZfs, FixedClock
from tests.unit.test_replicas_remote import Remote_, fake_ssh, recorded, replica, rpc_answer  # noqa: F401 (fixture)
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.replicas.ssh import SshReplica
from zfsapi.application.policies import Prune, TakePolicySnapshots
from zfsapi.application.policy_replication import (
    ReplicatePolicyTarget,
    TargetIncomplete,
    TargetRun,
    destinations,
    doomed_on_target,
)
from zfsapi.application.replication import Replicate
from zfsapi.domain.authz import LOCALHOST, Principal
from zfsapi.domain.errors import InvalidArgument, NotFound, ZfsUnavailable
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.policies import RetentionCounts, parse_policy
from zfsapi.domain.replication import NamedRemote, Remote, RemoteBook
from zfsapi.domain.transfer import Compression, ReceiveSpec

T0 = datetime(2026, 3, 2, 0, 30, tzinfo=timezone.utc)


class Switch:
    """A replica side that can be down (every call: ZfsUnavailable), else this host's."""

    def __init__(self, side: LocalReplica) -> None:
        self.side, self.down = side, False

    def _check(self) -> None:
        if self.down:
            raise ZfsUnavailable("ssh to backup@nas2.example: Connection refused")

    async def snapshots(self, dataset: DatasetName, *, details: bool = False) -> list[Snapshot] | None:
        self._check()
        return await self.side.snapshots(dataset, details=details)

    async def resume_token(self, dataset: DatasetName) -> Any:
        self._check()
        return await self.side.resume_token(dataset)

    async def abort_receive(self, dataset: DatasetName) -> None:
        self._check()
        await self.side.abort_receive(dataset)

    async def open_receive(self, spec: ReceiveSpec, compression: Compression) -> Any:
        self._check()
        return await self.side.open_receive(spec, compression)

    async def hold(self, snapshot: SnapshotName, tag: Any) -> None:
        self._check()
        await self.side.hold(snapshot, tag)

    async def release(self, snapshot: SnapshotName, tag: Any) -> None:
        self._check()
        await self.side.release(snapshot, tag)

    async def destroy_snapshots(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        self._check()
        return await self.side.destroy_snapshots(dataset, shorts)


class Phases(ProgressMeter):
    def __init__(self) -> None:
        super().__init__()
        self.phases: list[str] = []

    def phase(self, name: str) -> None:
        super().phase(name)
        self.phases.append(name)


class World:
    """tank/home (with a child a) replicated by the policy `p` to `one` (this host, backup/one) and `two` (the
    remote nas2: this host's pools behind a side that can be down, backup/two)."""

    def __init__(self, **policy: Any) -> None:
        self.clock = FixedClock(T0)
        self.zfs = FakeZfs(pools=("tank", "backup"))
        self.ops = FakePolicyOps(self.zfs, now=lambda: int(self.clock.when.timestamp()))
        self.streams = FakeStreams(self.zfs, padding=1000)
        self.local = LocalReplica(self.zfs, self.streams, self.streams)
        self.nas2 = Switch(self.local)
        self.book = RemoteBook((NamedRemote("nas2", Remote.parse("backup@nas2.example")),))
        replicate = Replicate(self.zfs, self.zfs, self.streams, self.streams, self, self.clock, retries=0,
                              backoff=0.0)
        self.replicate = ReplicatePolicyTarget(self.ops, replicate, self, self.clock)
        self.take = TakePolicySnapshots(self.ops, self.clock)
        self.policy = parse_policy({
            "name": "p", "datasets": ["tank/home"], "snapshot": {"prefix": "auto"}, "retention": {"keep_last": 1},
            "replicate": {"one": {"remote": "local", "destination": "backup/one"},
                          "two": {"remote": "nas2", "destination": "backup/two", "retention": "none"}},
            **policy})

    def resolve(self, remote: str, who: Principal) -> NamedRemote:
        return self.book.resolve(remote, who)

    def side(self, target: NamedRemote | None, who: Principal) -> Any:
        return self.local if target is None else self.nas2

    async def setup(self) -> World:
        for name in ("tank/home", "tank/home/a"):
            await self.zfs.create_dataset(DatasetName.parse(name), properties={}, parents=False)
        return self

    async def snapshot(self, hours: int = 1) -> str:
        """A policy snapshot run now; the clock then moves on `hours`."""
        run = await self.take(self.policy)
        self.clock.when += timedelta(hours=hours)
        return run.short

    async def run(self, target: str, progress: ProgressMeter | None = None) -> TargetRun:
        return await self.replicate(self.policy, target, who=LOCALHOST, progress=progress or ProgressMeter())

    def holds(self, name: str) -> list[str]:
        return sorted(self.zfs.snapshots[name].holds)

    def names(self, dataset: str) -> list[str]:
        return [n.split("@")[1] for n in self.zfs._snaps_of(dataset)]

    def bookmarks(self, dataset: str) -> dict[str, int]:
        return {b: self.zfs.bookmark_guids[b] for b in self.zfs.bookmarks if b.startswith(dataset + "#")}


@pytest.fixture
async def world() -> World:
    return await World().setup()


async def test_first_run_full_then_incremental_and_the_base_follows(world: World) -> None:
    s1 = await world.snapshot()
    progress = Phases()
    first = await world.run("one", progress)
    assert [(d.dataset, d.destination, d.snapshot, d.mode) for d in first.datasets] == [
        ("tank/home", "backup/one", s1, "full"), ("tank/home/a", "backup/one/a", s1, "full")]
    assert first.base_snapshot == s1 and first.destroyed_on_target == []
    assert first.bytes == sum(d.bytes for d in first.datasets) > 0
    assert progress.phases[0] == "plan" and progress.phases[-2:] == ["base", "target retention"]
    assert [p for p in progress.phases if p.startswith("send")] == ["send tank/home", "send tank/home/a"]
    assert progress.read().bytes_done == first.bytes
    for ds in ("tank/home", "tank/home/a"):
        assert world.holds(f"{ds}@{s1}") == ["zfsapi:p:one"]  # the policy's own tag, not zfsapi:replication
        assert world.bookmarks(ds) == {f"{ds}#zfsapi-p-one": world.zfs.snapshots[f"{ds}@{s1}"].guid}
    assert world.holds(f"backup/one@{s1}") == []

    s2 = await world.snapshot()
    second = await world.run("one")
    assert [(d.destination, d.snapshot, d.mode) for d in second.datasets] == [
        ("backup/one", s2, "incremental"), ("backup/one/a", s2, "incremental")]
    assert second.base_snapshot == s2
    assert (world.holds(f"tank/home@{s1}"), world.holds(f"tank/home@{s2}")) == ([], ["zfsapi:p:one"])
    assert world.bookmarks("tank/home") == {"tank/home#zfsapi-p-one": world.zfs.snapshots[f"tank/home@{s2}"].guid}
    # same_as_source: keep_last 1 on the target as on the source
    assert second.destroyed_on_target == [f"backup/one@{s1}", f"backup/one/a@{s1}"]
    assert world.names("backup/one") == [s2]
    third = await world.run("one")
    assert [d.mode for d in third.datasets] == ["up_to_date", "up_to_date"] and third.bytes == 0


async def test_target_retention_by_counts_keeps_the_base_held_and_foreign_snapshots() -> None:
    w = await World(replicate={"one": {"remote": "local", "destination": "backup/one",
                                       "retention": {"keep_last": 2}}}).setup()
    s1 = await w.snapshot()
    await w.run("one")
    await w.zfs.hold(SnapshotName.parse(f"backup/one@{s1}"), HoldTag.parse("keep"), recursive=False)
    s2 = await w.snapshot()
    await w.run("one")
    s3 = await w.snapshot()
    await w.run("one")
    # the source pruned s2 meanwhile: on the target it is the policy's by its name
    await w.zfs.destroy_snapshot(SnapshotName.parse(f"tank/home@{s2}"), recursive=False)
    await w.zfs.create_snapshot(SnapshotName.parse("tank/home@by-hand"), recursive=False, properties={})
    s4 = await w.snapshot()
    s5 = await w.snapshot()
    run = await w.run("one")
    assert run.destroyed_on_target == [f"backup/one@{s2}", f"backup/one@{s3}", f"backup/one/a@{s2}",
                                       f"backup/one/a@{s3}"]
    assert w.names("backup/one") == [s1, "by-hand", s4, s5]  # s1: held; by-hand: not the policy's
    assert w.names("backup/one/a") == [s4, s5]


async def test_a_target_down_keeps_its_old_base_held_and_the_source_prune_keeps_it(world: World) -> None:
    s1 = await world.snapshot()
    await world.run("one")
    await world.run("two")
    assert world.holds(f"tank/home@{s1}") == ["zfsapi:p:one", "zfsapi:p:two"]
    s2 = await world.snapshot()
    await world.run("one")
    world.nas2.down = True
    with pytest.raises(TargetIncomplete) as down:
        await world.run("two")
    assert down.value.failed == {ds: "ZFS unavailable: ssh to backup@nas2.example: Connection refused"
                                 for ds in ("tank/home", "tank/home/a")}
    assert "target 'two': 2 of 2 datasets failed: tank/home: " in down.value.reason
    assert down.value.run.datasets == [] and down.value.run.base_snapshot is None
    # one moved on (only its own tag left s1); two's hold stays on s1
    assert world.holds(f"tank/home@{s1}") == ["zfsapi:p:two"]
    assert world.holds(f"tank/home@{s2}") == ["zfsapi:p:one"]
    s3 = await world.snapshot()
    await world.run("one")
    pruned = await Prune(world.ops, world.clock)(world.policy, at=world.clock.now() + timedelta(days=10))
    assert sorted(s.value for s in pruned.destroyed) == [f"tank/home/a@{s2}", f"tank/home@{s2}"]
    assert world.names("tank/home") == [s1, s3]  # two's base survived the prune (keep_last 1)

    world.nas2.down = False
    back = await world.run("two")
    assert [(d.snapshot, d.mode) for d in back.datasets] == [(s3, "incremental"), (s3, "incremental")]
    assert world.holds(f"tank/home@{s1}") == []
    assert world.holds(f"tank/home@{s3}") == ["zfsapi:p:one", "zfsapi:p:two"]
    assert back.destroyed_on_target == []  # two's retention is "none"
    assert s1 in world.names("backup/two")


async def test_two_targets_holds_are_independent(world: World) -> None:
    s1 = await world.snapshot()
    await world.run("one")
    await world.run("two")
    s2 = await world.snapshot()
    await world.run("two")
    assert world.holds(f"tank/home@{s1}") == ["zfsapi:p:one"]  # moving two's base left one's alone
    assert world.holds(f"tank/home@{s2}") == ["zfsapi:p:two"]
    assert sorted(world.bookmarks("tank/home")) == ["tank/home#zfsapi-p-one", "tank/home#zfsapi-p-two"]
    await world.run("one")
    assert world.holds(f"tank/home@{s1}") == []
    assert world.holds(f"tank/home@{s2}") == ["zfsapi:p:one", "zfsapi:p:two"]


async def test_one_failing_dataset_does_not_stop_the_others(world: World) -> None:
    s1 = await world.snapshot()
    await world.run("one")
    await world.zfs.create_snapshot(SnapshotName.parse("backup/one/a@local"), recursive=False, properties={})
    s2 = await world.snapshot()
    with pytest.raises(TargetIncomplete) as failed:
        await world.run("one")
    assert list(failed.value.failed) == ["tank/home/a"] and "diverged" in failed.value.failed["tank/home/a"]
    run = failed.value.run
    assert [(d.dataset, d.mode) for d in run.datasets] == [("tank/home", "incremental")]
    assert run.base_snapshot == s2 and run.destroyed_on_target == [f"backup/one@{s1}"]
    assert world.holds(f"tank/home@{s2}") == ["zfsapi:p:one"]
    assert world.holds(f"tank/home/a@{s1}") == ["zfsapi:p:one"]  # the failed one keeps its old base
    assert failed.value.details["failed"] == failed.value.failed
    assert failed.value.details["run"]["datasets"][0]["destination"] == "backup/one"


async def test_an_unknown_target_and_a_policy_without_snapshots(world: World) -> None:
    with pytest.raises(InvalidArgument) as bad:
        await world.run("three")
    assert bad.value.param == "target"
    await world.zfs.create_snapshot(SnapshotName.parse("tank/home@by-hand"), recursive=False, properties={})
    run = await world.run("one")  # nothing the policy owns: nothing to send
    assert (run.datasets, run.base_snapshot, run.bytes) == ([], None, 0)


# ---- destinations ----

def _ds(*names: str) -> list[DatasetName]:
    return [DatasetName.parse(n) for n in names]


def test_one_root_lands_on_the_destination() -> None:
    policy = parse_policy({"name": "p", "datasets": ["tank/home", "tank/home/x", "!tank/home/tmp"],
                           "replicate": {"t": {"remote": "local", "destination": "backup/h"}}})
    target = policy.replicate[0]
    got = destinations(policy, target, _ds("tank/home", "tank/home/x", "tank/home/x/y"))
    assert {k.value: v.value for k, v in got.items()} == {
        "tank/home": "backup/h", "tank/home/x": "backup/h/x", "tank/home/x/y": "backup/h/x/y"}


def test_several_roots_land_below_the_destination_without_their_pool() -> None:
    policy = parse_policy({"name": "p", "datasets": ["tank/home", "fast/db/main", "vault"],
                           "replicate": {"t": {"remote": "local", "destination": "backup/all"}}})
    got = destinations(policy, policy.replicate[0], _ds("tank/home", "tank/home/u", "fast/db/main", "vault/x"))
    assert {k.value: v.value for k, v in got.items()} == {
        "tank/home": "backup/all/home", "tank/home/u": "backup/all/home/u", "fast/db/main": "backup/all/db/main",
        "vault/x": "backup/all/vault/x"}


def test_two_datasets_landing_on_one_name_are_refused() -> None:
    policy = parse_policy({"name": "p", "datasets": ["tank/home", "fast/home"],
                           "replicate": {"t": {"remote": "local", "destination": "backup/all"}}})
    with pytest.raises(InvalidArgument) as clash:
        destinations(policy, policy.replicate[0], _ds("fast/home", "tank/home"))
    assert clash.value.param == "replicate.t.destination"
    assert clash.value.reason == "fast/home and tank/home would both land on backup/all/home"


def test_doomed_on_target_never_the_base_a_held_one_or_an_unknown_age() -> None:
    policy = parse_policy({"name": "p", "datasets": ["tank"], "snapshot": {"prefix": "auto"},
                           "replicate": {"t": {"remote": "local", "destination": "backup/t"}}})
    counts = RetentionCounts(keep_last=1)

    def snap(short: str, guid: int, creation: int | None = 100, userrefs: int | None = 0) -> Snapshot:
        return Snapshot(f"backup/t@{short}", guid, guid, creation, userrefs=userrefs)

    listed = [snap("auto-20260101T000000Z", 1), snap("auto-20260102T000000Z", 2, userrefs=1),
              snap("auto-20260103T000000Z", 3, creation=None), snap("other", 4),
              snap("auto-20260104T000000Z", 5, userrefs=None), snap("auto-20260105T000000Z", 6),
              snap("auto-20260106T000000Z", 7)]
    # 6 is the newest the source still has (the base); 7 is newer on the target only (kept by keep_last)
    doomed = doomed_on_target(policy, "t", counts, frozenset({1, 6}), frozenset({1, 4, 6}), listed, 10_000)
    assert doomed == ["auto-20260101T000000Z"]
    assert doomed_on_target(policy, "t", counts, frozenset({1}), frozenset({99}), listed, 10_000) == []  # no base


# ---- destroy_snapshots of each replica side ----

async def test_local_side_destroys_and_reports_the_refused() -> None:
    zfs = FakeZfs(pools=("backup",))
    ds = DatasetName.parse("backup/x")
    await zfs.create_dataset(ds, properties={}, parents=False)
    for short in ("a", "b", "c"):
        await zfs.create_snapshot(ds.snapshot(short), recursive=False, properties={})
    await zfs.hold(ds.snapshot("b"), HoldTag.parse("keep"), recursive=False)
    side = LocalReplica(zfs, FakeStreams(zfs), FakeStreams(zfs))
    refused = await side.destroy_snapshots(ds, ["a", "b", "gone", "c"])
    assert list(refused) == ["b"] and "hold" in refused["b"]
    assert sorted(zfs.snapshots) == ["backup/x@b"]
    listed = await side.snapshots(ds, details=True)
    assert listed is not None and listed[0].userrefs == 1 and listed[0].creation is not None


async def test_ssh_side_destroys_in_one_call_and_reports_the_refused(fake_ssh: Any) -> None:  # noqa: F811
    tmp, executor = fake_ssh
    side = SshReplica(Remote.parse("root@127.0.0.1"), executor)
    ds = DatasetName.parse("tank/a b")
    assert await side.destroy_snapshots(ds, ["s 1", "s2"]) == {}
    assert recorded(tmp) == ["destroy", "tank/a b@s 1,s2"]
    (tmp / "exit").write_text("1")
    (tmp / "err").write_text("cannot destroy snapshot tank/a b@s 1: it's being held\n"
                             "cannot destroy snapshot tank/a b@s2: it's being held\n")
    assert await side.destroy_snapshots(ds, ["s 1", "s2"]) == {
        "s 1": "it is held (a hold placed since the listing)", "s2": "it is held (a hold placed since the listing)"}
    (tmp / "err").write_text("cannot open 'tank/a b': dataset does not exist\n")
    with pytest.raises(NotFound):  # anything else: the remote zfs's error, classified
        await side.destroy_snapshots(ds, ["s2"])
    (tmp / "exit").write_text("255")
    (tmp / "err").write_text("ssh: connect to host 127.0.0.1 port 22: Connection refused\n")
    with pytest.raises(ZfsUnavailable):
        await side.destroy_snapshots(ds, ["s2"])


async def test_http_side_destroys_one_snapshot_a_call() -> None:
    def destroy(request: Any) -> Any:
        params = json.loads(request.content)["params"]
        if params["snapshot"] == "held":
            return rpc_answer(request, error={"code": -32012, "message": "tank/a@held has dependents: held",
                                              "data": {"name": "tank/a@held", "reason": "snapshot has user holds",
                                                       "dependents": []}})
        if params["snapshot"] == "gone":
            return rpc_answer(request, error={"code": -32010, "message": "Snapshot not found: tank/a@gone",
                                              "data": {"kind": "snapshot", "name": "tank/a@gone"}})
        return rpc_answer(request, {"snapshot": f"tank/a@{params['snapshot']}", "destroyed": True})

    server = Remote_({"snapshot_destroy": destroy})
    refused = await replica(server).destroy_snapshots(DatasetName.parse("tank/a"), ["s1", "held", "gone"])
    assert list(refused) == ["held"]
    assert [p for _, p, _ in server.calls] == [{"dataset": "tank/a", "snapshot": s, "recursive": False}
                                              for s in ("s1", "held", "gone")]
