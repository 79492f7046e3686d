"""The policy engine's use cases (application/policies.py) on FakePolicyOps: snapshot runs (names in UTC,
atomic calls, min_written, per-item failures), preview and prune (what survives and why, batches, a hold or a
clone made since the listing, 10,000 snapshots over 100 datasets in at most 100 destroy children), and moving
one target's base without touching another's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.fakes import FakePolicyOps, FakeZfs, FixedClock, _Dataset
from zfsapi.application.policies import (
    NO_RETENTION,
    BaseMove,
    MoveTargetBase,
    PreviewPrune,
    Prune,
    TakePolicySnapshots,
    policy_roots,
)
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.policies import Policy, parse_policy
from zfsapi.domain.retention import Action, TargetBase

UTC = timezone.utc
START = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # Europe/Berlin changes to summer time in the night after


def ds(name: str) -> DatasetName:
    return DatasetName.parse(name)


def sn(name: str) -> SnapshotName:
    return SnapshotName.parse(name)


def policy(**overrides: Any) -> Policy:
    raw: dict[str, Any] = {"name": "home", "datasets": ["tank/home"],
                           "snapshot": {"prefix": "auto", "timezone": "Europe/Berlin"},
                           "retention": {"keep_last": 2, "daily": 3},
                           "replicate": {"nas2": {"remote": "nas2", "destination": "backup/home"},
                                         "usb": {"remote": "local", "destination": "usb/home"}}}
    raw.update(overrides)
    return parse_policy(raw)


class World:
    """A FakeZfs with tank/home/{a,b,tmp}, the policy port over it, and a clock that also dates the snapshots."""

    def __init__(self, *datasets: str) -> None:
        self.zfs = FakeZfs(pools=["tank"])
        for name in datasets or ("tank/home", "tank/home/a", "tank/home/b", "tank/home/tmp"):
            self.zfs._create([], ds(name), DatasetType.FILESYSTEM, {}, True)
        self.clock = FixedClock(START)
        self.ops = FakePolicyOps(self.zfs, now=lambda: int(self.clock.when.timestamp()))
        self.take = TakePolicySnapshots(self.ops, self.clock)
        self.preview = PreviewPrune(self.ops, self.clock)
        self.prune = Prune(self.ops, self.clock)

    async def run_every(self, p: Policy, step: timedelta, count: int) -> list[str]:
        shorts = []
        for _ in range(count):
            shorts.append((await self.take(p)).short)
            self.clock.when += step
        return shorts

    def names(self, dataset: str) -> list[str]:
        return [s.split("@")[1] for s in self.zfs._snaps_of(dataset)]


# ---- snapshot runs ----

async def test_a_run_snapshots_the_whole_tree_atomically_named_in_utc() -> None:
    w = World()
    progress: list[tuple[int, int]] = []
    run = await w.take(policy(), progress=lambda done, total: progress.append((done, total)))
    assert run.short == "auto-20260328T220000Z"  # UTC, whatever the policy's time zone
    assert {s.value for s in run.taken} == {f"tank/home{c}@{run.short}" for c in ("", "/a", "/b", "/tmp")}
    assert run.skipped == run.failed == ()
    assert w.ops.children == {"list": 1, "snapshot": 1}  # one `zfs snapshot -r tank/home@...`
    assert {w.zfs.snapshots[s.value].props["zfsapi:policy"] for s in run.taken} == {"home"}
    assert len({w.zfs.snapshots[s.value].txg for s in run.taken}) == 1
    assert progress == [(0, 1), (1, 1)]


async def test_with_an_exclude_one_call_names_every_covered_dataset() -> None:
    w = World()
    run = await w.take(policy(datasets=["tank/home", "!tank/home/tmp"]))
    assert {s.value for s in run.taken} == {f"tank/home{c}@{run.short}" for c in ("", "/a", "/b")}
    assert w.names("tank/home/tmp") == []
    assert w.ops.children["snapshot"] == 1


async def test_min_written_skips_the_datasets_that_did_not_change() -> None:
    w = World()
    p = policy(snapshot={"prefix": "auto", "min_written": 4096})
    first = await w.take(p)
    assert len(first.taken) == 4  # a new dataset's written is all it references
    w.zfs.write_bytes("tank/home/a", 10_000)
    w.clock.when += timedelta(hours=1)
    second = await w.take(p)
    assert [s.value for s in second.taken] == [f"tank/home/a@{second.short}"]
    assert {s.dataset.value: s.reason for s in second.skipped} == {
        d: "written 0 bytes, below min_written 4096" for d in ("tank/home", "tank/home/b", "tank/home/tmp")}


async def test_a_failure_is_reported_for_its_snapshots_and_the_run_goes_on() -> None:
    w = World()
    await w.zfs.create_snapshot(sn("tank/home/b@auto-20260328T220000Z"), recursive=False, properties={})
    run = await w.take(policy(snapshot={"prefix": "auto", "recursive_atomic": False}))
    assert [(f.snapshot.value, type(f.reason)) for f in run.failed] == [("tank/home/b@auto-20260328T220000Z", str)]
    assert "already exists" in run.failed[0].reason
    assert {s.value for s in run.taken} == {f"tank/home{c}@{run.short}" for c in ("", "/a", "/tmp")}
    assert w.ops.children["snapshot"] == 4  # not atomic: one call per dataset


def test_roots_are_the_include_entries_not_inside_another() -> None:
    p = policy(datasets=["tank/home/a", "tank/home", "!tank/home/tmp", "tank/home/tmp/keep", "tank/srv"])
    assert policy_roots(p) == [ds("tank/home"), ds("tank/srv")]


# ---- preview and prune ----

async def test_preview_shows_every_snapshot_with_its_reasons_and_prune_does_exactly_that() -> None:
    w = World("tank/home")
    p = policy()
    shorts = await w.run_every(p, timedelta(hours=6), 12)  # three days, four a day
    await w.zfs.create_snapshot(sn("tank/home@by-hand"), recursive=False, properties={})
    w.zfs.snapshots["tank/home@by-hand"].creation = int(START.timestamp())
    await w.ops.take([sn("tank/home@other-1")], recursive=False, policy="other")
    await w.zfs.hold(sn(f"tank/home@{shorts[1]}"), HoldTag("keep"), recursive=False)
    await w.zfs.create_clone(sn(f"tank/home@{shorts[2]}"), ds("tank/clone"), properties={})
    at = START + timedelta(days=10)
    (plan,) = await w.preview(p, at=at)
    reasons = {d.snapshot.name: (d.action.value, d.reasons) for d in plan.decisions}
    assert reasons["by-hand"] == ("keep", ("not owned",))
    assert reasons["other-1"] == ("keep", ("not owned",))
    assert reasons[shorts[0]] == ("destroy", ("keep_last: not among the newest 2",
                                              "daily: its day is not among the newest 3"))
    assert reasons[shorts[1]] == ("keep", ("daily 3/3", "user hold keep"))
    assert reasons[shorts[2]] == ("keep", ("clone origin",))
    assert reasons[shorts[3]] == ("destroy", ("keep_last: not among the newest 2", "daily: not the oldest of its day"))
    assert reasons[shorts[5]] == ("keep", ("daily 2/3",))
    assert reasons[shorts[9]] == ("keep", ("daily 1/3",))
    assert reasons[shorts[10]] == ("keep", ("keep_last 2/2",))
    assert reasons[shorts[11]] == ("keep", ("keep_last 1/2",))
    doomed = {d.snapshot.name for d in plan.doomed()}
    assert doomed == {shorts[i] for i in (0, 3, 4, 6, 7, 8)}
    assert w.ops.children["destroy"] == 0  # a preview destroys nothing
    run = await w.prune(p, at=at)
    assert {s.short for s in run.destroyed} == doomed and run.failed == ()
    assert run.kept == len(plan.decisions) - len(doomed)
    assert set(w.names("tank/home")) == {d.snapshot.name for d in plan.decisions} - doomed
    assert w.ops.children["destroy"] == 1
    again = await w.prune(p, at=at)  # idempotent
    assert again.destroyed == () and w.ops.children["destroy"] == 1


async def test_replication_bases_and_own_holds_protect_per_target() -> None:
    w = World("tank/home")
    p = policy(retention={"keep_last": 1})
    shorts = await w.run_every(p, timedelta(hours=1), 4)
    guid = w.zfs.snapshots[f"tank/home@{shorts[0]}"].guid
    await MoveTargetBase(w.ops)(p, "usb", [BaseMove(ds("tank/home"), shorts[1])])
    (plan,) = await w.preview(p, bases={"nas2": {ds("tank/home"): TargetBase(guid=guid)}})
    reasons = {d.snapshot.name: d.reasons for d in plan.decisions}
    assert reasons[shorts[0]] == ("replication base for nas2",)
    assert reasons[shorts[1]] == ("replication base for usb",)
    assert [d.snapshot.name for d in plan.doomed()] == [shorts[2]]


async def test_a_hold_left_by_a_removed_target_is_released_then_the_snapshot_destroyed() -> None:
    w = World("tank/home")
    p = policy(retention={"keep_last": 1})
    shorts = await w.run_every(p, timedelta(hours=1), 3)
    await w.zfs.hold(sn(f"tank/home@{shorts[0]}"), HoldTag("zfsapi:home:gone"), recursive=False)
    (plan,) = await w.preview(p)
    assert [(d.snapshot.name, d.release) for d in plan.doomed()] == [
        (shorts[0], ("zfsapi:home:gone",)), (shorts[1], ())]
    run = await w.prune(p)
    assert {s.short for s in run.destroyed} == {shorts[0], shorts[1]} and run.failed == ()
    assert w.names("tank/home") == [shorts[2]]


async def test_a_hold_or_a_clone_made_since_the_listing_fails_that_snapshot_only() -> None:
    w = World("tank/home", "tank/home/a")
    p = policy(retention={"keep_last": 1})
    shorts = await w.run_every(p, timedelta(hours=1), 4)

    def meanwhile(dataset: DatasetName, names: list[str]) -> None:
        if dataset.value == "tank/home" and shorts[0] in names:
            w.zfs.snapshots[f"tank/home@{shorts[0]}"].holds["late"] = 0
        if dataset.value == "tank/home/a" and shorts[1] in names:
            w.zfs.datasets["tank/late-clone"] = _Dataset(DatasetType.FILESYSTEM, origin=f"tank/home/a@{shorts[1]}")

    w.ops.before_destroy = meanwhile
    progress: list[tuple[int, int]] = []
    run = await w.prune(p, progress=lambda done, total: progress.append((done, total)))
    assert {(f.snapshot.value, f.reason.split(" (")[0]) for f in run.failed} == {
        (f"tank/home@{shorts[0]}", "it is held"), (f"tank/home/a@{shorts[1]}", "it is a clone's origin")}
    assert len(run.destroyed) == 4 and progress == [(0, 6), (3, 6), (6, 6)]
    assert w.names("tank/home") == [shorts[0], shorts[3]]
    assert w.names("tank/home/a") == [shorts[1], shorts[3]]


async def test_without_retention_nothing_is_destroyed() -> None:
    w = World("tank/home")
    p = policy(retention=None)
    await w.run_every(p, timedelta(hours=1), 3)
    (plan,) = await w.preview(p)
    assert {(d.action, d.reasons) for d in plan.decisions} == {(Action.KEEP, (NO_RETENTION,))}
    assert (await w.prune(p)).destroyed == ()


async def test_excluded_datasets_are_neither_previewed_nor_pruned() -> None:
    w = World()
    await w.run_every(policy(), timedelta(hours=1), 3)
    plans = await w.preview(policy(datasets=["tank/home", "!tank/home/tmp"], retention={"keep_last": 1}))
    assert sorted(plan.dataset.value for plan in plans) == ["tank/home", "tank/home/a", "tank/home/b"]


async def test_a_prune_of_10000_snapshots_over_100_datasets_runs_at_most_100_destroy_children() -> None:
    w = World("tank/home", *(f"tank/home/d{i:03}" for i in range(99)))
    p = policy(retention={"keep_last": 1})
    await w.run_every(p, timedelta(minutes=1), 100)
    assert len(w.zfs.snapshots) == 10_000
    before = w.ops.children.copy()
    run = await w.prune(p)
    children = w.ops.children - before
    assert len(run.destroyed) == 9_900 and run.failed == () and len(w.zfs.snapshots) == 100
    assert children["destroy"] <= 100
    assert sum(children.values()) <= 102, children  # and one listing (no holds to read)


# ---- target bases ----

async def test_moving_one_targets_base_keeps_the_other_targets_hold() -> None:
    w = World("tank/home", "tank/home/a")
    p = policy()
    s1, s2 = await w.run_every(p, timedelta(hours=1), 2)
    move = MoveTargetBase(w.ops)
    both = [BaseMove(ds("tank/home"), s1), BaseMove(ds("tank/home/a"), s1)]
    await move(p, "nas2", both)
    await move(p, "usb", both)
    await move(p, "nas2", [BaseMove(ds("tank/home"), s2, s1), BaseMove(ds("tank/home/a"), s2, s1)])
    for d in ("tank/home", "tank/home/a"):
        assert set(w.zfs.snapshots[f"{d}@{s1}"].holds) == {"zfsapi:home:usb"}
        assert set(w.zfs.snapshots[f"{d}@{s2}"].holds) == {"zfsapi:home:nas2"}
        assert w.zfs.bookmark_guids[f"{d}#zfsapi-home-nas2"] == w.zfs.snapshots[f"{d}@{s2}"].guid
        assert w.zfs.bookmark_guids[f"{d}#zfsapi-home-usb"] == w.zfs.snapshots[f"{d}@{s1}"].guid
    assert w.ops.children["hold"] == 3 and w.ops.children["release"] == 1  # one child per call, not per dataset
    await move(p, "nas2", [BaseMove(ds("tank/home"), s2, s1)])  # again: nothing changes
    assert set(w.zfs.snapshots[f"tank/home@{s1}"].holds) == {"zfsapi:home:usb"}


async def test_a_target_the_policy_does_not_have_is_refused() -> None:
    w = World("tank/home")
    (s1,) = await w.run_every(policy(), timedelta(hours=1), 1)
    with pytest.raises(InvalidArgument) as refused:
        await MoveTargetBase(w.ops)(policy(), "nosuch", [BaseMove(ds("tank/home"), s1)])
    assert refused.value.param == "target"
    assert w.zfs.snapshots[f"tank/home@{s1}"].holds == {}
