"""FakeZfs: an in-memory ZFS tree implementing the Datasets, Snapshots, Bookmarks and Pools ports, held to real
OpenZFS by the contract suite in tests/zfs_contract.py (the same cases run over the fake and the real gateway).

It answers like ZFS for the same calls: the same values (numbers as int, sources such as "inherited from x"),
the same orders and the same domain errors, with ZFS's own wording where an error carries it. Space figures are
made up but keep ZFS's relations (used = the sum of its parts, a parent's usedchild = its children's used)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence, TypeVar

from zfsapi.adapters.outbound.zfs import commands, policy_ops
from zfsapi.adapters.outbound.zfs.parsers import property_value
from zfsapi.application.policy_ports import ListedSnapshot, TreeEntry
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
from zfsapi.domain.policies import MAX_ARGV_BYTES, OWNER_PROPERTY
from zfsapi.domain.retention import SnapshotInfo, destroy_arguments
from zfsapi.domain.transfer import ReceiveSpec, ResumeSend, ResumeToken, ResumeTokenContents, SendSpec

Properties = dict[PropertyName, PropertyValue]
T = TypeVar("T")
N = TypeVar("N", DatasetName, SnapshotName)
FS, VOL = DatasetType.FILESYSTEM, DatasetType.VOLUME

_TXG = itertools.count(100)
POOL_SIZE = 1 << 30
FS_USED, VOL_USED = 24_576, 12_288  # what an empty filesystem, an empty volume uses
VOLBLOCKSIZE = 16_384


def _now() -> int:
    return int(time.time())


def _guid() -> int:
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


def _refused(argv: list[str], what: str, message: str) -> ZfsCommandFailed:
    """ZFS's refusal `what: message`; `zfs set` exits 255 where the other commands exit 1."""
    return ZfsCommandFailed(argv, 255 if argv[1] == "set" else 1, f"{what}: {message}\n")


@dataclass
class _Dataset:
    type: DatasetType
    props: dict[str, str] = field(default_factory=dict)  # set locally, normalized as ZFS stores them
    mounted: bool = True
    origin: str | None = None
    guid: int = field(default_factory=_guid)
    txg: int = field(default_factory=lambda: next(_TXG))
    creation: int = field(default_factory=_now)


@dataclass
class _Snap:
    guid: int
    txg: int
    holds: dict[str, int] = field(default_factory=dict)  # tag -> when (epoch seconds)
    props: dict[str, str] = field(default_factory=dict)  # user properties set on the snapshot
    creation: int = field(default_factory=_now)
    referenced: int = FS_USED


@dataclass
class _Pool:
    health: str = "ONLINE"
    guid: int = field(default_factory=_guid)
    scan: ScanStatus = ScanStatus(None, None, None, None, None, None)


class FixedClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def now(self) -> datetime:
        return self.when


class FakeZfs:
    def __init__(self, pools: Sequence[str] = ("tank",)) -> None:
        self.pools = {p: _Pool() for p in pools}
        self.datasets: dict[str, _Dataset] = {p: _Dataset(FS) for p in pools}
        self.snapshots: dict[str, _Snap] = {}
        self.bookmarks: dict[str, int] = {}  # full name -> createtxg (that of the snapshot it was made from)
        self.bookmark_guids: dict[str, int] = {}  # full name -> guid (that of the snapshot it was made from)
        self.changes: dict[str, list[tuple[int, DiffEntry]]] = {}  # dataset -> (txg, change) seen by diff
        self.written: dict[str, int] = {}  # dataset -> bytes written since its newest snapshot (`written`)

    def write(self, dataset: str, change: DiffEntry) -> None:
        """Record a change to a file of `dataset` (what `zfs diff` reports between the snapshots around it)."""
        self._need(dataset)
        self.changes.setdefault(dataset, []).append((next(_TXG), change))

    def write_bytes(self, dataset: str, size: int) -> None:
        """Write `size` new bytes to `dataset` (what its `written` property counts)."""
        self._need(dataset)
        self.written[dataset] = self.written.get(dataset, 0) + size

    def written_of(self, dataset: str) -> int:
        """`written`: the bytes written since the newest snapshot; all it references when it has none."""
        base = 0 if self._snaps_of(dataset) else FS_USED
        return base + self.written.get(dataset, 0)

    # ---- helpers ----
    def _need(self, name: str) -> _Dataset:
        if name not in self.datasets:
            raise NotFound("dataset", name)
        return self.datasets[name]

    def _need_snapshot(self, name: str) -> _Snap:
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
                raise _refused(argv, what, f"'{name}' is readonly")
            native = _SETTABLE.get(name)
            if native is None:
                raise InvalidArgument("property", f"{what}: invalid property '{name}'")
            if kind not in native.types:
                raise _refused(argv, what, f"'{name}' does not apply to datasets of this type")
            if native.choices is not None and text not in native.choices:
                raise _refused(argv, what, f"'{name}' must be one of '{' | '.join(native.choices)}'")
            if native.size:
                match = _SIZE.fullmatch(text)
                if text == "none":
                    text = "0"
                elif match is None:
                    raise _refused(argv, what, f"bad numeric value '{text}'")
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
        def own(d: _Dataset) -> tuple[int, int]:  # usedds, usedrefreserv
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
            raise _refused(argv, what, "parent is not a filesystem")
        props = self._validate(argv, what, kind, properties)
        for a in missing:
            self.datasets[a] = _Dataset(FS)
        self.datasets[name.value] = _Dataset(kind, props, kind is FS, origin)

    async def create_volume(self, name: DatasetName, *, size_bytes: int, properties: Properties, sparse: bool) -> None:
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
                            properties: Sequence[PropertyName]) -> list[tuple[str, dict[str, str]]]:
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
        return out  # type: ignore[return-value]  # values are int | str, as from the real gateway

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

    def _filesystem(self, argv: list[str], name: DatasetName) -> _Dataset:
        ds = self._need(name.value)
        if ds.type is not FS:
            raise _refused(argv, f"cannot open '{name}'", "operation not applicable to datasets of this type")
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
            raise _refused(commands.rename(old, new), f"cannot rename to '{new}'",
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
        self._need(name.dataset.value)
        targets = [name.dataset.value, *(self._children(name.dataset.value) if recursive else [])]
        for t in targets:
            if f"{t}@{name.short}" in self.snapshots:
                raise AlreadyExists("snapshot", f"{t}@{name.short}")
        props = self._validate(commands.snapshot(name, recursive, properties), f"cannot create snapshot '{name}'",
                               DatasetType.SNAPSHOT, properties)
        txg = next(_TXG)
        for t in targets:
            self.snapshots[f"{t}@{name.short}"] = _Snap(_guid(), txg, props=dict(props),
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
            self.snapshots[t].holds[tag.value] = _now()

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
            raise _refused(commands.bookmark(source, bookmark), f"cannot create bookmark '{bookmark}'",
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
        return [Bookmark(b, self.bookmark_guids.get(b, 0), self.bookmarks[b]) for b in await self.list_bookmarks(dataset)]

    async def destroy_bookmark(self, bookmark: BookmarkName) -> None:
        if self.bookmarks.pop(bookmark.value, None) is None:
            raise NotFound("bookmark", bookmark.value)

    # ---- Pools ----
    def _pool(self, pool: PoolName | str) -> _Pool:
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


# ---- send/receive between datasets of a FakeZfs (replication) ----

CHUNK = 64 * 1024


class FakeStreams:
    """The Transfers and Pipelines ports over a FakeZfs: a send stream is a JSON header (the snapshots it carries:
    dataset, short, guid, creation; its base's guid) padded to `padding` bytes; a receive applies it as zfs does
    (full into a missing dataset, incremental onto its base, snapshots a dataset has skipped, the creation time
    kept), and a resumable receive cut off keeps the bytes it got and a token from which `zfs send -t` sends the
    rest."""

    def __init__(self, zfs: FakeZfs, padding: int = 3 * CHUNK) -> None:
        self.zfs, self.padding = zfs, padding
        self.streams: list[bytes] = []  # every stream sent, by id
        self.tokens: dict[str, tuple[str, bytes]] = {}  # target -> (token, the bytes it got)
        self.cut_after: int | None = None  # the next send fails after this many bytes
        self.gate: asyncio.Event | None = None  # sends wait here after their first chunk, while it is unset
        self.pipes: list[FakePipe] = []  # every pipe opened (to check that all were killed)

    # ---- Transfers ----
    def _stream(self, spec: SendSpec) -> bytes:
        src, z = spec.snapshot.dataset.value, self.zfs
        top = z._need_snapshot(spec.snapshot.value).txg
        base_guid, base_txg = None, -1
        if spec.from_ is not None:
            base = spec.from_.value
            base_guid = z.snapshots[base].guid if "@" in base else z.bookmark_guids[base]
            base_txg = z.snapshots[base].txg if "@" in base else z.bookmarks[base]
        snaps = []
        for ds in [src, *(z._children(src) if spec.recursive else [])]:
            for name in z._snaps_of(ds):
                snap, short = z.snapshots[name], name.split("@")[1]
                every = spec.intermediates or spec.recursive and spec.from_ is None  # -I, or a full -R
                if base_txg < snap.txg <= top if every else snap.txg == top:
                    snaps.append([ds[len(src):], short, snap.guid, snap.creation])
        header = {"id": len(self.streams), "to": spec.snapshot.value, "from": base_guid, "snaps": snaps}
        return json.dumps(header).encode() + b"\n" + b"\0" * self.padding

    async def estimate(self, spec: SendSpec) -> int:
        return len(self._stream(spec))

    async def is_encrypted(self, dataset: DatasetName) -> bool:
        return False

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents:
        got = next((g for t, g in self.tokens.values() if t == token.value), None)
        if got is None:
            raise StateConflict("the resume token is not valid here (forged, corrupt or foreign)")
        header = _header(got)
        return ResumeTokenContents(header["to"], self.zfs.snapshots[header["to"]].guid, header["from"], False, True,
                                   len(got), len(self.streams[header["id"]]))

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        found = self.tokens.get(dataset.value)
        return ResumeToken(found[0]) if found else None

    async def abort_receive(self, dataset: DatasetName) -> None:
        if self.tokens.pop(dataset.value, None) is None:
            raise StateConflict("no partial receive to abort", dataset=dataset.value)

    # ---- Pipelines ----
    async def open_send(self, source: SendSpec | ResumeSend) -> FakePipe:
        if isinstance(source, ResumeSend):
            got = next(g for t, g in self.tokens.values() if t == source.token.value)
            data = self.streams[_header(got)["id"]][len(got):]
        else:
            data = self._stream(source)
            self.streams.append(data)
        pipe = FakePipe(self, data, self.cut_after)
        self.cut_after = None
        self.pipes.append(pipe)
        return pipe

    async def relay(self, send: FakePipe, receive: FakePipe, moved: Callable[[int], float]) -> None:
        while chunk := await send.read():
            await receive.write(chunk)
            await asyncio.sleep(moved(len(chunk)))

    async def open_receive(self, spec: ReceiveSpec) -> FakePipe:
        pipe = FakePipe(self, b"", None, spec)
        if spec.resume_token is not None:
            pipe.got += self.tokens[spec.target.value][1]
        self.pipes.append(pipe)
        return pipe

    def receive(self, spec: ReceiveSpec, data: bytes) -> str:
        header, top, z = _header(data), spec.target.value, self.zfs
        argv = commands.receive(spec)
        have = z._snaps_of(top) if top in z.datasets else []
        if header["from"] is None and have:
            raise _refused(argv, "cannot receive new filesystem stream", f"destination has snapshots (eg. {have[0]})")
        if header["from"] is not None and (not have or z.snapshots[have[-1]].guid != header["from"]):
            raise _refused(argv, "cannot receive incremental stream",
                           f"most recent snapshot of {top} does not match incremental source")
        for rel, short, guid, creation in header["snaps"]:
            ds = top + rel
            z.datasets.setdefault(ds, _Dataset(FS))
            if not any(z.snapshots[s].guid == guid for s in z._snaps_of(ds)):  # else "already exists; ignoring"
                z.snapshots[f"{ds}@{short}"] = _Snap(guid, next(_TXG), creation=creation)  # as zfs keeps it
        self.tokens.pop(top, None)
        return f"{top}@{header['to'].split('@')[1]}"


def _header(stream: bytes) -> dict[str, Any]:
    return json.loads(stream.split(b"\n", 1)[0])  # type: ignore[no-any-return]


class FakePipe:
    """A send (reads `data` in chunks, failing after `cut` bytes) or a receive (collects; applies on finish)."""

    def __init__(self, streams: FakeStreams, data: bytes, cut: int | None, spec: ReceiveSpec | None = None) -> None:
        self.streams, self.data, self.cut, self.spec = streams, data, cut, spec
        self.sent = 0
        self.got = bytearray()
        self.killed = self.done = False

    async def read(self) -> bytes:
        await asyncio.sleep(0)
        if self.cut is not None and self.sent >= self.cut:
            raise ZfsCommandFailed(["zfs", "send"], 1, "warning: cannot send: Broken pipe")
        if self.sent and self.streams.gate is not None:
            await self.streams.gate.wait()
        chunk = self.data[self.sent:self.sent + CHUNK]
        self.sent += len(chunk)
        return chunk

    async def write(self, data: bytes) -> None:
        self.got += data

    async def finish(self) -> str | None:
        if self.spec is None:  # a send, read to its end
            self.done = True
            return None
        self.done = True
        return self.streams.receive(self.spec, bytes(self.got))

    async def kill(self) -> None:
        if self.spec is not None and not self.done and not self.killed and self.spec.resumable and self.got:
            # cut off, a resumable receive keeps what it got, and a token to continue from (zfs receive -s)
            self.streams.tokens[self.spec.target.value] = (f"1-{random.getrandbits(32):x}-10-789c", bytes(self.got))
        self.killed = True


# ---- the PolicyZfs port over a FakeZfs ----

class FakePolicyOps:
    """The PolicyZfs port (application/policy_ports.py) over a FakeZfs, held to ZfsPolicyOps on real ZFS by
    tests/policy_zfs_contract.py. `children` counts, by verb, the zfs commands ZfsPolicyOps runs for the same
    calls (one per batch of names, and a destroy's retries); `before_destroy(dataset, shorts)`, when set, runs
    before each destroy command (a hold or a clone made since the listing); `now()` is the creation time (epoch
    seconds) of the snapshots `take` makes."""

    def __init__(self, zfs: FakeZfs, *, now: Callable[[], int] = _now, max_argv_bytes: int = MAX_ARGV_BYTES) -> None:
        self.zfs, self.now, self.limit = zfs, now, max_argv_bytes
        self.children: Counter[str] = Counter()
        self.before_destroy: Callable[[DatasetName, list[str]], None] | None = None

    def _count(self, verb: str, names: Sequence[DatasetName | SnapshotName]) -> None:
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
        txg, creation = next(_TXG), self.now()
        for name in family:
            ds = name.split("@")[0]
            z.snapshots[name] = _Snap(_guid(), txg, props={OWNER_PROPERTY: policy}, creation=creation,
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
                named = self._refused(dataset, names)
                if not named:
                    for n in names:
                        self.zfs.snapshots.pop(f"{dataset}@{n}", None)
                    break
                refused.update(named)
                names = [n for n in names if n not in named]
        return refused

    def _refused(self, dataset: DatasetName, names: list[str]) -> dict[str, str]:
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
                self.zfs.snapshots[s.value].holds.setdefault(tag.value, _now())
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
