"""The policy engine on real OpenZFS: the PolicyZfs contract (tests/policy_zfs_contract.py) over ZfsPolicyOps,
counting the zfs children it runs, and one policy run end to end (snapshots taken at several clock times, a
preview at a later time, the prune) in which a snapshot made by hand, another policy's, a foreign hold and a
clone's origin survive. One pool for the session (the `pool` fixture), tiny datasets."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from tests.fakes import FixedClock
from tests.integration.conftest import mountpoint, zfs
from tests.policy_zfs_contract import PolicySubject, PolicyZfsContract
from zfsapi.adapters.outbound.zfs.executor import Completed, ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.policy_ops import ZfsPolicyOps
from zfsapi.application.policies import BaseMove, MoveTargetBase, PreviewPrune, Prune, TakePolicySnapshots
from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import parse_policy


class CountingExecutor(ZfsExecutor):
    """Counts the zfs children it runs, by verb (reads that share a child count once)."""

    def __init__(self) -> None:
        super().__init__()
        self.children: Counter[str] = Counter()

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        self.children[argv[1]] += 1
        return await super().run(argv, timeout=timeout)


def write_bytes(dataset: DatasetName, size: int) -> None:
    with open(os.path.join(mountpoint(dataset.value), f"data-{uuid.uuid4().hex[:6]}"), "wb") as f:
        f.write(os.urandom(size))
    zfs("zpool", "sync", dataset.pool.value)


@pytest.fixture
def root(pool: str) -> Iterator[DatasetName]:
    name = f"{pool}/policy {uuid.uuid4().hex[:6]}"
    yield DatasetName.parse(name)
    held = zfs("zfs", "holds", "-H", "-r", *zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", name,
                                                 check=False).stdout.split("\n")[:-1], check=False).stdout
    for line in held.splitlines():
        snapshot, tag, _ = line.split("\t")
        zfs("zfs", "release", tag, snapshot, check=False)
    zfs("zfs", "destroy", "-R", name, check=False)


class TestRealZfs(PolicyZfsContract):
    @pytest.fixture
    def p(self, root: DatasetName) -> PolicySubject:
        executor = CountingExecutor()
        return PolicySubject(ZfsPolicyOps(executor), ZfsCliGateway(ZfsExecutor()), root, write_bytes,
                             executor.children.copy)


async def test_a_policy_end_to_end(root: DatasetName) -> None:
    """Snapshots at four clock times, a base moved for one target, a preview three days later, the prune: only
    what the preview says goes, in one destroy child per dataset; a snapshot made by hand, another policy's, a
    foreign hold, a clone's origin and the target's base stay."""
    executor = CountingExecutor()
    port = ZfsPolicyOps(executor)
    for name in (root, f"{root}/a", f"{root}/a/tmp"):
        zfs("zfs", "create", str(name))
    policy = parse_policy({"name": "e2e", "datasets": [root.value, f"!{root}/a/tmp"], "snapshot": {"prefix": "auto"},
                           "retention": {"keep_last": 1},
                           "replicate": {"nas2": {"remote": "local", "destination": f"{root}-backup"}}})
    clock = FixedClock(datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc))
    take = TakePolicySnapshots(port, clock)
    runs = []
    for _ in range(4):
        runs.append(await take(policy))
        clock.when += timedelta(hours=1)
    shorts = [r.short for r in runs]
    assert shorts[0] == "auto-20260329T003000Z" and all(len(r.taken) == 2 and not r.failed for r in runs)
    assert executor.children["snapshot"] == 4  # with an exclude: one call naming both datasets, per run
    a = DatasetName.parse(f"{root}/a")
    zfs("zfs", "snapshot", f"{a}@by-hand")
    await port.take([a.snapshot("other-1")], recursive=False, policy="other")
    zfs("zfs", "hold", "keep", f"{a}@{shorts[1]}")
    zfs("zfs", "clone", f"{a}@{shorts[2]}", f"{root}/clone")
    await MoveTargetBase(port)(policy, "nas2", [BaseMove(root, shorts[0])])
    at = datetime.now(timezone.utc) + timedelta(days=3)
    plans = {p.dataset.value: p for p in await PreviewPrune(port, clock)(policy, at=at)}
    assert sorted(plans) == sorted([root.value, a.value])  # the excluded dataset is not the policy's to prune
    reasons = {(d, dec.snapshot.name): (dec.action.value, dec.reasons) for d, p in plans.items() for dec in p.decisions}
    assert reasons[(root.value, shorts[0])] == ("keep", ("replication base for nas2",))
    assert reasons[(a.value, "by-hand")] == reasons[(a.value, "other-1")] == ("keep", ("not owned",))
    assert reasons[(a.value, shorts[1])] == ("keep", ("user hold keep",))
    assert reasons[(a.value, shorts[2])] == ("keep", ("clone origin",))
    doomed = {(d, dec.snapshot.name) for d, p in plans.items() for dec in p.doomed()}
    assert doomed == {(root.value, shorts[1]), (root.value, shorts[2]), (a.value, shorts[0])}
    before = executor.children.copy()
    run = await Prune(port, clock)(policy, at=at)
    assert {(s.dataset.value, s.short) for s in run.destroyed} == doomed and run.failed == ()
    assert (executor.children - before)["destroy"] == 2
    left = zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", root.value).stdout.split("\n")[:-1]
    assert sorted(left) == sorted([f"{root}@{shorts[0]}", f"{root}@{shorts[3]}", f"{a}@{shorts[1]}", f"{a}@{shorts[2]}",
                                   f"{a}@{shorts[3]}", f"{a}@by-hand", f"{a}@other-1"])
    assert zfs("zfs", "list", "-H", "-o", "name", "-t", "bookmark", root.value).stdout.split("\n")[:-1] == [
        f"{root}#zfsapi-e2e-nas2"]
