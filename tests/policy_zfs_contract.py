"""The PolicyZfs port's contract (application/policy_ports.py): the same calls answered the same way, with the
same number of zfs children, by FakePolicyOps over FakeZfs and by ZfsPolicyOps on real OpenZFS.

tests/unit/test_policy_engine.py runs the cases over the fake, tests/integration/test_policy_engine.py over
real ZFS in the test host. Each case works under its own fresh root dataset (`z.root`, created by `z.tree`);
`z.base` is the general ZFS port (ZfsCliGateway or FakeZfs) for what policies do not do themselves (manual
snapshots, clones, foreign holds)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import pytest

from tests.zfs_contract import ZfsPorts
from zfsapi.application.policy_ports import PolicyZfs, TreeEntry
from zfsapi.domain.errors import AlreadyExists, NotFound, ZfsCommandFailed
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, PropertyName, PropertyValue, SnapshotName

POLICY = "home"
TAG = HoldTag("zfsapi:home:nas2")
FOREIGN = HoldTag("keep")


@dataclass
class PolicySubject:
    port: PolicyZfs
    base: ZfsPorts
    root: DatasetName  # unique to the test, not created yet
    write: Callable[[DatasetName, int], None]  # write that many new bytes into a filesystem (synced)
    children: Callable[[], Counter[str]]  # zfs commands run so far by `port`, by verb

    def ds(self, rel: str = "") -> DatasetName:
        return DatasetName.parse(f"{self.root}/{rel}" if rel else self.root.value)

    def snap(self, rel: str) -> SnapshotName:
        """`short` (of the root) or `child@short`."""
        return SnapshotName.parse(f"{self.root}/{rel}" if "@" in rel else f"{self.root}@{rel}")

    async def tree(self, *children: str) -> None:
        await self.base.create_dataset(self.root, properties={}, parents=False)
        for child in children:
            await self.base.create_dataset(self.ds(child), properties={}, parents=False)

    async def manual(self, *rels: str) -> None:
        for rel in rels:
            await self.base.create_snapshot(self.snap(rel), recursive=False, properties={})

    async def owners(self, *roots: DatasetName) -> dict[str, str | None]:
        return {f"{s.dataset}@{s.info.name}": s.info.policy for s in await self.port.snapshots(roots or [self.root])}

    def counting(self) -> Callable[[], Counter[str]]:
        """The children run since this call, by verb."""
        before = self.children()
        return lambda: self.children() - before


class PolicyZfsContract:
    """The cases; a subclass provides the `p` fixture (a PolicySubject)."""

    async def test_tree_lists_every_dataset_once_and_leaves_out_missing_roots(self, p: PolicySubject) -> None:
        await p.tree("a", "a/b", "c")
        count = p.counting()
        tree = await p.port.tree([p.ds("a"), p.ds("c"), p.ds("nosuch"), p.ds("a/b")])
        assert [e.dataset for e in tree] == [p.ds("a"), p.ds("a/b"), p.ds("c")]
        assert count() == Counter(list=1)
        assert [e.dataset for e in await p.port.tree([p.root])] == [p.root, p.ds("a"), p.ds("a/b"), p.ds("c")]
        assert await p.port.tree([p.ds("nosuch")]) == []

    async def test_written_counts_the_bytes_since_the_newest_snapshot(self, p: PolicySubject) -> None:
        await p.tree("a")
        (fresh,) = await p.port.tree([p.ds("a")])
        assert fresh.written > 0  # no snapshot yet: all it references
        await p.manual("a@s1")
        assert await p.port.tree([p.ds("a")]) == [TreeEntry(p.ds("a"), 0)]
        p.write(p.ds("a"), 1 << 20)
        (changed,) = await p.port.tree([p.ds("a")])
        assert changed.written >= 1 << 20

    async def test_take_is_atomic_and_marks_the_owner(self, p: PolicySubject) -> None:
        await p.tree("a", "a/b", "c")
        count = p.counting()
        await p.port.take([p.snap("a@x"), p.snap("c@x")], recursive=False, policy=POLICY)
        assert count() == Counter(snapshot=1)
        listed = {f"{s.dataset}@{s.info.name}": s for s in await p.port.snapshots([p.root])}
        assert sorted(listed) == [f"{p.root}/a@x", f"{p.root}/c@x"]
        assert {s.info.policy for s in listed.values()} == {POLICY}
        assert len({s.info.createtxg for s in listed.values()}) == 1  # one transaction group
        with pytest.raises(AlreadyExists) as exists:
            await p.port.take([p.snap("a@y"), p.snap("c@x")], recursive=False, policy=POLICY)
        assert (exists.value.kind, exists.value.name) == ("snapshot", f"{p.root}/c@x")
        assert f"{p.root}/a@y" not in await p.owners()  # none of the call's snapshots was made
        await p.port.take([p.snap("a@r")], recursive=True, policy="other")
        assert {k: v for k, v in (await p.owners()).items() if k.endswith("@r")} == {
            f"{p.root}/a@r": "other", f"{p.root}/a/b@r": "other"}
        with pytest.raises(ZfsCommandFailed):  # two of one dataset in one call
            await p.port.take([p.snap("a@z"), p.snap("a@w")], recursive=False, policy=POLICY)
        with pytest.raises(NotFound) as missing:
            await p.port.take([p.snap("a@v"), p.snap("nosuch@v")], recursive=False, policy=POLICY)
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{p.root}/nosuch")
        assert not [k for k in await p.owners() if k.endswith(("@z", "@w", "@v"))]

    async def test_listing_reads_what_retention_needs_in_one_child(self, p: PolicySubject) -> None:
        await p.tree("a", "c")
        start = int(time.time())
        await p.manual("a@manual")
        await p.port.take([p.snap("a@p1"), p.snap("c@p1")], recursive=False, policy=POLICY)
        await p.port.take([p.snap("a@o1")], recursive=False, policy="other")
        await p.base.hold(p.snap("a@p1"), FOREIGN, recursive=False)
        await p.base.create_clone(p.snap("a@manual"), p.ds("clone"), properties={})
        count = p.counting()
        listed = await p.port.snapshots([p.ds("a"), p.ds("c"), p.ds("nosuch")])
        assert count() == Counter(list=1)
        by_name = {f"{s.dataset}@{s.info.name}": s for s in listed}
        assert [n for n in by_name if n.startswith(f"{p.root}/a@")] == [
            f"{p.root}/a@manual", f"{p.root}/a@p1", f"{p.root}/a@o1"]  # oldest first
        assert {n: (s.info.policy, s.userrefs, s.info.clone_origin) for n, s in by_name.items()} == {
            f"{p.root}/a@manual": (None, 0, True), f"{p.root}/a@p1": (POLICY, 1, False),
            f"{p.root}/a@o1": ("other", 0, False), f"{p.root}/c@p1": (POLICY, 0, False)}
        assert all(start - 5 <= s.info.creation <= time.time() + 5 and s.info.guid > 0 for s in listed)
        assert all(s.info.holds == () for s in listed)  # holds are read apart

    async def test_an_owner_value_a_snapshot_inherits_is_not_ownership(self, p: PolicySubject) -> None:
        await p.tree("a", "c")
        await p.base.set_property(p.ds("a"), PropertyName("zfsapi:policy"), PropertyValue(POLICY))
        await p.manual("a@by_hand", "c@by_hand")
        await p.port.take([p.snap("a@p1")], recursive=False, policy=POLICY)
        await p.port.take([p.snap("a@o1")], recursive=False, policy="other")
        count = p.counting()
        assert await p.owners() == {f"{p.root}/a@by_hand": None, f"{p.root}/a@p1": POLICY,
                                    f"{p.root}/a@o1": "other", f"{p.root}/c@by_hand": None}
        assert count() == Counter(list=1, get=1)  # the snapshots' own values: one child more

    async def test_holds_of_many_snapshots_in_one_child(self, p: PolicySubject) -> None:
        await p.tree("a", "c")
        await p.manual("a@s1", "a@s2", "c@s1")
        await p.base.hold(p.snap("a@s1"), FOREIGN, recursive=False)
        await p.base.hold(p.snap("a@s1"), TAG, recursive=False)
        await p.base.hold(p.snap("c@s1"), TAG, recursive=False)
        count = p.counting()
        holds = await p.port.holds([p.snap("a@s1"), p.snap("a@s2"), p.snap("c@s1"), p.snap("a@gone")])
        assert {k: set(v) for k, v in holds.items()} == {p.snap("a@s1"): {FOREIGN.value, TAG.value},
                                                         p.snap("c@s1"): {TAG.value}}
        assert count() == Counter(holds=1)

    async def test_destroy_batches_and_reports_what_zfs_refuses(self, p: PolicySubject) -> None:
        await p.tree("a")
        await p.manual(*(f"a@s{i}" for i in range(1, 7)))
        await p.base.hold(p.snap("a@s2"), FOREIGN, recursive=False)
        await p.base.hold(p.snap("a@s4"), TAG, recursive=False)
        await p.base.create_clone(p.snap("a@s3"), p.ds("clone"), properties={})
        count = p.counting()
        refused = await p.port.destroy(p.ds("a"), ["s1", "s2", "s3", "s4", "s5", "gone"])
        assert {short: why.split(" (")[0].removesuffix(" or in use") for short, why in refused.items()} == {
            "s2": "it is held", "s3": "it is a clone's origin", "s4": "it is held"}  # 2.1: "held or in use"
        assert count() == Counter(destroy=3)  # the clone, then the holds, then the rest
        left = await p.base.list_snapshots(p.ds("a"), recursive=False, details=False)
        assert [s.short for s in left] == ["s2", "s3", "s4", "s6"]
        assert await p.port.destroy(p.ds("a"), ["gone", "s1"]) == {}  # nothing left to destroy: not an error
        assert await p.port.destroy(p.ds("a"), ["s6"]) == {}
        assert [s.short for s in await p.base.list_snapshots(p.ds("a"), recursive=False)] == ["s2", "s3", "s4"]
        with pytest.raises(NotFound) as missing:
            await p.port.destroy(p.ds("nosuch"), ["s1"])
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{p.root}/nosuch")

    async def test_hold_and_release_one_tag_of_many_snapshots(self, p: PolicySubject) -> None:
        await p.tree("a", "c")
        await p.manual("a@s1", "c@s1", "c@s2")
        await p.base.hold(p.snap("a@s1"), FOREIGN, recursive=False)
        count = p.counting()
        await p.port.hold(TAG, [p.snap("a@s1"), p.snap("c@s1")])
        await p.port.hold(TAG, [p.snap("a@s1"), p.snap("c@s1")])  # held already: left as it is
        assert count() == Counter(hold=2)
        with pytest.raises(NotFound) as missing:
            await p.port.hold(TAG, [p.snap("c@gone"), p.snap("c@s2")])
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{p.root}/c@gone")
        holds = await p.port.holds([p.snap("a@s1"), p.snap("c@s1"), p.snap("c@s2")])
        assert {k: set(v) for k, v in holds.items()} == {p.snap("a@s1"): {FOREIGN.value, TAG.value},
                                                         p.snap("c@s1"): {TAG.value}, p.snap("c@s2"): {TAG.value}}
        await p.port.release(TAG, [p.snap("a@s1"), p.snap("c@s1"), p.snap("c@gone")])
        await p.port.release(TAG, [p.snap("a@s1")])  # not held by it: left as it is
        holds = await p.port.holds([p.snap("a@s1"), p.snap("c@s1"), p.snap("c@s2")])
        assert {k: set(v) for k, v in holds.items()} == {p.snap("a@s1"): {FOREIGN.value},
                                                         p.snap("c@s2"): {TAG.value}}

    async def test_bookmark_replaces_the_bookmark_of_its_name(self, p: PolicySubject) -> None:
        await p.tree("a")
        await p.manual("a@s1", "a@s2")
        mark = BookmarkName.parse(f"{p.root}/a#zfsapi-home-nas2")
        guids = {s.short: s.guid for s in await p.base.list_snapshots(p.ds("a"), recursive=False)}
        await p.port.bookmark(p.snap("a@s1"), mark)
        assert [(b.name, b.guid) for b in await p.base.list_bookmark_ids(p.ds("a"))] == [(mark.value, guids["s1"])]
        await p.port.bookmark(p.snap("a@s2"), mark)
        assert [(b.name, b.guid) for b in await p.base.list_bookmark_ids(p.ds("a"))] == [(mark.value, guids["s2"])]
        assert await p.port.unbookmark(mark) is True
        assert await p.port.unbookmark(mark) is False
        assert await p.base.list_bookmarks(p.ds("a")) == []
        with pytest.raises(NotFound):
            await p.port.bookmark(p.snap("a@gone"), mark)
