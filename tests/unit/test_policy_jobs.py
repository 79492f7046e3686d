"""The policy job kinds run through Jobs and the JobRunner on the fakes: each step loads its policy when it runs,
the follow chain (snapshot -> replicate of after_snapshot targets -> prune), the ledger's notes, and an owner
whose rights shrank refused at start."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.fakes import FakePolicyOps, FakeZfs, FixedClock
from zfsapi.adapters.inbound.jsonrpc.job_methods import describe, error_code
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.application.job_kinds import JobKinds
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.application.policies import Prune, TakePolicySnapshots
from zfsapi.application.policy_catalog import PolicyCatalog
from zfsapi.application.policy_jobs import PolicyKinds, StartPolicyRun, decode_spec
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import InvalidArgument, NotFound, PermissionDenied, StateConflict
from zfsapi.domain.jobs import Job, JobOwner, JobState, ProgressMeter
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import Policy, parse_policy

ROOT = Principal("root", Role.ADMIN)
ALICE = Principal("alice", Role.ADMIN, ("tank/a",), token_id="t1")
START = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
DEADLINE = 30.0


def raw(name: str = "home", **over: Any) -> dict[str, Any]:
    return {"name": name, "datasets": ["tank/a"], "snapshot": {"prefix": "auto"}, "retention": {"keep_last": 1},
            **over}


@dataclass
class TargetRun:
    target: str
    base_snapshot: str | None
    bytes: int
    datasets: list[dict[str, Any]] = field(default_factory=list)


class FakeReplicate:
    """ReplicatePolicyTarget's stand-in: records each call; `fail` names targets that raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail: dict[str, Exception] = {}

    async def __call__(self, policy: Policy, target: str, *, who: Principal, progress: ProgressMeter) -> TargetRun:
        self.calls.append((policy.name, target, who.name))
        if target in self.fail:
            raise self.fail[target]
        return TargetRun(target, "auto-20261206T100000Z", 1234, [{"dataset": DatasetName.parse("tank/a")}])


class Owners:
    """The users as configured now, by name (embedded owners keep their principal)."""

    def __init__(self) -> None:
        self.now: dict[str, Principal] = {"root": ROOT, "alice": ALICE}

    def current(self, owner: JobOwner) -> Principal | None:
        return owner.principal() if owner.origin == "embedded" else self.now.get(owner.name)


class Observed:
    """What the kinds report to the metrics: (what, policy, value)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object]] = []

    def policies_seen(self, statuses, now) -> None: ...

    def snapshots_owned(self, policy: str, count: int) -> None:
        self.seen.append(("owned", policy, count))

    def snapshots_destroyed(self, policy: str, count: int) -> None:
        self.seen.append(("destroyed", policy, count))

    def step_failed(self, policy: str, step: str) -> None:
        self.seen.append(("failed", policy, step))


class World:
    def __init__(self, *config: Policy) -> None:
        self.zfs = FakeZfs(pools=["tank"])
        for name in ("tank/a", "tank/a/x"):
            self.zfs._create([], DatasetName.parse(name), DatasetType.FILESYSTEM, {}, True)
        self.clock = FixedClock(START)
        self.ops = FakePolicyOps(self.zfs, now=lambda: int(self.clock.when.timestamp()))
        self.store, self.config = MemoryPolicyStore(), tuple(config)
        self.catalog = PolicyCatalog(self.store, self.store, lambda: self.config, lambda: ("nas2",), self.clock)
        self.jobs = Jobs(MemoryJobStore())
        self.start = StartPolicyRun(self.jobs, self.catalog)
        self.replicate = FakeReplicate()
        self.observed = Observed()
        self.kinds = PolicyKinds(self.catalog, self.store, self.start, TakePolicySnapshots(self.ops, self.clock),
                                 Prune(self.ops, self.clock), self.replicate, clock=lambda: 1000.0,
                                 observer=self.observed)
        self.owners = Owners()
        self.runner = JobRunner(self.jobs._store, self.jobs, kinds=JobKinds(self.kinds.rows()), describe=describe,
                                owners=self.owners)

    async def __aenter__(self) -> World:
        await self.runner.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()

    async def finished(self, job: Job) -> Job:
        done = await self.jobs.wait(ROOT, job.job_id, DEADLINE)
        assert done.state.finished, done
        return done

    async def all_finished(self, count: int) -> list[Job]:
        """Wait until `count` jobs exist and all have finished; oldest first."""
        deadline = time.monotonic() + DEADLINE
        while True:
            found, _ = await self.jobs.list(ROOT, limit=100)
            if len(found) >= count and all(j.state.finished for j in found):
                return sorted(found, key=lambda j: j.created_at)
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.05)


def by_kind(jobs: list[Job]) -> dict[str, list[Job]]:
    out: dict[str, list[Job]] = {}
    for j in jobs:
        out.setdefault(j.kind, []).append(j)
    return out


def test_params_decode_and_are_checked():
    assert decode_spec({"policy": "home", "target": None, "slot": "s", "follow": True}).follow
    for bad, param in (({"policy": "Bad!"}, "policy"), ({"policy": "a", "target": "a-b"}, "target"),
                       ({"policy": "a", "follow": "yes"}, "follow")):
        with pytest.raises(InvalidArgument) as caught:
            decode_spec(bad)
        assert caught.value.param == param


async def test_a_followed_snapshot_replicates_the_after_snapshot_targets_then_prunes():
    policy = parse_policy(raw(replicate={"nas": {"remote": "nas2", "destination": "b/a", "schedule": "after_snapshot"},
                                         "usb": {"remote": "local", "destination": "usb/a"}}))
    world = World(policy)
    entry = await world.catalog.entry("home")
    async with world:
        await world.start.scheduled(entry, "snapshot", slot="20261206T100000Z", follow=True)
        jobs = by_kind(await world.all_finished(3))
    snap, repl, prune = jobs["policy_snapshot"][0], jobs["policy_replicate"][0], jobs["policy_prune"][0]
    assert [j.state for j in (snap, repl, prune)] == [JobState.SUCCEEDED] * 3, (snap, repl, prune)
    assert snap.owner == JobOwner("policy:home", "admin", (), "embedded")
    assert repl.params == {"policy": "home", "target": None, "slot": "20261206T100000Z", "follow": True}
    assert repl.datasets == ("tank/a", "usb/a") and prune.params["follow"] is True
    assert snap.result is not None and snap.result["taken"] == ["tank/a@auto-20261206T100000Z",
                                                                 "tank/a/x@auto-20261206T100000Z"]
    assert world.replicate.calls == [("home", "nas", "policy:home")]  # only the after_snapshot target
    assert repl.result is not None and repl.result["targets"]["nas"]["bytes"] == 1234
    assert repl.result["targets"]["nas"]["datasets"] == [{"dataset": "tank/a"}]
    notes = await world.store.notes("home")
    assert {k: v["state"] for k, v in notes.items() if k.startswith("last:")} == {
        "last:snapshot": "succeeded", "last:replicate": "succeeded", "last:prune": "succeeded"}
    assert notes["last:prune"] == {"job_id": prune.job_id, "state": "succeeded", "finished_at": 1000.0}
    assert notes["target:nas"] == {"last_success": 1000.0, "base_snapshot": "auto-20261206T100000Z", "failures": 0,
                                   "last_failure": None, "last_error": None}


async def test_without_after_snapshot_targets_the_snapshot_queues_the_prune_and_a_manual_run_follows_nothing():
    world = World(parse_policy(raw()))
    entry = await world.catalog.entry("home")
    async with world:
        await world.start.scheduled(entry, "snapshot", follow=True)
        assert sorted(by_kind(await world.all_finished(2))) == ["policy_prune", "policy_snapshot"]
        world.clock.when += timedelta(hours=1)
        manual = await world.start.execute(who=ROOT, name="home", step="snapshot", target=None)
        assert (await world.finished(manual)).state is JobState.SUCCEEDED
        assert (await world.jobs.list(ROOT))[1] == 3  # nothing followed the manual run (it would be queued by now)
        prune = await world.start.execute(who=ROOT, name="home", step="prune", target=None)
        done = await world.finished(prune)
    assert done.result is not None and sorted(done.result["destroyed"]) == [
        "tank/a/x@auto-20261206T100000Z", "tank/a@auto-20261206T100000Z"], done.result  # keep_last 1: the newer
    assert (done.result["failed"], done.result["kept"]) == ([], 2)
    assert done.owner.name == "root" and done.progress.phase == "prune 2/2"
    # the metrics heard it: the first prune destroyed nothing (2 owned), the second 2 (2 owned left)
    assert world.observed.seen == [("destroyed", "home", 0), ("owned", "home", 2), ("destroyed", "home", 2),
                                   ("owned", "home", 2)], world.observed.seen


async def test_a_failing_target_is_noted_the_others_run_and_the_job_fails_with_its_error():
    policy = parse_policy(raw(replicate={"bad": {"remote": "nas2", "destination": "b/a"},
                                         "good": {"remote": "local", "destination": "usb/a"}}))
    world = World(policy)
    world.replicate.fail["bad"] = StateConflict("destination diverged: b/a@x")
    async with world:
        first = await world.finished(await world.start.execute(who=ROOT, name="home", step="replicate", target=None))
        second = await world.finished(await world.start.execute(who=ROOT, name="home", step="replicate",
                                                                target="bad"))
    assert first.state is JobState.FAILED and error_code(first.error) == -32015
    assert "diverged" in first.error.message and second.state is JobState.FAILED
    assert [c[1] for c in world.replicate.calls] == ["bad", "good", "bad"]
    notes = await world.store.notes("home")
    assert notes["target:bad"]["failures"] == 2 and "diverged" in notes["target:bad"]["last_error"]
    assert notes["target:bad"]["last_success"] is None and notes["target:bad"]["last_failure"] == 1000.0
    assert notes["target:good"]["failures"] == 0 and notes["last:replicate"]["state"] == "failed"
    assert world.observed.seen == [("failed", "home", "replicate")] * 2


async def test_each_run_loads_its_policy_when_it_starts():
    world = World()
    await world.catalog.create(ROOT, raw("gone"))
    await world.catalog.create(ROOT, raw("off"))
    gone = await world.start.execute(who=ROOT, name="gone", step="snapshot", target=None)
    off = await world.start.execute(who=ROOT, name="off", step="snapshot", target=None)
    await world.catalog.delete(ROOT, "gone")
    await world.catalog.update(ROOT, "off", raw("off", enabled=False))
    async with world:
        gone, off = await world.finished(gone), await world.finished(off)
    assert gone.state is JobState.FAILED and error_code(gone.error) == -32010 and "gone" in gone.error.message
    assert (off.state, off.result) == (JobState.SUCCEEDED, {"policy": "off", "disabled": True})
    assert world.zfs.snapshots == {} or not any("@auto-" in s for s in world.zfs.snapshots)
    with pytest.raises(StateConflict):
        await world.start.execute(who=ROOT, name="off", step="snapshot", target=None)


async def test_an_owner_whose_rights_shrank_is_refused_at_start_and_nothing_runs():
    world = World()
    await world.catalog.create(ALICE, raw("mine"))
    entry = await world.catalog.entry("mine")
    snap = await world.start.scheduled(entry, "snapshot")
    prune = await world.start.scheduled(entry, "prune")
    world.owners.now["alice"] = Principal("alice", Role.OPERATOR, ("tank/a",))
    async with world:
        snap, prune = await world.finished(snap), await world.finished(prune)
    assert (prune.state, error_code(prune.error)) == (JobState.FAILED, -32004)
    assert "operator" in prune.error.data["reason"]  # refused at start: a prune destroys
    assert (snap.state, error_code(snap.error)) == (JobState.FAILED, -32004)
    assert "admins only" in snap.error.data["reason"]
    assert not any("@auto-" in s for s in world.zfs.snapshots)
    world.owners.now["alice"] = Principal("alice", Role.ADMIN, ("tank/b",))
    again = await world.start.scheduled(entry, "snapshot")
    async with world:
        again = await world.finished(again)
    assert again.state is JobState.FAILED and "scope narrowed" in again.error.data["reason"]
    # the operator's snapshot ran as far as the policy's own check (noted); the narrowed one never started
    assert (await world.store.notes("mine"))["last:snapshot"] == {"job_id": snap.job_id, "state": "failed",
                                                                "finished_at": 1000.0}


async def test_policy_run_checks_the_step_the_target_and_the_callers_rights():
    world = World(parse_policy(raw(replicate={"t": {"remote": "local", "destination": "tank/a/usb"}})))
    for kw, param in (({"step": "snapshot", "target": "t"}, "target"), ({"step": "replicate", "target": "u"}, "target"),
                      ({"step": "backup", "target": None}, "step")):
        with pytest.raises(InvalidArgument) as caught:
            await world.start.execute(who=ROOT, name="home", **kw)
        assert caught.value.param == param
    with pytest.raises(PermissionDenied):
        await world.start.execute(who=Principal("op", Role.OPERATOR), name="home", step="snapshot", target=None)
    with pytest.raises(NotFound):
        await world.start.execute(who=Principal("b", Role.ADMIN, ("tank/b",)), name="home", step="snapshot",
                                  target=None)
    job = await world.start.execute(who=ALICE, name="home", step="replicate", target="t", origin=None)
    assert job.owner == JobOwner("alice", "admin", ("tank/a",), "token") and job.params["target"] == "t"


async def test_a_policy_widened_since_the_job_was_queued_is_checked_against_the_owner_when_it_runs():
    world = World()
    await world.catalog.create(ALICE, raw("mine"))
    queued = await world.start.scheduled(await world.catalog.entry("mine"), "snapshot")  # as alice, on tank/a
    await world.catalog.update(ROOT, "mine", raw("mine", datasets=["tank/a", "tank/b"]))
    async with world:
        done = await world.finished(queued)
    assert (done.state, error_code(done.error), done.error.data["dataset"]) == (JobState.FAILED, -32004, "tank/b")
    assert not any("@auto-" in s for s in world.zfs.snapshots)
