"""FakeZfs: an in-memory ZFS tree implementing the ports, held to the real gateway's behaviour by
tests/integration/test_port_contract.py (the same suite runs over both)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from zfsapi.domain.errors import AlreadyExists, HasDependents, InvalidArgument, NotFound, StateConflict
from zfsapi.domain.models import (
    ChangeKind,
    DatasetType,
    DiffEntry,
    Hold,
    Pool,
    PoolStatus,
    PropertyEntry,
    ScanStatus,
    Snapshot,
    SpaceUsage,
    Vdev,
)
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, PoolName, PropertyName, PropertyValue, SnapshotName
from zfsapi.domain.planning import DestroyFlags

Properties = dict[PropertyName, PropertyValue]


@dataclass
class _Dataset:
    type: DatasetType
    props: dict[str, str] = field(default_factory=dict)
    mounted: bool = True
    origin: str | None = None


@dataclass
class _Snap:
    guid: int
    txg: int
    holds: dict[str, int] = field(default_factory=dict)


class FixedClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def now(self) -> datetime:
        return self.when


class FakeZfs:
    def __init__(self, pools: Sequence[str] = ("tank",)) -> None:
        self.pools = {p: "ONLINE" for p in pools}
        self.datasets: dict[str, _Dataset] = {p: _Dataset(DatasetType.FILESYSTEM) for p in pools}
        self.snapshots: dict[str, _Snap] = {}
        self.bookmarks: dict[str, int] = {}
        self.scrubbing: set[str] = set()
        self._txg = itertools.count(100)

    # ---- helpers ----
    def _need(self, name: str) -> _Dataset:
        if name.split("/")[0] not in self.pools:
            raise NotFound("dataset", name)
        if name not in self.datasets:
            raise NotFound("dataset", name)
        return self.datasets[name]

    def _children(self, name: str) -> list[str]:
        return [d for d in self.datasets if d.startswith(name + "/")]

    def _snaps_of(self, name: str) -> list[str]:
        return [s for s in self.snapshots if s.split("@")[0] == name]

    def _clones_of(self, snap: str) -> list[str]:
        return [d for d, v in self.datasets.items() if v.origin == snap]

    # ---- Datasets ----
    async def create_dataset(self, name: DatasetName, *, properties: Properties, parents: bool) -> None:
        self._create(name, DatasetType.FILESYSTEM, properties, parents)

    def _create(self, name: DatasetName, kind: DatasetType, properties: Properties, parents: bool,
                origin: str | None = None) -> None:
        if name.value in self.datasets:
            raise AlreadyExists("dataset", name.value)
        parent = name.parent
        if parent is not None and parent.value not in self.datasets:
            if not parents:
                raise NotFound("dataset", parent.value)
            self._create(parent, DatasetType.FILESYSTEM, {}, True)
        if parent is not None and self.datasets[parent.value].type is DatasetType.VOLUME:
            raise InvalidArgument("dataset", "volumes cannot have children")
        self.datasets[name.value] = _Dataset(kind, {str(k): str(v) for k, v in properties.items()},
                                             kind is DatasetType.FILESYSTEM, origin)

    async def create_volume(self, name: DatasetName, *, size_bytes: int, properties: Properties, sparse: bool) -> None:
        props = dict(properties)
        props[PropertyName("volsize")] = PropertyValue(str(size_bytes))
        self._create(name, DatasetType.VOLUME, props, False)

    async def create_clone(self, source: SnapshotName, target: DatasetName, *, properties: Properties) -> None:
        if source.value not in self.snapshots:
            raise NotFound("snapshot", source.value)
        self._create(target, self.datasets[source.dataset.value].type, properties, False, origin=source.value)

    async def destroy_dataset(self, name: DatasetName, *, flags: DestroyFlags) -> None:
        self._need(name.value)
        doomed = [name.value, *self._children(name.value)]
        snaps = [s for d in doomed for s in self._snaps_of(d)]
        if not flags.recursive and (len(doomed) > 1 or snaps):
            raise HasDependents(name.value, "has children", [*doomed[1:], *snaps])
        clones = [c for s in snaps for c in self._clones_of(s) if c not in doomed]
        if clones and not flags.dependents:
            raise HasDependents(name.value, "has dependent clones", clones)
        for s in snaps:
            if self.snapshots[s].holds:
                raise HasDependents(s, "snapshot has user holds (see snapshot_holds_list)")
        for c in clones:
            await self.destroy_dataset(DatasetName(c), flags=DestroyFlags(True, True))
        for s in snaps:
            del self.snapshots[s]
        for d in doomed:
            self.datasets.pop(d, None)
            for b in [b for b in self.bookmarks if b.split("#")[0] == d]:
                del self.bookmarks[b]

    async def list_datasets(self, root: DatasetName | None, *, recursive: bool, types: Sequence[DatasetType],
                            properties: Sequence[PropertyName]) -> list[tuple[str, dict[str, str]]]:
        if root is not None:
            self._need(root.value)
            names = [root.value, *(c for c in self._children(root.value)
                                   if recursive or c.count("/") == root.value.count("/") + 1)]
        else:
            names = list(self.datasets) if recursive else list(self.pools)
        out = []
        for n in sorted(names):
            ds = self.datasets[n]
            if ds.type in types:
                out.append((n, {p.value: ds.props.get(p.value, "-") for p in properties}))
        return out

    async def get_properties(self, name: DatasetName | SnapshotName, *, property: PropertyName | None
                             ) -> dict[str, PropertyEntry]:
        if isinstance(name, SnapshotName):
            if name.value not in self.snapshots:
                raise NotFound("snapshot", name.value)
            snap = self.snapshots[name.value]
            props = {"type": "snapshot", "guid": snap.guid, "createtxg": snap.txg, "userrefs": len(snap.holds)}
            sources = {}
        else:
            ds = self._need(name.value)
            props = {"type": ds.type.value, "mounted": "yes" if ds.mounted else "no", **ds.props}
            sources = {k: "local" for k in ds.props}
        if property is not None:
            if property.is_user:
                return {property.value: PropertyEntry(props.get(property.value, "-"),
                                                      sources.get(property.value, "-"))}
            if property.value not in props:
                raise InvalidArgument("property", f"bad property list: invalid property '{property.value}'")
            return {property.value: PropertyEntry(props[property.value], sources.get(property.value, "-"))}
        return {k: PropertyEntry(v, sources.get(k, "-")) for k, v in props.items()}

    async def set_property(self, name: DatasetName, prop: PropertyName, value: PropertyValue) -> None:
        self._need(name.value).props[prop.value] = value.value

    async def get_space(self, name: DatasetName) -> SpaceUsage:
        self._need(name.value)
        return SpaceUsage(name.value, 1 << 30, 0, 0, 0, 0, 0)

    async def mount(self, name: DatasetName) -> bool:
        ds = self._need(name.value)
        was, ds.mounted = ds.mounted, True
        return not was

    async def unmount(self, name: DatasetName) -> bool:
        ds = self._need(name.value)
        was, ds.mounted = ds.mounted, False
        return was

    async def rename(self, old: DatasetName, new: DatasetName) -> None:
        self._need(old.value)
        if new.value in self.datasets:
            raise AlreadyExists("dataset", new.value)
        if new.parent is not None and new.parent.value not in self.datasets:
            raise NotFound("dataset", new.parent.value)

        def moved(n: str) -> str:
            return new.value + n[len(old.value):]

        for table in (self.datasets, self.snapshots, self.bookmarks):
            for key in [k for k in table if k == old.value or k.startswith((old.value + "/", old.value + "@",
                                                                            old.value + "#"))]:
                table[moved(key)] = table.pop(key)

    # ---- Snapshots ----
    async def create_snapshot(self, name: SnapshotName, *, recursive: bool, properties: Properties) -> None:
        self._need(name.dataset.value)
        targets = [name.dataset.value, *(self._children(name.dataset.value) if recursive else [])]
        for t in targets:
            if f"{t}@{name.short}" in self.snapshots:
                raise AlreadyExists("snapshot", f"{t}@{name.short}")
        txg = next(self._txg)
        for t in targets:
            self.snapshots[f"{t}@{name.short}"] = _Snap(guid=hash((t, name.short, txg)) & (2**63 - 1), txg=txg)

    async def list_snapshots(self, dataset: DatasetName, *, recursive: bool, details: bool = True) -> list[Snapshot]:
        self._need(dataset.value)
        owners = {dataset.value, *(self._children(dataset.value) if recursive else [])}
        out = [Snapshot(n, s.guid, s.txg, 1_700_000_000 + s.txg, 0, 0, len(s.holds)) if details
               else Snapshot(n, s.guid, s.txg)
               for n, s in self.snapshots.items() if n.split("@")[0] in owners]
        return sorted(out, key=lambda s: (s.createtxg, s.name))

    async def destroy_snapshot(self, name: SnapshotName, *, recursive: bool) -> None:
        targets = [n for n in self.snapshots if n == name.value or recursive and n.split("@")[1] == name.short
                   and n.split("@")[0].startswith(name.dataset.value + "/")]
        if not targets:
            raise NotFound("snapshot", name.value)
        for t in targets:
            if clones := self._clones_of(t):
                raise HasDependents(t, "has dependent clones", clones)
            if self.snapshots[t].holds:
                raise HasDependents(t, "snapshot has user holds (see snapshot_holds_list)")
        for t in targets:
            del self.snapshots[t]

    async def rollback(self, name: SnapshotName, *, destroy_newer: bool) -> None:
        if name.value not in self.snapshots:
            raise NotFound("snapshot", name.value)
        txg = self.snapshots[name.value].txg
        newer = [n for n in self._snaps_of(name.dataset.value) if self.snapshots[n].txg > txg]
        if newer and not destroy_newer:
            raise StateConflict("more recent snapshots or bookmarks exist", newer=newer)
        for n in newer:
            await self.destroy_snapshot(SnapshotName.parse(n), recursive=False)

    async def hold(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        if name.value not in self.snapshots:
            raise NotFound("snapshot", name.value)
        if tag.value in self.snapshots[name.value].holds:
            raise AlreadyExists("hold", name.value)
        self.snapshots[name.value].holds[tag.value] = int(datetime.now(timezone.utc).timestamp())

    async def release(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        if name.value not in self.snapshots:
            raise NotFound("snapshot", name.value)
        if self.snapshots[name.value].holds.pop(tag.value, None) is None:
            raise NotFound("hold", name.value)

    async def list_holds(self, name: SnapshotName, *, recursive: bool) -> list[tuple[str, Hold]]:
        if name.value not in self.snapshots:
            raise NotFound("snapshot", name.value)
        return [(name.value, Hold(t, ts)) for t, ts in self.snapshots[name.value].holds.items()]

    async def diff(self, older: SnapshotName, newer: SnapshotName | DatasetName) -> list[DiffEntry]:
        for n in (older.value, newer.value):
            if "@" in n and n not in self.snapshots:
                raise NotFound("snapshot", n)
        return [DiffEntry(ChangeKind.MODIFIED, f"/{older.dataset.value}/", "directory")]

    # ---- Bookmarks ----
    async def create_bookmark(self, source: SnapshotName | BookmarkName, bookmark: BookmarkName) -> None:
        table = self.snapshots if isinstance(source, SnapshotName) else self.bookmarks
        if source.value not in table:
            raise NotFound("snapshot" if isinstance(source, SnapshotName) else "bookmark", source.value)
        if bookmark.value in self.bookmarks:
            raise AlreadyExists("bookmark", bookmark.value)
        self.bookmarks[bookmark.value] = next(self._txg)

    async def list_bookmarks(self, dataset: DatasetName) -> list[str]:
        self._need(dataset.value)
        return sorted((b for b in self.bookmarks if b.split("#")[0] == dataset.value), key=self.bookmarks.get)

    async def destroy_bookmark(self, bookmark: BookmarkName) -> None:
        if self.bookmarks.pop(bookmark.value, None) is None:
            raise NotFound("bookmark", bookmark.value)

    # ---- Pools ----
    async def list_pools(self) -> list[Pool]:
        return [Pool(p, 1 << 30, 1 << 20, (1 << 30) - (1 << 20), 0, h, 1) for p, h in self.pools.items()]

    def _pool(self, pool: PoolName) -> None:
        if pool.value not in self.pools:
            raise NotFound("pool", pool.value)

    async def pool_properties(self, pool: PoolName, *, property: PropertyName | None) -> dict[str, PropertyEntry]:
        self._pool(pool)
        props = {"size": PropertyEntry(1 << 30, "-"), "health": PropertyEntry(self.pools[pool.value], "-")}
        return props if property is None else {property.value: props[property.value]}

    async def scrub(self, pool: PoolName, *, stop: bool) -> None:
        self._pool(pool)
        if stop:
            if pool.value not in self.scrubbing:
                raise StateConflict("there is no active scrub")
            self.scrubbing.discard(pool.value)
        else:
            if pool.value in self.scrubbing:
                raise HasDependents(pool.value, "a scrub or resilver is in progress")
            self.scrubbing.add(pool.value)

    async def pool_status(self, pool: PoolName) -> PoolStatus:
        self._pool(pool)
        scan = ScanStatus("scrub", "scanning", 0.0, 0, 1, 0) if pool.value in self.scrubbing else \
            ScanStatus(None, None, None, None, None, None)
        return PoolStatus(pool.value, f"  pool: {pool.value}\n", self.pools[pool.value], scan,
                          [Vdev(pool.value, "ONLINE", 0, 0, 0)], "No known data errors")

    async def version(self) -> str:
        return "2.3.2"
