"""SimulatedPolicyOps: the PolicyZfs port over a SimulatedZfs, held to ZfsPolicyOps on real ZFS by
tests/policy_zfs_contract.py (as tests.fakes.FakePolicyOps in the unit tests)."""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence, TypeVar

from zfsapi.adapters.outbound.zfs import commands, policy_ops
from zfsapi.application.policy_ports import ListedSnapshot, TreeEntry
from zfsapi.domain.errors import AlreadyExists, NotFound, ZfsCommandFailed
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, SnapshotName
from zfsapi.domain.policies import MAX_ARGV_BYTES, OWNER_PROPERTY
from zfsapi.domain.retention import SnapshotInfo, destroy_arguments

from .zfs import FS, FS_USED, TXG, VOL_USED, SimulatedZfs, SnapshotRecord, epoch_now, new_guid

N = TypeVar("N", DatasetName, SnapshotName)


class SimulatedPolicyOps:
    """The PolicyZfs port (application/policy_ports.py) over a SimulatedZfs, held to ZfsPolicyOps on real ZFS by
    tests/policy_zfs_contract.py. `children` counts, by verb, the zfs commands ZfsPolicyOps runs for the same
    calls (one per batch of names, and a destroy's retries); `before_destroy(dataset, shorts)`, when set, runs
    before each destroy command (a hold or a clone made since the listing); `now()` is the creation time (epoch
    seconds) of the snapshots `take` makes."""

    def __init__(self, zfs: SimulatedZfs, *, now: Callable[[], int] = epoch_now,
                 max_argv_bytes: int = MAX_ARGV_BYTES) -> None:
        self.zfs, self.now, self.limit = zfs, now, max_argv_bytes
        self.children: Counter[str] = Counter()
        self.before_destroy: Callable[[DatasetName, list[str]], None] | None = None

    def _count(self, verb: str, names: Sequence[N]) -> None:
        self.children[verb] += len(_policy_batches(names, self.limit))

    def _under(self, roots: Sequence[DatasetName]) -> list[str]:
        return sorted({d for r in roots if r.value in self.zfs.datasets
                       for d in (r.value, *self.zfs._children(r.value))})

    async def tree(self, roots: Sequence[DatasetName]) -> list[TreeEntry]:
        self._count("list", roots)
        with_snapshots = {n.split("@")[0] for n in self.zfs.snapshots}
        return [TreeEntry(DatasetName.parse(d), (0 if d in with_snapshots else FS_USED) + self.zfs.written.get(d, 0))
                for d in self._under(roots)]

    async def snapshots(self, roots: Sequence[DatasetName]) -> list[ListedSnapshot]:
        self._count("list", roots)
        z, out = self.zfs, []
        under = self._under(roots)
        if any(z._holder(d, OWNER_PROPERTY, True) for d in under):
            self.children["get"] += 1  # the snapshots' own values, apart from what the datasets lend them
        origins = {d.origin for d in z.datasets.values()}
        names = {d: DatasetName.parse(d) for d in under}
        for name, s in sorted(z.snapshots.items(), key=lambda item: item[1].txg):
            dataset, short = name.split("@")
            if dataset in names:
                info = SnapshotInfo(short, s.guid, s.creation, s.props.get(OWNER_PROPERTY), (), name in origins, s.txg)
                out.append(ListedSnapshot(names[dataset], info, len(s.holds)))
        return sorted(out, key=lambda item: item.dataset.value)  # stable: oldest first within a dataset

    async def holds(self, snapshots: Sequence[SnapshotName]) -> dict[SnapshotName, tuple[str, ...]]:
        self._count("holds", snapshots)
        found = [s for s in snapshots if s.value in self.zfs.snapshots and self.zfs.snapshots[s.value].holds]
        return {s: tuple(sorted(self.zfs.snapshots[s.value].holds)) for s in found}

    async def take(self, snapshots: Sequence[SnapshotName], *, recursive: bool, policy: str) -> None:
        if not snapshots:
            return
        z = self.zfs
        self.children["snapshot"] += 1
        for s in snapshots:
            z._need(s.dataset.value)
        if len({s.dataset for s in snapshots}) < len(snapshots):
            raise ZfsCommandFailed(commands.snapshot_many(snapshots, recursive, {}), 1,
                                   "cannot create snapshots : multiple snapshots of same fs not allowed\n"
                                   "no snapshots were created")
        family = [f"{d}@{s.short}" for s in snapshots
                  for d in (s.dataset.value, *(z._children(s.dataset.value) if recursive else []))]
        if exists := next((n for n in family if n in z.snapshots), None):
            raise AlreadyExists("snapshot", exists)
        txg, creation = next(TXG), self.now()
        for name in family:
            ds = name.split("@")[0]
            z.snapshots[name] = SnapshotRecord(new_guid(), txg, props={OWNER_PROPERTY: policy}, creation=creation,
                                      referenced=FS_USED if z.datasets[ds].type is FS else VOL_USED)
            z.written.pop(ds, None)

    async def destroy(self, dataset: DatasetName, shorts: Sequence[str]) -> dict[str, str]:
        refused: dict[str, str] = {}
        for argument in destroy_arguments(dataset, list(shorts)):
            names = argument.split("@", 1)[1].split(",")
            while names:
                self.children["destroy"] += 1
                if self.before_destroy is not None:
                    self.before_destroy(dataset, names)
                named = self.refused(dataset, names)
                if not named:
                    for n in names:
                        self.zfs.snapshots.pop(f"{dataset}@{n}", None)
                    break
                refused.update(named)
                names = [n for n in names if n not in named]
        return refused

    def refused(self, dataset: DatasetName, names: list[str]) -> dict[str, str]:
        """What ZFS refuses of one `zfs destroy ds@a,b,c`: the first clone origin (zfs checks clones before
        it asks the kernel), else every held snapshot."""
        self.zfs._need(dataset.value)
        present = [n for n in names if f"{dataset}@{n}" in self.zfs.snapshots]
        if cloned := next((n for n in present if self.zfs._clones_of(f"{dataset}@{n}")), None):
            return {cloned: "it is a clone's origin (a clone made since the listing)"}
        return {n: "it is held (a hold placed since the listing)" for n in present
                if self.zfs.snapshots[f"{dataset}@{n}"].holds}

    async def hold(self, tag: HoldTag, snapshots: Sequence[SnapshotName]) -> None:
        self._count("hold", snapshots)
        missing = [s for s in snapshots if s.value not in self.zfs.snapshots]
        for s in snapshots:
            if s.value in self.zfs.snapshots:
                self.zfs.snapshots[s.value].holds.setdefault(tag.value, epoch_now())
        if missing:
            raise NotFound("snapshot", missing[0].value)

    async def release(self, tag: HoldTag, snapshots: Sequence[SnapshotName]) -> None:
        self._count("release", snapshots)
        for s in snapshots:
            if s.value in self.zfs.snapshots:
                self.zfs.snapshots[s.value].holds.pop(tag.value, None)

    async def bookmark(self, snapshot: SnapshotName, bookmark: BookmarkName) -> None:
        await self.unbookmark(bookmark)
        self.children["bookmark"] += 1
        await self.zfs.create_bookmark(snapshot, bookmark)

    async def unbookmark(self, bookmark: BookmarkName) -> bool:
        self.children["destroy"] += 1
        self.zfs.bookmark_guids.pop(bookmark.value, None)
        return self.zfs.bookmarks.pop(bookmark.value, None) is not None


def _policy_batches(names: Sequence[N], limit: int) -> list[list[N]]:
    """ZfsPolicyOps' split of a long list of names into children."""
    return list(policy_ops._batches(names, limit))