"""SimulatedZfs: an in-memory ZFS tree implementing the Datasets, Snapshots, Bookmarks and Pools ports, held to
real OpenZFS by the contract suite in tests/zfs_contract.py (the same cases run over it and over the real gateway).
It serves `zfsapi serve --simulate` (bootstrap/simulate.py) and the unit tests (as tests.fakes.FakeZfs).

It answers like ZFS for the same calls: the same values (numbers as int, sources such as "inherited from x"),
the same orders and the same domain errors, with ZFS's own wording where an error carries it. Space figures are
made up but keep ZFS's relations (used = the sum of its parts, a parent's usedchild = its children's used)."""

from __future__ import annotations

import itertools
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Sequence, TypeVar

from zfsapi.adapters.outbound.zfs import commands
from zfsapi.adapters.outbound.zfs.parsers import property_value
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    StateConflict,
    ZfsCommandFailed,
)
from zfsapi.domain.models import (
    Bookmark,
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
T = TypeVar("T")
FS, VOL = DatasetType.FILESYSTEM, DatasetType.VOLUME

TXG = itertools.count(100)
POOL_SIZE = 1 << 30
FS_USED, VOL_USED = 24_576, 12_288  # what an empty filesystem, an empty volume uses
VOLBLOCKSIZE = 16_384


def epoch_now() -> int:
    return int(time.time())


def new_guid() -> int:
    return random.getrandbits(63) + 1


@dataclass(frozen=True)
class _Native:
    """A settable native property: default, inheritance, allowed values, byte size or not, where it applies."""

    default: str
    inherit: bool = True
    choices: tuple[str, ...] | None = None
    size: bool = False
    types: tuple[DatasetType, ...] = (FS, VOL)


_ONOFF = ("on", "off")
_COMPRESSION = ("on", "off", "lzjb", "gzip", *(f"gzip-{i}" for i in range(1, 10)), "zle", "lz4", "zstd",
                *(f"zstd-{i}" for i in range(1, 20)), "zstd-fast",
                *(f"zstd-fast-{i}" for i in (*range(1, 11), 20, 30, 40, 50, 60, 70, 80, 90, 100, 500, 1000)))
_SETTABLE = {
    "atime": _Native("on", choices=_ONOFF, types=(FS,)),
    "canmount": _Native("on", inherit=False, choices=("on", "off", "noauto"), types=(FS,)),
    "checksum": _Native("on", choices=("on", "off", "fletcher2", "fletcher4", "sha256", "sha512", "skein", "edonr",
                                       "blake3")),
    "compression": _Native("on", choices=_COMPRESSION),
    "copies": _Native("1", choices=("1", "2", "3")),
    "mountpoint": _Native("", types=(FS,)),
    "quota": _Native("0", inherit=False, size=True, types=(FS,)),
    "readonly": _Native("off", choices=_ONOFF),
    "recordsize": _Native("131072", size=True, types=(FS,)),
    "refquota": _Native("0", inherit=False, size=True, types=(FS,)),
    "refreservation": _Native("0", inherit=False, size=True),
    "reservation": _Native("0", inherit=False, size=True),
    "sharenfs": _Native("off", types=(FS,)),
    "sharesmb": _Native("off", types=(FS,)),
    "sync": _Native("standard", choices=("standard", "always", "disabled")),
    "volblocksize": _Native(str(VOLBLOCKSIZE), inherit=False, size=True, types=(VOL,)),
    "volsize": _Native("0", inherit=False, size=True, types=(VOL,)),
}
_READONLY = {"type", "creation", "used", "available", "referenced", "compressratio", "mounted", "origin", "guid",
             "createtxg", "usedbysnapshots", "usedbydataset", "usedbychildren", "usedbyrefreservation", "written",
             "userrefs", "objsetid"}
_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGTPE]?)B?", re.IGNORECASE)
_POOL_PROPERTIES = ("size", "capacity", "altroot", "health", "guid", "version", "bootfs", "delegation",
                    "autoreplace", "cachefile", "failmode", "listsnapshots", "autoexpand", "readonly", "free",
                    "allocated", "freeing", "fragmentation", "leaked", "comment")


def refused(argv: list[str], what: str, message: str) -> ZfsCommandFailed:
    """ZFS's refusal `what: message`; `zfs set` exits 255 where the other commands exit 1."""
    return ZfsCommandFailed(argv, 255 if argv[1] == "set" else 1, f"{what}: {message}\n")


@dataclass
class DatasetRecord:
    type: DatasetType
    props: dict[str, str] = field(default_factory=dict)  # set locally, normalized as ZFS stores them
    mounted: bool = True
    origin: str | None = None
    guid: int = field(default_factory=new_guid)
    txg: int = field(default_factory=lambda: next(TXG))
    creation: int = field(default_factory=epoch_now)


@dataclass
class SnapshotRecord:
    guid: int
    txg: int
    holds: dict[str, int] = field(default_factory=dict)  # tag -> when (epoch seconds)
    props: dict[str, str] = field(default_factory=dict)  # user properties set on the snapshot
    creation: int = field(default_factory=epoch_now)
    referenced: int = FS_USED


@dataclass
class PoolRecord:
    health: str = "ONLINE"
    guid: int = field(default_factory=new_guid)
    scan: ScanStatus = ScanStatus(None, None, None, None, None, None)



class SimulatedZfs:
    def __init__(self, pools: Sequence[str] = ("tank",)) -> None:
        self.pools = {p: PoolRecord() for p in pools}
        self.datasets: dict[str, DatasetRecord] = {p: DatasetRecord(FS) for p in pools}
        self.snapshots: dict[str, SnapshotRecord] = {}
        self.bookmarks: dict[str, int] = {}  # full name -> createtxg (that of the snapshot it was made from)
        self.bookmark_guids: dict[str, int] = {}  # full name -> guid (that of the snapshot it was made from)
        self.changes: dict[str, list[tuple[int, DiffEntry]]] = {}  # dataset -> (txg, change) seen by diff
        self.written: dict[str, int] = {}  # dataset -> bytes written since its newest snapshot (`written`)

    def write(self, dataset: str, change: DiffEntry) -> None:
        """Record a change to a file of `dataset` (what `zfs diff` reports between the snapshots around it)."""
        self._need(dataset)
        self.changes.setdefault(dataset, []).append((next(TXG), change))

    def write_bytes(self, dataset: str, size: int) -> None:
        """Write `size` new bytes to `dataset` (what its `written` property counts)."""
        self._need(dataset)
        self.written[dataset] = self.written.get(dataset, 0) + size

    def written_of(self, dataset: str) -> int:
        """`written`: the bytes written since the newest snapshot; all it references when it has none."""
        base = 0 if self._snaps_of(dataset) else FS_USED
        return base + self.written.get(dataset, 0)

    # ---- helpers ----
    def _need(self, name: str) -> DatasetRecord:
        if name not in self.datasets:
            raise NotFound("dataset", name)
        return self.datasets[name]

    def _need_snapshot(self, name: str) -> SnapshotRecord:
        if name not in self.snapshots:
            raise NotFound("snapshot", name)
        return self.snapshots[name]

    def _children(self, name: str) -> list[str]:
        return sorted(d for d in self.datasets if d.startswith(name + "/"))

    def _snaps_of(self, name: str) -> list[str]:
        """Oldest first."""
        return sorted((s for s in self.snapshots if s.split("@")[0] == name), key=lambda s: self.snapshots[s].txg)

    def _clones_of(self, snap: str) -> list[str]:
        return sorted(d for d, v in self.datasets.items() if v.origin == snap)

    def _family(self, name: SnapshotName, recursive: bool) -> list[str]:
        """The snapshot and, when recursive, the same-named snapshots of every descendant that has one."""
        below = self._children(name.dataset.value) if recursive else []
        return [s for s in (name.value, *(f"{d}@{name.short}" for d in below)) if s in self.snapshots]

    def _validate(self, argv: list[str], what: str, kind: DatasetType, properties: Properties) -> dict[str, str]:
        """ZFS's checks of properties to set: the values as ZFS stores them."""
        out: dict[str, str] = {}
        for prop, value in properties.items():
            name, text = prop.value, value.value
            if prop.is_user:
                out[name] = text
                continue
            if name in _READONLY:
                raise refused(argv, what, f"'{name}' is readonly")
            native = _SETTABLE.get(name)
            if native is None:
                raise InvalidArgument("property", f"{what}: invalid property '{name}'")
            if kind not in native.types:
                raise refused(argv, what, f"'{name}' does not apply to datasets of this type")
            if native.choices is not None and text not in native.choices:
                raise refused(argv, what, f"'{name}' must be one of '{' | '.join(native.choices)}'")
            if native.size:
                match = _SIZE.fullmatch(text)
                if text == "none":
                    text = "0"
                elif match is None:
                    raise refused(argv, what, f"bad numeric value '{text}'")
                else:
                    text = str(int(float(match.group(1)) * (1 << _UNITS[match.group(2).upper()])))
            out[name] = text
        return out

    def _ancestors(self, name: str) -> list[str]:
        """Nearest first."""
        parts = name.split("/")
        return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]

    def _holder(self, name: str, prop: str, inherit: bool) -> str | None:
        """The dataset whose local value of `prop` applies to `name`: itself or, if `prop` inherits, an ancestor."""
        return next((d for d in (name, *(self._ancestors(name) if inherit else [])) if prop in self.datasets[d].props),
                    None)

    def _effective(self, name: str, prop: str, inherit: bool, default: str) -> PropertyEntry:
        holder = self._holder(name, prop, inherit)
        if holder is None:
            if prop == "mountpoint":
                return PropertyEntry("/" + name, "default")
            return PropertyEntry(property_value(prop, default), "default" if default != "-" else "-")
        value = self.datasets[holder].props[prop] + (name[len(holder):] if prop == "mountpoint" else "")
        return PropertyEntry(property_value(prop, value), "local" if holder == name else f"inherited from {holder}")

    def _space(self, name: str) -> SpaceUsage:
        """ZFS's relations: used = usedsnap + usedds + usedrefreserv + usedchild; avail = what the pool has left."""
        def own(d: DatasetRecord) -> tuple[int, int]:  # usedds, usedrefreserv
            usedds = FS_USED if d.type is FS else VOL_USED
            return usedds, max(0, int(d.props.get("refreservation", "0")) - usedds)

        usedds, refreserv = own(self.datasets[name])
        children = sum(self._space(c).used for c in self._children(name) if c.count("/") == name.count("/") + 1)
        pool = name.split("/")[0]
        pool_used = sum(sum(own(d)) for n, d in self.datasets.items() if n.split("/")[0] == pool)
        return SpaceUsage(name, POOL_SIZE - pool_used, usedds + refreserv + children, 0, usedds, refreserv, children)

    def _dataset_properties(self, name: str) -> dict[str, PropertyEntry]:
        ds = self.datasets[name]
        space = self._space(name)
        ro: dict[str, int | str] = {
            "type": ds.type.value, "creation": ds.creation, "used": space.used, "available": space.avail,
            "referenced": space.useddss, "compressratio": "1.00", "guid": ds.guid, "createtxg": ds.txg,
            "usedbysnapshots": 0, "usedbydataset": space.useddss, "usedbychildren": space.usedchild,
            "usedbyrefreservation": space.usedrefreserv, "written": space.useddss,
        }
        if ds.type is FS:
            ro["mounted"] = "yes" if ds.mounted else "no"
        if ds.origin is not None:
            ro["origin"] = ds.origin
        out = {k: PropertyEntry(v, "-") for k, v in ro.items()}
        for prop, native in _SETTABLE.items():
            if ds.type in native.types:
                out[prop] = self._effective(name, prop, native.inherit, native.default)
        for prop in sorted({p for d in (name, *self._ancestors(name)) for p in self.datasets[d].props if ":" in p}):
            out[prop] = self._effective(name, prop, True, "-")
        return out

    def _snapshot_properties(self, name: str) -> dict[str, PropertyEntry]:
        snap = self.snapshots[name]
        ro: dict[str, int | str] = {
            "type": "snapshot", "creation": snap.creation, "used": 0, "referenced": snap.referenced,
            "compressratio": "1.00", "guid": snap.guid, "createtxg": snap.txg, "userrefs": len(snap.holds),
        }
        out = {k: PropertyEntry(v, "-") for k, v in ro.items()}
        for prop, value in snap.props.items():
            out[prop] = PropertyEntry(value, "local")
        dataset = name.split("@")[0]
        for prop in sorted({p for d in (dataset, *self._ancestors(dataset)) for p in self.datasets[d].props
                            if ":" in p} - set(snap.props)):
            entry = self._effective(dataset, prop, True, "-")
            out[prop] = PropertyEntry(entry.value, entry.source if entry.source.startswith("inherited")
                                      else f"inherited from {dataset}")
        return out

    # ---- Datasets ----
    async def create_dataset(self, name: DatasetName, *, properties: Properties, parents: bool) -> None:
        self.make_dataset(name, properties, parents)

    def make_dataset(self, name: DatasetName, properties: Properties, parents: bool) -> None:
        """create_dataset, done now (a seed needs no event loop)."""
        if parents and name.value in self.datasets:
            return  # `zfs create -p` of an existing dataset succeeds
        self._create(commands.create(name, properties, parents), name, FS, properties, parents)

    def _create(self, argv: list[str], name: DatasetName, kind: DatasetType, properties: Properties, parents: bool,
                origin: str | None = None) -> None:
        pool = name.value.split("/")[0]
        if pool not in self.pools:
            raise NotFound("pool", pool)
        missing = [a for a in reversed(self._ancestors(name.value)) if a not in self.datasets]
        if missing and not parents:
            raise NotFound("dataset", missing[-1])
        if name.value in self.datasets:
            raise AlreadyExists("dataset", name.value)
        what = f"cannot create '{name}'"
        existing = next(a for a in self._ancestors(name.value) if a in self.datasets)
        if self.datasets[existing].type is not FS:
            raise refused(argv, what, "parent is not a filesystem")
        props = self._validate(argv, what, kind, properties)
        for a in missing:
            self.datasets[a] = DatasetRecord(FS)
        self.datasets[name.value] = DatasetRecord(kind, props, kind is FS, origin)

    async def create_volume(self, name: DatasetName, *, size_bytes: int, properties: Properties, sparse: bool) -> None:
        self.make_volume(name, size_bytes, properties, sparse)

    def make_volume(self, name: DatasetName, size_bytes: int, properties: Properties, sparse: bool) -> None:
        """create_volume, done now (a seed needs no event loop)."""
        argv = commands.create_volume(name, size_bytes, properties, sparse)
        block = int(properties.get(PropertyName("volblocksize"), PropertyValue(str(VOLBLOCKSIZE))).value)
        volsize = math.ceil(size_bytes / block) * block
        extra = {PropertyName("volsize"): PropertyValue(str(volsize))}
        if not sparse:
            extra[PropertyName("refreservation")] = PropertyValue(str(volsize + volsize // 64 + 3 * block))
        self._create(argv, name, VOL, {**properties, **extra}, False)

    async def create_clone(self, source: SnapshotName, target: DatasetName, *, properties: Properties) -> None:
        self._need_snapshot(source.value)
        kind = self.datasets[source.dataset.value].type
        self._create(commands.clone(source, target, properties), target, kind, properties, False, origin=source.value)

    def _dependents(self, name: str) -> list[str]:
        """What `zfs destroy -r` takes along, in ZFS's order: each child after its own dependents, then the
        dataset's snapshots."""
        direct = [c for c in self._children(name) if c.count("/") == name.count("/") + 1]
        return [*(x for c in direct for x in (*self._dependents(c), c)), *self._snaps_of(name)]

    def _destroy_plan(self, name: DatasetName, flags: DestroyFlags) -> tuple[list[str], list[str], list[str]]:
        """(datasets, snapshots, clones elsewhere) a destroy takes, raising what ZFS raises for it."""
        self._need(name.value)
        below = self._dependents(name.value)
        if below and not flags.recursive:
            raise HasDependents(name.value, "has children", below)
        doomed = [name.value, *(d for d in below if "@" not in d)]
        snaps = [s for s in below if "@" in s]
        clones = [c for s in snaps for c in self._clones_of(s) if c not in doomed]
        if clones and not flags.dependents:
            raise HasDependents(name.value, "has dependent clones", clones)
        if held := next((s for s in snaps if self.snapshots[s].holds), None):
            raise HasDependents(held, "snapshot has user holds (see snapshot_holds_list)")
        return doomed, snaps, clones

    async def preview_destroy(self, name: DatasetName, *, flags: DestroyFlags) -> list[str]:
        doomed, snaps, clones = self._destroy_plan(name, flags)
        out = [*doomed, *snaps]
        for c in clones:
            out += await self.preview_destroy(DatasetName(c), flags=DestroyFlags(True, True))
        return out

    async def destroy_dataset(self, name: DatasetName, *, flags: DestroyFlags) -> None:
        doomed, snaps, clones = self._destroy_plan(name, flags)
        for c in clones:
            if c in self.datasets:
                await self.destroy_dataset(DatasetName(c), flags=DestroyFlags(True, True))
        for s in snaps:
            del self.snapshots[s]
        for d in doomed:
            self.datasets.pop(d, None)
            self.changes.pop(d, None)
            for b in [b for b in self.bookmarks if b.split("#")[0] == d]:
                del self.bookmarks[b]

    async def list_datasets(self, root: DatasetName | None, *, recursive: bool, types: Sequence[DatasetType],
                            properties: Sequence[PropertyName]) -> list[tuple[str, dict[str, int | str]]]:
        if root is not None:
            self._need(root.value)
            names = [root.value, *(c for c in self._children(root.value)
                                   if recursive or c.count("/") == root.value.count("/") + 1)]
        else:
            names = list(self.datasets) if recursive else list(self.pools)
        out = []
        for n in sorted(names):
            if self.datasets[n].type not in types:
                continue
            known = self._dataset_properties(n)
            out.append((n, {p.value: known[p.value].value if p.value in known else "-" for p in properties}))
        return out  # values are int | str, as from the real gateway

    async def get_properties(self, name: DatasetName | SnapshotName, *, property: PropertyName | None
                             ) -> dict[str, PropertyEntry]:
        if isinstance(name, SnapshotName):
            self._need_snapshot(name.value)
            known = self._snapshot_properties(name.value)
        else:
            self._need(name.value)
            known = self._dataset_properties(name.value)
        if property is None:
            return known
        if property.value in known:
            return {property.value: known[property.value]}
        if property.is_user or property.value in _SETTABLE or property.value in _READONLY:
            return {property.value: PropertyEntry("-", "-")}
        raise InvalidArgument("property", f"bad property list: invalid property '{property.value}'")

    async def set_property(self, name: DatasetName, prop: PropertyName, value: PropertyValue) -> None:
        ds = self._need(name.value)
        argv = commands.set_property(name, prop, value)
        ds.props.update(self._validate(argv, f"cannot set property for '{name}'", ds.type, {prop: value}))

    async def get_space(self, name: DatasetName) -> SpaceUsage:
        self._need(name.value)
        return self._space(name.value)

    def _filesystem(self, argv: list[str], name: DatasetName) -> DatasetRecord:
        ds = self._need(name.value)
        if ds.type is not FS:
            raise refused(argv, f"cannot open '{name}'", "operation not applicable to datasets of this type")
        return ds

    async def mount(self, name: DatasetName) -> bool:
        ds = self._filesystem(commands.mount(name), name)
        was, ds.mounted = ds.mounted, True
        return not was

    async def unmount(self, name: DatasetName) -> bool:
        ds = self._filesystem(commands.unmount(name), name)
        was, ds.mounted = ds.mounted, False
        return was

    async def rename(self, old: DatasetName, new: DatasetName) -> None:
        self._need(old.value)
        if new.value.split("/")[0] not in self.pools:
            raise NotFound("pool", new.value.split("/")[0])
        if new.value in self.datasets:
            raise AlreadyExists("dataset", new.value)
        if new.value.startswith(old.value + "/"):
            raise refused(commands.rename(old, new), f"cannot rename to '{new}'",
                           "New dataset name cannot be a descendant of current dataset name")
        if new.parent is not None and new.parent.value not in self.datasets:
            raise NotFound("dataset", new.parent.value)

        def moved(n: str) -> str:
            return new.value + n[len(old.value):]

        def move(table: dict[str, T]) -> None:
            for key in [k for k in table if k == old.value or k.startswith((old.value + "/", old.value + "@",
                                                                            old.value + "#"))]:
                table[moved(key)] = table.pop(key)

        move(self.datasets)
        move(self.snapshots)
        move(self.bookmarks)
        move(self.bookmark_guids)
        move(self.changes)
        for ds in self.datasets.values():
            if ds.origin is not None and ds.origin.startswith((old.value + "@", old.value + "/")):
                ds.origin = moved(ds.origin)

    # ---- Snapshots ----
    async def create_snapshot(self, name: SnapshotName, *, recursive: bool, properties: Properties) -> None:
        self.take_snapshot(name, recursive, properties)

    def take_snapshot(self, name: SnapshotName, recursive: bool, properties: Properties) -> None:
        """create_snapshot, done now (a seed needs no event loop)."""
        self._need(name.dataset.value)
        targets = [name.dataset.value, *(self._children(name.dataset.value) if recursive else [])]
        for t in targets:
            if f"{t}@{name.short}" in self.snapshots:
                raise AlreadyExists("snapshot", f"{t}@{name.short}")
        props = self._validate(commands.snapshot(name, recursive, properties), f"cannot create snapshot '{name}'",
                               DatasetType.SNAPSHOT, properties)
        txg = next(TXG)
        for t in targets:
            self.snapshots[f"{t}@{name.short}"] = SnapshotRecord(new_guid(), txg, props=dict(props),
                                                       referenced=self._space(t).useddss)
            self.written.pop(t, None)

    async def list_snapshots(self, dataset: DatasetName, *, recursive: bool, details: bool = True) -> list[Snapshot]:
        self._need(dataset.value)
        owners = {dataset.value, *(self._children(dataset.value) if recursive else [])}
        out = [Snapshot(n, s.guid, s.txg, s.creation, 0, s.referenced, len(s.holds)) if details
               else Snapshot(n, s.guid, s.txg)
               for n, s in self.snapshots.items() if n.split("@")[0] in owners]
        return sorted(out, key=lambda s: (s.createtxg, s.dataset))  # ZFS: same txg, parents first

    async def destroy_snapshot(self, name: SnapshotName, *, recursive: bool) -> None:
        self._need(name.dataset.value)
        targets = self._family(name, recursive)
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
        txg = self._need_snapshot(name.value).txg
        newer = [n for n in self._snaps_of(name.dataset.value) if self.snapshots[n].txg > txg]
        newer_marks = sorted((b for b, t in self.bookmarks.items() if b.split("#")[0] == name.dataset.value
                              and t > txg), key=lambda b: (self.bookmarks[b], b))
        if (newer or newer_marks) and not destroy_newer:
            raise StateConflict("more recent snapshots or bookmarks exist", newer=[*newer, *newer_marks])
        for n in newer:
            await self.destroy_snapshot(SnapshotName.parse(n), recursive=False)
        for b in newer_marks:
            del self.bookmarks[b]
        self.changes[name.dataset.value] = [c for c in self.changes.get(name.dataset.value, []) if c[0] <= txg]

    async def hold(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        targets = self._family(name, recursive)
        if name.value not in self.snapshots:
            raise NotFound("snapshot", name.value)
        for t in targets:
            if tag.value in self.snapshots[t].holds:
                raise AlreadyExists("hold", name.value)
        for t in targets:
            self.snapshots[t].holds[tag.value] = epoch_now()

    async def release(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        targets = self._family(name, recursive)
        if name.value not in self.snapshots:
            raise NotFound("snapshot", name.value)
        for t in targets:
            if tag.value not in self.snapshots[t].holds:
                raise NotFound("hold", name.value)
        for t in targets:
            del self.snapshots[t].holds[tag.value]

    async def list_holds(self, name: SnapshotName, *, recursive: bool) -> list[tuple[str, Hold]]:
        self._need_snapshot(name.value)
        return [(t, Hold(tag, when)) for t in self._family(name, recursive)
                for tag, when in self.snapshots[t].holds.items()]

    async def diff(self, older: SnapshotName, newer: SnapshotName | DatasetName) -> list[DiffEntry]:
        start = self._need_snapshot(older.value).txg
        end = self._need_snapshot(newer.value).txg if isinstance(newer, SnapshotName) else math.inf
        if end < start:
            raise ZfsCommandFailed(commands.diff(older, newer), 1,
                                   "Unable to obtain diffs: \n   Not an earlier snapshot from the same fs\n")
        return [change for txg, change in self.changes.get(older.dataset.value, []) if start < txg <= end]

    # ---- Bookmarks ----
    async def create_bookmark(self, source: SnapshotName | BookmarkName, bookmark: BookmarkName) -> None:
        if isinstance(source, SnapshotName):
            txg, guid = self._need_snapshot(source.value).txg, self.snapshots[source.value].guid
        elif source.value in self.bookmarks:
            txg, guid = self.bookmarks[source.value], self.bookmark_guids.get(source.value, 0)
        else:
            raise NotFound("bookmark", source.value)
        if bookmark.dataset != source.dataset:
            raise refused(commands.bookmark(source, bookmark), f"cannot create bookmark '{bookmark}'",
                           "source is not an ancestor of the new bookmark's dataset")
        if bookmark.value in self.bookmarks:
            raise AlreadyExists("bookmark", bookmark.value)
        self.bookmarks[bookmark.value] = txg
        self.bookmark_guids[bookmark.value] = guid

    async def list_bookmarks(self, dataset: DatasetName) -> list[str]:
        self._need(dataset.value)
        return sorted((b for b in self.bookmarks if b.split("#")[0] == dataset.value),
                      key=lambda b: (self.bookmarks[b], b))

    async def list_bookmark_ids(self, dataset: DatasetName) -> list[Bookmark]:
        return [Bookmark(b, self.bookmark_guids.get(b, 0), self.bookmarks[b])
                for b in await self.list_bookmarks(dataset)]

    async def destroy_bookmark(self, bookmark: BookmarkName) -> None:
        if self.bookmarks.pop(bookmark.value, None) is None:
            raise NotFound("bookmark", bookmark.value)

    # ---- Pools ----
    def _pool(self, pool: PoolName | str) -> PoolRecord:
        name = pool if isinstance(pool, str) else pool.value
        if name not in self.pools:
            raise NotFound("pool", name)
        return self.pools[name]

    def _pool_row(self, name: str) -> Pool:
        allocated = POOL_SIZE - self._space(name).avail
        return Pool(name, POOL_SIZE, allocated, POOL_SIZE - allocated, allocated * 100 // POOL_SIZE,
                    self.pools[name].health, 0)

    async def list_pools(self) -> list[Pool]:
        return [self._pool_row(p) for p in sorted(self.pools)]

    async def pool_properties(self, pool: PoolName, *, property: PropertyName | None) -> dict[str, PropertyEntry]:
        p = self._pool(pool)
        row = self._pool_row(pool.value)
        known = {"size": PropertyEntry(row.size, "-"), "capacity": PropertyEntry(row.capacity, "-"),
                 "health": PropertyEntry(row.health, "-"), "guid": PropertyEntry(p.guid, "-"),
                 "free": PropertyEntry(row.free, "-"), "allocated": PropertyEntry(row.allocated, "-"),
                 "fragmentation": PropertyEntry(row.fragmentation or 0, "-"), "readonly": PropertyEntry("off", "-")}
        if property is None:
            return known
        if property.value in known:
            return {property.value: known[property.value]}
        if property.is_user or property.value in _POOL_PROPERTIES:
            return {property.value: PropertyEntry("-", "default")}
        raise InvalidArgument("property", f"bad property list: invalid property '{property.value}'")

    async def scrub(self, pool: PoolName, *, stop: bool) -> None:
        p = self._pool(pool)
        scanning = p.scan.state == "scanning"
        if stop:
            if not scanning:
                raise StateConflict("there is no active scrub")
            p.scan = ScanStatus("scrub", "canceled", None, None, None, None)
        else:
            if scanning:
                raise Busy(pool.value, "a scrub or resilver is in progress")
            p.scan = ScanStatus("scrub", "scanning", 0.0, None, None, 0)  # 2.3 prints the bytes scanned in units

    async def pool_status(self, pool: PoolName) -> PoolStatus:
        p = self._pool(pool)
        leaf = Vdev(f"/var/tmp/{pool}.img", "ONLINE", 0, 0, 0)
        return PoolStatus(pool.value, f"  pool: {pool.value}\n state: {p.health}\n", p.health, p.scan,
                          [Vdev(pool.value, p.health, 0, 0, 0, [leaf])], "No known data errors")

    async def version(self) -> str:
        return "2.3.2"

