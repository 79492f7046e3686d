"""The port of what policies need from ZFS: list a policy's datasets and snapshots in few children, take its
snapshots, destroy them in batches, and keep each (policy, target)'s hold and bookmark on its base.

Every listing covers many datasets in one child (a policy may cover thousands), and every change that ZFS can
do for many snapshots at once takes them in one call; the methods say where ZFS's own rule (missing snapshots
skipped, a batch refused as a whole) shows through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, SnapshotName
from zfsapi.domain.retention import SnapshotInfo


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One filesystem or volume under a policy's roots, with its `written` (bytes written since its newest
    snapshot; all it references when it has none)."""

    dataset: DatasetName
    written: int


@dataclass(frozen=True, slots=True)
class ListedSnapshot:
    """One snapshot of a listing: its dataset and what retention reads of it. `info.holds` is empty here:
    holds are read separately (`PolicyZfs.holds`), for the snapshots whose `userrefs` is above 0."""

    dataset: DatasetName
    info: SnapshotInfo
    userrefs: int


class PolicyZfs(Protocol):
    """ZFS as policies use it. Raises the domain's errors (NotFound, AlreadyExists, HasDependents,
    ZfsCommandFailed, ZfsUnavailable) as ZFS's answer warrants."""

    async def tree(self, roots: Sequence[DatasetName]) -> list[TreeEntry]:
        """Every filesystem and volume under `roots` (each root included), once each, in name order. A root
        that does not exist is left out (a policy may name a dataset that is not created yet)."""
        ...

    async def snapshots(self, roots: Sequence[DatasetName]) -> list[ListedSnapshot]:
        """Every snapshot of every dataset under `roots` (one child on ZFS), oldest first within a dataset.
        `info.policy` is the value of `zfsapi:policy` SET ON THE SNAPSHOT (a value it only inherits from its
        dataset is None: a snapshot made by hand of such a dataset is not the policy's); `info.clone_origin`
        is True when a clone has it as origin. A missing root is left out."""
        ...

    async def holds(self, snapshots: Sequence[SnapshotName]) -> Mapping[SnapshotName, tuple[str, ...]]:
        """The hold tags of each snapshot that has any (a snapshot without holds, or gone, is absent)."""
        ...

    async def take(self, snapshots: Sequence[SnapshotName], *, recursive: bool, policy: str) -> None:
        """One `zfs snapshot [-r] -o zfsapi:policy=<policy> a@x b@x ...`: every snapshot (and, when
        recursive, the same of every descendant) in one transaction group, or none. All in one pool, one per
        dataset. Raises AlreadyExists (kind "snapshot") when one exists, NotFound when a dataset is missing."""
        ...

    async def destroy(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        """Destroy these snapshots of one dataset: one `zfs destroy ds@a,b,c` (ZFS destroys all of a call or
        none). A snapshot ZFS refuses (held, or a clone's origin) is left, and returned with the reason
        ({short: reason}); the others are then destroyed by one more call. A snapshot that does not exist
        is skipped (ZFS's rule). Raises NotFound when the dataset is missing."""
        ...

    async def hold(self, tag: HoldTag, snapshots: Sequence[SnapshotName]) -> None:
        """Place `tag` on each snapshot (one child); one that already holds it is left as it is. Raises
        NotFound (kind "snapshot") for a missing snapshot, after holding the others."""
        ...

    async def release(self, tag: HoldTag, snapshots: Sequence[SnapshotName]) -> None:
        """Release `tag` from each snapshot (one child), and no other tag; one without it, or gone, is left."""
        ...

    async def bookmark(self, snapshot: SnapshotName, bookmark: BookmarkName) -> None:
        """Create `bookmark` of `snapshot`, replacing a bookmark of that name (a bookmark is never renamed or
        moved in place: the old one is destroyed first). Raises NotFound for a missing snapshot."""
        ...

    async def unbookmark(self, bookmark: BookmarkName) -> bool:
        """Destroy a bookmark; False when there was none."""
        ...
