"""ZfsPolicyOps without ZFS: the argv it runs (machine-readable listings, one child per batch of names) and a
prune of 10,000 snapshots over 100 datasets through it, counted in zfs children, with `zfs` answering from a
script. What the answers mean is proven on real ZFS by tests/policy_zfs_contract.py."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import pytest

from tests.fakes import FixedClock
from zfsapi.adapters.outbound.zfs.executor import Completed
from zfsapi.adapters.outbound.zfs.policy_ops import ZfsPolicyOps
from zfsapi.application.policies import Prune
from zfsapi.domain.errors import NotFound, ZfsUnavailable
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.policies import parse_policy

Answer = Callable[[list[str]], Completed]


def ok(argv: list[str], out: str = "") -> Completed:
    return Completed(argv, 0, out.encode(), "")


class ScriptedExecutor:
    """Records every argv; `answer(argv)` makes the Completed (default: success, no output)."""

    def __init__(self, answer: Answer = ok) -> None:
        self.argvs: list[list[str]] = []
        self.answer = answer

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        self.argvs.append(argv)
        return self.answer(argv)

    async def read(self, argv: list[str]) -> Completed:
        return await self.run(argv)


def ops(executor: ScriptedExecutor, **kw: int) -> ZfsPolicyOps:
    return ZfsPolicyOps(executor, **kw)  # type: ignore[arg-type]  # the executor's two methods it uses


def sn(text: str) -> SnapshotName:
    return SnapshotName.parse(text)


async def test_listings_are_machine_readable_and_recursive_over_the_roots() -> None:
    ex = ScriptedExecutor()
    roots = [DatasetName.parse("tank/home"), DatasetName.parse("tank/srv")]
    await ops(ex).tree(roots)
    await ops(ex).snapshots(roots)
    assert ex.argvs == [
        ["zfs", "list", "-H", "-p", "-o", "name,written", "-t", "filesystem,volume", "-r", "tank/home", "tank/srv"],
        ["zfs", "list", "-H", "-p", "-o", "name,guid,createtxg,creation,userrefs,zfsapi:policy,clones",
         "-t", "filesystem,volume,snapshot", "-r", "tank/home", "tank/srv"]]


async def test_take_sets_the_owner_and_names_every_snapshot_in_one_call() -> None:
    ex = ScriptedExecutor()
    await ops(ex).take([sn("tank/a@x"), sn("tank/b@x")], recursive=False, policy="home")
    await ops(ex).take([sn("tank@x")], recursive=True, policy="home")
    assert ex.argvs == [["zfs", "snapshot", "-o", "zfsapi:policy=home", "tank/a@x", "tank/b@x"],
                        ["zfs", "snapshot", "-r", "-o", "zfsapi:policy=home", "tank@x"]]


async def test_many_names_are_split_into_children_that_fit() -> None:
    ex = ScriptedExecutor()
    names = [sn(f"tank/d{i:03}@auto-20260101T000000Z") for i in range(100)]
    await ops(ex, max_argv_bytes=1000).hold(HoldTag("zfsapi:home:nas2"), names)
    assert 3 < len(ex.argvs) < 10
    assert [a[3:] for a in ex.argvs] == [[n.value for n in names[i:i + len(ex.argvs[0]) - 3]]
                                         for i in range(0, 100, len(ex.argvs[0]) - 3)]
    assert all(sum(len(a) + 9 for a in argv[3:]) <= 1000 for argv in ex.argvs)


async def test_a_hold_that_exists_is_no_error_but_a_missing_snapshot_is() -> None:
    def answer(argv: list[str]) -> Completed:
        return Completed(argv, 1, b"", "cannot hold snapshot 'tank/a@x': tag already exists on this dataset\n"
                                      + ("cannot open 'tank/a@y': dataset does not exist" if len(argv) > 4 else ""))

    await ops(ScriptedExecutor(answer)).hold(HoldTag("t"), [sn("tank/a@x")])
    with pytest.raises(NotFound) as missing:
        await ops(ScriptedExecutor(answer)).hold(HoldTag("t"), [sn("tank/a@x"), sn("tank/a@y")])
    assert (missing.value.kind, missing.value.name) == ("snapshot", "tank/a@y")


async def test_an_unavailable_zfs_is_not_mistaken_for_a_refused_snapshot() -> None:
    ex = ScriptedExecutor(lambda argv: Completed(argv, 1, b"", "The ZFS modules are not loaded."))
    with pytest.raises(ZfsUnavailable):
        await ops(ex).destroy(DatasetName.parse("tank/a"), ["s1"])


def listing(datasets: int, per_dataset: int) -> str:
    rows = []
    for d in range(datasets):
        name = f"tank/home/d{d:03}"
        rows.append(f"{name}\t{d + 1}\t1\t1700000000\t-\t-\t-")
        for s in range(per_dataset):
            creation = 1767225600 + 60 * s
            rows.append(f"{name}@auto-{s:04}\t{d * 1000 + s + 10}\t{s + 2}\t{creation}\t0\thome\t")
    return "\n".join(rows) + "\n"


async def test_a_prune_of_10000_snapshots_over_100_datasets_runs_101_zfs_children() -> None:
    text = listing(100, 100)
    ex = ScriptedExecutor(lambda argv: ok(argv, text if argv[1] == "list" else ""))
    policy = parse_policy({"name": "home", "datasets": ["tank/home"], "retention": {"keep_last": 1}})
    clock = FixedClock(datetime(2026, 6, 1, tzinfo=timezone.utc))
    run = await Prune(ops(ex), clock)(policy)
    assert len(run.destroyed) == 9_900 and run.failed == () and run.kept == 100
    verbs = [argv[1] for argv in ex.argvs]
    assert verbs.count("destroy") == 100 and len(verbs) == 101  # the listing, then one destroy per dataset
    first = next(argv for argv in ex.argvs if argv[1] == "destroy")
    assert first == ["zfs", "destroy", "tank/home/d000@" + ",".join(f"auto-{s:04}" for s in range(99))]


async def test_what_zfs_refuses_in_a_batch_is_left_out_of_the_next_call() -> None:
    answers = iter([
        "cannot destroy 'tank/a@s3': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\n"
        "tank/clone",
        "cannot destroy snapshot tank/a@s2: it's being held. Run 'zfs holds -r tank/a@s2' to see holders.\n"
        "cannot destroy snapshot tank/a@s4: dataset is busy",  # 2.3's and 2.1's words for a held snapshot
        ""])

    def answer(argv: list[str]) -> Completed:
        err = next(answers)
        return Completed(argv, 1 if err else 0, b"", err)

    ex = ScriptedExecutor(answer)
    refused = await ops(ex).destroy(DatasetName.parse("tank/a"), ["s1", "s2", "s3", "s4", "s5"])
    assert refused == {"s3": "it is a clone's origin (a clone made since the listing)",
                       "s2": "it is held (a hold placed since the listing)",
                       "s4": "it is held or in use (OpenZFS 2.1 does not tell which)"}
    assert [argv[2] for argv in ex.argvs] == ["tank/a@s1,s2,s3,s4,s5", "tank/a@s1,s2,s4,s5", "tank/a@s1,s5"]
