"""The core's JSON-RPC methods, one row each: param Structs (syntax), value objects (semantics), use cases
(work), and result Structs holding exactly the keys of the wire contract in README.md."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Callable, Literal, TypeVar

from msgspec import UNSET, Meta, UnsetType

from zfsapi.application.catalog import UseCases
from zfsapi.application.datasets import (
    CreateClone,
    CreateDataset,
    CreateVolume,
    DestroyDataset,
    GetDatasetProperties,
    GetDatasetSpace,
    ListDatasets,
    MountDataset,
    RenameDataset,
    SetDatasetProperty,
    UnmountDataset,
)
from zfsapi.application.pools import GetPoolProperties, GetPoolStatus, ListPools, StartScrub, StopScrub
from zfsapi.application.snapshots import (
    CreateAutoSnapshot,
    CreateBookmark,
    CreateSnapshot,
    DestroyBookmark,
    DestroySnapshot,
    DiffSnapshots,
    HoldSnapshot,
    ListBookmarks,
    ListHolds,
    ListSnapshots,
    ReleaseSnapshot,
    RollbackSnapshot,
)
from zfsapi.domain.authz import Action, Carries
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StateConflict,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.models import ChangeKind, PropertyEntry, Snapshot, Vdev
from zfsapi.domain.names import (
    BookmarkName,
    DatasetName,
    HoldTag,
    PoolName,
    PropertyName,
    PropertyValue,
    SnapshotName,
    parse_properties,
    parse_snapshot_or_bookmark,
)

from .registry import Background, CallContext, NoParams, Params, Registry, Result, Table

T = TypeVar("T")
Name = Annotated[str, Meta(min_length=1, max_length=1024)]
Text = Annotated[str, Meta(max_length=8192)]
PropMap = Annotated[dict[Name, Text], Meta(max_length=256)]

DATASET, SNAPSHOT, POOL = Carries.DATASET, Carries.SNAPSHOT, Carries.POOL

# Every method runs zfs or zpool, which may refuse in ways no other error names, or be missing.
CORE = Table(errors=(ZfsCommandFailed, ZfsUnavailable))


def iso(ts: float) -> str:
    """A POSIX timestamp as ISO 8601 UTC with a Z, as every time on the wire is written."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def parse(param: str, factory: Callable[[str], T], value: str) -> T:
    """Run a value-object parser, attributing its error to the request parameter `param`."""
    try:
        return factory(value)
    except InvalidArgument as exc:
        raise exc.for_param(param) from None


# ---- params ------------------------------------------------------------------------------------------------

Dataset = Annotated[Name, Meta(description="A dataset's full name: pool/path.")]
Snap = Annotated[Name, Meta(description="A snapshot of `dataset`: its short name, or its full name dataset@name.")]
Pool = Annotated[Name, Meta(description="A pool's name.")]
SetProps = Annotated[PropMap, Meta(description="Properties to set, {name: value}.")]
Recursive = Annotated[bool, Meta(description="Also the same-named snapshots of every descendant (-r).")]
GetProp = Annotated[Name, Meta(description='A property name, or "all".')]


class DatasetCreate(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    properties: SetProps = {}
    parents: Annotated[bool, Meta(description="Create missing parent datasets too (-p).")] = False


class DatasetDestroy(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    recursive: Annotated[bool, Meta(description="Also its children and snapshots (-r).")] = False
    recursive_dependents: Annotated[bool, Meta(
        description="Also every dependent, clones elsewhere included (-R).")] = False


class DatasetList(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Annotated[Name | None, Meta(description="Where to start; null: every pool.")] = None
    recursive: Annotated[bool, Meta(description="Descendants too, not only the children.")] = True
    type: Annotated[Literal["filesystem", "volume", "all"], Meta(description="Which kinds to list.")] = "all"
    properties: Annotated[list[Name], Meta(max_length=128,
                                           description="Properties to read of each dataset.")] = []


class DatasetGetProperties(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Annotated[Name, Meta(description="A dataset's or a snapshot's full name.")]
    property: GetProp = "all"
    detailed: Annotated[bool, Meta(description="Each value as {value, source}.")] = False


class DatasetSetProperty(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    property: Annotated[Name, Meta(description="The property to set.")]
    value: Annotated[Text, Meta(description="Its new value.")]


class DatasetOnly(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset


class DatasetRename(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    new_name: Annotated[Name, Meta(description="The new full name, in the same pool.")]


class SnapshotCreate(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    name: Annotated[Name, Meta(description="The snapshot's short name.")]
    recursive: Annotated[bool, Meta(description="Also snapshot every descendant, atomically (-r).")] = False
    properties: SetProps = {}


class SnapshotCreateAuto(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    tag: Annotated[Name, Meta(description="The name's first part.")]
    tag1: Annotated[Name | None, Meta(description="An optional second part.")] = None
    recursive: Annotated[bool, Meta(description="Also snapshot every descendant, atomically (-r).")] = False


class SnapshotList(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    recursive: Annotated[bool, Meta(description="Also the snapshots of every descendant.")] = False
    details: Annotated[bool, Meta(description="Space and creation time too (false reads only the ids).")] = True


class SnapshotDestroy(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    recursive: Recursive = False


class SnapshotRollback(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    destroy_newer: Annotated[bool, Meta(description="Destroy the newer snapshots (-r); else refuse.")] = False


class SnapshotHold(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    tag: Annotated[Name, Meta(description="The hold's tag.")]
    recursive: Recursive = False


class SnapshotHolds(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    recursive: Recursive = False


class SnapshotDiff(Params, frozen=True, forbid_unknown_fields=True):
    snapshot1: Annotated[Name, Meta(description="The older snapshot's full name.")]
    snapshot2: Annotated[Name | None, Meta(
        description="A newer snapshot of the same dataset (short or full name); null: the live filesystem.")] = None


class PoolOnly(Params, frozen=True, forbid_unknown_fields=True):
    pool: Pool


class PoolGetProperties(Params, frozen=True, forbid_unknown_fields=True):
    pool: Pool
    property: GetProp = "all"


class CloneCreate(Params, frozen=True, forbid_unknown_fields=True):
    source: Annotated[Name, Meta(description="The snapshot to clone, in full: dataset@name.")]
    target: Annotated[Name, Meta(description="The new dataset's full name, in the snapshot's pool.")]
    properties: SetProps = {}


class VolumeCreate(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    size_gb: Annotated[Annotated[float, Meta(gt=0, le=(2**63 - 1) / 2**30)] | None, Meta(
        description="The size in GiB (or size_bytes).")] = None
    size_bytes: Annotated[Annotated[int, Meta(gt=0, le=2**63 - 1)] | None, Meta(
        description="The size in bytes (or size_gb).")] = None
    compression: Annotated[Name, Meta(description="The compression property.")] = "lz4"
    volblocksize: Annotated[str, Meta(max_length=16, description="A power of two from 512 to 16M, e.g. 16K.")] \
        = "16K"
    sparse: Annotated[bool, Meta(description="Reserve no space up front (-s).")] = True


class VolumeList(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Annotated[Name | None, Meta(description="Where to look; null: every pool.")] = None


class BookmarkCreate(Params, frozen=True, forbid_unknown_fields=True):
    snapshot: Annotated[Name, Meta(description="The source in full: a snapshot (ds@snap) or a bookmark (ds#b).")]
    bookmark: Annotated[Name, Meta(description="The new bookmark: its short name, or its full name ds#name.")]


class BookmarkOnly(Params, frozen=True, forbid_unknown_fields=True):
    bookmark: Annotated[Name, Meta(description="A bookmark's full name: dataset#name.")]


# ---- results -----------------------------------------------------------------------------------------------

PropertyValueOut = int | str  # exact integers for numeric native properties, verbatim text otherwise


class PropertyDetail(Result, frozen=True, kw_only=True):
    value: PropertyValueOut
    source: str


class Space(Result, frozen=True, kw_only=True):
    name: str
    avail: int
    used: int
    usedsnap: int
    useddss: int
    usedrefreserv: int
    usedchild: int


class SnapshotDetail(Result, frozen=True, kw_only=True):
    name: str
    guid: int
    createtxg: int
    # only with details=true
    creation: int | None | UnsetType = UNSET
    used: int | None | UnsetType = UNSET
    referenced: int | None | UnsetType = UNSET
    userrefs: int | None | UnsetType = UNSET


class HoldDetail(Result, frozen=True, kw_only=True):
    tag: str
    timestamp: int
    snapshot: str


class PathChange(Result, frozen=True, kw_only=True):
    path: str
    type: str


class RenameChange(Result, frozen=True, kw_only=True):
    old_path: str
    new_path: str | None
    type: str


class DiffChanges(Result, frozen=True, kw_only=True):
    new: list[PathChange]
    modified: list[PathChange]
    deleted: list[PathChange]
    renamed: list[RenameChange]


class DiffSummary(Result, frozen=True, kw_only=True):
    new_count: int
    modified_count: int
    deleted_count: int
    renamed_count: int
    total_changes: int


class PoolDetail(Result, frozen=True, kw_only=True):
    name: str
    size: int
    allocated: int
    free: int
    capacity: int
    health: str
    fragmentation: int | None


class ScanState(Result, frozen=True, kw_only=True):
    function: str | None
    state: str | None
    percent: float | None
    examined: int | None
    total: int | None
    errors: int | None


class VdevNode(Result, frozen=True, kw_only=True):
    name: str
    state: str
    read: int
    write: int
    checksum: int
    children: list[VdevNode]


class DatasetCreateResult(Result, frozen=True, kw_only=True):
    dataset: str
    created: Literal[True] = True


class DatasetDestroyResult(Result, frozen=True, kw_only=True):
    dataset: str
    destroyed: Literal[True] = True


class DatasetListResult(Result, frozen=True, kw_only=True):
    datasets: list[str]
    properties: dict[str, dict[str, int | str]] | UnsetType = UNSET  # only when properties were asked for


class DatasetPropertiesResult(Result, frozen=True, kw_only=True):
    dataset: str
    properties: dict[str, PropertyValueOut | PropertyDetail]


class SetPropertyResult(Result, frozen=True, kw_only=True):
    dataset: str
    property: str
    value: str


class SpaceResult(Result, frozen=True, kw_only=True):
    dataset: str
    space: Space


class MountResult(Result, frozen=True, kw_only=True):
    dataset: str
    mounted: Literal[True] = True
    already_mounted: Literal[True] | UnsetType = UNSET


class UnmountResult(Result, frozen=True, kw_only=True):
    dataset: str
    unmounted: Literal[True] = True
    already_unmounted: Literal[True] | UnsetType = UNSET


class RenameResult(Result, frozen=True, kw_only=True):
    old_name: str
    new_name: str
    renamed: Literal[True] = True


class SnapshotCreateResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    created: Literal[True] = True


class SnapshotListResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshots: list[str]
    details: list[SnapshotDetail]


class SnapshotDestroyResult(Result, frozen=True, kw_only=True):
    snapshot: str
    destroyed: Literal[True] = True


class RollbackResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    rolled_back: Literal[True] = True
    destroyed: list[str]


class HoldResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    hold: str


class ReleaseResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    released: str


class HoldsResult(Result, frozen=True, kw_only=True):
    dataset: str
    snapshot: str
    holds: list[str]
    details: list[HoldDetail]


class DiffResult(Result, frozen=True, kw_only=True):
    snapshot1: str
    snapshot2: str
    changes: DiffChanges
    summary: DiffSummary


class PoolListResult(Result, frozen=True, kw_only=True):
    pools: list[str]
    details: list[PoolDetail]


class PoolPropertiesResult(Result, frozen=True, kw_only=True):
    pool: str
    properties: dict[str, PropertyValueOut]


class ScrubStart(Params, frozen=True, forbid_unknown_fields=True):
    pool: Pool
    background: Background = False


class ScrubResult(Result, frozen=True, kw_only=True):
    pool: str
    scrub: Literal["started", "stopped", "finished", "canceled"]  # as a job: how the scrub ended
    errors: int | UnsetType = UNSET  # as a job: the errors the scrub found


class PoolStatusResult(Result, frozen=True, kw_only=True):
    pool: str
    status: str
    state: str
    scan: ScanState
    vdevs: list[VdevNode]
    errors: str


class CloneResult(Result, frozen=True, kw_only=True):
    source: str
    clone: str
    created: Literal[True] = True


class VolumeCreateResult(Result, frozen=True, kw_only=True):
    volume: str
    created: Literal[True] = True
    size_bytes: int


class VolumeListResult(Result, frozen=True, kw_only=True):
    volumes: list[str]


class BookmarkCreateResult(Result, frozen=True, kw_only=True):
    snapshot: str
    bookmark: str
    created: Literal[True] = True


class BookmarkListResult(Result, frozen=True, kw_only=True):
    dataset: str
    bookmarks: list[str]


class BookmarkDestroyResult(Result, frozen=True, kw_only=True):
    bookmark: str
    destroyed: Literal[True] = True


# ---- helpers -----------------------------------------------------------------------------------------------

def dataset_name(value: str, param: str = "dataset") -> DatasetName:
    """A dataset name parameter as its value object (errors name `param`)."""
    return parse(param, DatasetName.parse, value)


def _snap(dataset: DatasetName, snapshot: str, param: str = "snapshot") -> SnapshotName:
    return parse(param, lambda s: SnapshotName.of(dataset, s), snapshot)


def _prop_or_all(param: str, value: str) -> PropertyName | None:
    return None if value == "all" else parse(param, PropertyName.parse, value)


def _props_out(props: dict[str, PropertyEntry], detailed: bool) -> dict[str, PropertyValueOut | PropertyDetail]:
    if detailed:
        return {k: PropertyDetail(value=v.value, source=v.source) for k, v in props.items()}
    return {k: v.value for k, v in props.items()}


def _snapshot_detail(s: Snapshot, details: bool) -> SnapshotDetail:
    if not details:
        return SnapshotDetail(name=s.name, guid=s.guid, createtxg=s.createtxg)
    return SnapshotDetail(name=s.name, guid=s.guid, createtxg=s.createtxg, creation=s.creation, used=s.used,
                          referenced=s.referenced, userrefs=s.userrefs)


def _vdev(v: Vdev) -> VdevNode:
    return VdevNode(name=v.name, state=v.state, read=v.read, write=v.write, checksum=v.checksum,
                    children=[_vdev(c) for c in v.children])


# ---- rows: datasets ----------------------------------------------------------------------------------------

@CORE.method(Action.CHANGE, carries={"dataset": DATASET, "properties": Carries.PROPERTIES},
             errors=(AlreadyExists, NotFound))
async def dataset_create(uc: CreateDataset, p: DatasetCreate, ctx: CallContext) -> DatasetCreateResult:
    name = dataset_name(p.dataset)
    await uc.execute(dataset=name, properties=parse_properties(p.properties, "properties"), parents=p.parents)
    return DatasetCreateResult(dataset=name.value)


@CORE.method(Action.DESTROY, carries={"dataset": DATASET},
             errors=(NotFound, HasDependents, Busy, InvalidArgument, PermissionDenied))
async def dataset_destroy(uc: DestroyDataset, p: DatasetDestroy, ctx: CallContext) -> DatasetDestroyResult:
    name = dataset_name(p.dataset)
    await uc.execute(dataset=name, recursive=p.recursive, recursive_dependents=p.recursive_dependents,
                     caller=ctx.principal)
    return DatasetDestroyResult(dataset=name.value)


@CORE.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def dataset_list(uc: ListDatasets, p: DatasetList, ctx: CallContext) -> DatasetListResult:
    root = dataset_name(p.dataset) if p.dataset is not None else None
    props = [parse("properties", PropertyName.parse, x) for x in p.properties]
    listing = await uc.execute(dataset=root, recursive=p.recursive, type=p.type, properties=props)
    names = ctx.visible(listing.names)
    if listing.properties is None:
        return DatasetListResult(datasets=names)
    return DatasetListResult(datasets=names,
                             properties={n: listing.properties[n] for n in names if n in listing.properties})


@CORE.method(Action.READ, carries={"dataset": DATASET}, errors=(NotFound, InvalidArgument))
async def dataset_get_properties(uc: GetDatasetProperties, p: DatasetGetProperties,
                                 ctx: CallContext) -> DatasetPropertiesResult:
    target: DatasetName | SnapshotName = (parse("dataset", SnapshotName.parse, p.dataset) if "@" in p.dataset
                                          else dataset_name(p.dataset))
    props = await uc.execute(dataset=target, property=_prop_or_all("property", p.property))
    return DatasetPropertiesResult(dataset=target.value, properties=_props_out(props, p.detailed))


@CORE.method(Action.CHANGE, carries={"dataset": DATASET, "property": Carries.PROPERTY},
             errors=(NotFound, ZfsCommandFailed))
async def dataset_set_property(uc: SetDatasetProperty, p: DatasetSetProperty, ctx: CallContext) -> SetPropertyResult:
    name = dataset_name(p.dataset)
    prop = parse("property", PropertyName.parse, p.property)
    value = parse("value", PropertyValue.parse, p.value)
    await uc.execute(dataset=name, property=prop, value=value)
    return SetPropertyResult(dataset=name.value, property=prop.value, value=value.value)


@CORE.method(Action.READ, carries={"dataset": DATASET}, errors=(NotFound,))
async def dataset_get_space(uc: GetDatasetSpace, p: DatasetOnly, ctx: CallContext) -> SpaceResult:
    s = await uc.execute(dataset=dataset_name(p.dataset))
    return SpaceResult(dataset=s.name, space=Space(name=s.name, avail=s.avail, used=s.used, usedsnap=s.usedsnap,
                                                   useddss=s.useddss, usedrefreserv=s.usedrefreserv,
                                                   usedchild=s.usedchild))


@CORE.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, Busy))
async def dataset_mount(uc: MountDataset, p: DatasetOnly, ctx: CallContext) -> MountResult:
    name = dataset_name(p.dataset)
    changed = await uc.execute(dataset=name)
    return MountResult(dataset=name.value, already_mounted=UNSET if changed else True)


@CORE.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, Busy))
async def dataset_unmount(uc: UnmountDataset, p: DatasetOnly, ctx: CallContext) -> UnmountResult:
    name = dataset_name(p.dataset)
    changed = await uc.execute(dataset=name)
    return UnmountResult(dataset=name.value, already_unmounted=UNSET if changed else True)


@CORE.method(Action.CHANGE, carries={"dataset": DATASET, "new_name": DATASET},
             errors=(NotFound, AlreadyExists, InvalidArgument))
async def dataset_rename(uc: RenameDataset, p: DatasetRename, ctx: CallContext) -> RenameResult:
    old, new = dataset_name(p.dataset), dataset_name(p.new_name, "new_name")
    await uc.execute(dataset=old, new_name=new)
    return RenameResult(old_name=old.value, new_name=new.value)


@CORE.method(Action.CHANGE, carries={"target": DATASET, "source": DATASET, "properties": Carries.PROPERTIES},
             errors=(NotFound, AlreadyExists, InvalidArgument))
async def clone_create(uc: CreateClone, p: CloneCreate, ctx: CallContext) -> CloneResult:
    source = parse("source", SnapshotName.parse, p.source)
    target = dataset_name(p.target, "target")
    await uc.execute(source=source, target=target, properties=parse_properties(p.properties, "properties"))
    return CloneResult(source=source.value, clone=target.value)


@CORE.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(AlreadyExists, NotFound, InvalidArgument))
async def volume_create(uc: CreateVolume, p: VolumeCreate, ctx: CallContext) -> VolumeCreateResult:
    name = dataset_name(p.dataset)
    if (p.size_gb is None) == (p.size_bytes is None):
        raise InvalidArgument("size_bytes", "give exactly one of size_gb and size_bytes")
    size = p.size_bytes if p.size_bytes is not None else int((p.size_gb or 0) * (1 << 30))
    size = await uc.execute(dataset=name, size_bytes=size, volblocksize=p.volblocksize, sparse=p.sparse,
                            compression=parse("compression", PropertyValue.parse, p.compression))
    return VolumeCreateResult(volume=name.value, size_bytes=size)


@CORE.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def volume_list(uc: ListDatasets, p: VolumeList, ctx: CallContext) -> VolumeListResult:
    """Volumes (zvols) under a dataset, or in every pool."""
    root = dataset_name(p.dataset) if p.dataset is not None else None
    listing = await uc.execute(dataset=root, recursive=True, type="volume")
    return VolumeListResult(volumes=ctx.visible(listing.names))


# ---- rows: snapshots ---------------------------------------------------------------------------------------

@CORE.method(Action.CHANGE, carries={"dataset": DATASET, "properties": Carries.PROPERTIES},
             errors=(NotFound, AlreadyExists))
async def snapshot_create(uc: CreateSnapshot, p: SnapshotCreate, ctx: CallContext) -> SnapshotCreateResult:
    name = dataset_name(p.dataset)
    snap = _snap(name, p.name, "name")
    await uc.execute(snapshot=snap, recursive=p.recursive, properties=parse_properties(p.properties, "properties"))
    return SnapshotCreateResult(dataset=name.value, snapshot=snap.short)


@CORE.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, AlreadyExists))
async def snapshot_create_auto(uc: CreateAutoSnapshot, p: SnapshotCreateAuto,
                               ctx: CallContext) -> SnapshotCreateResult:
    name = dataset_name(p.dataset)
    # the tags become part of a snapshot name: check them as name components
    parse("tag", lambda t: SnapshotName.of(name, t), p.tag)
    if p.tag1 is not None:
        parse("tag1", lambda t: SnapshotName.of(name, t), p.tag1)
    snap = await uc.execute(dataset=name, tag=p.tag, tag1=p.tag1, recursive=p.recursive)
    return SnapshotCreateResult(dataset=name.value, snapshot=snap.short)


@CORE.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def snapshot_list(uc: ListSnapshots, p: SnapshotList, ctx: CallContext) -> SnapshotListResult:
    name = dataset_name(p.dataset)
    snaps = await uc.execute(dataset=name, recursive=p.recursive, details=p.details)
    if ctx.principal is not None and not ctx.principal.unrestricted:
        snaps = [s for s in snaps if ctx.principal.covers(s.name)]
    own = name.value + "@"
    return SnapshotListResult(
        dataset=name.value,
        # own snapshots by short name; with recursive, descendants' snapshots need their full name
        snapshots=[s.name[len(own):] if s.name.startswith(own) else s.name for s in snaps],
        details=[_snapshot_detail(s, p.details) for s in snaps],
    )


@CORE.method(Action.DESTROY, carries={"dataset": DATASET, "snapshot": SNAPSHOT},
             errors=(NotFound, HasDependents, Busy))
async def snapshot_destroy(uc: DestroySnapshot, p: SnapshotDestroy, ctx: CallContext) -> SnapshotDestroyResult:
    snap = _snap(dataset_name(p.dataset), p.snapshot)
    await uc.execute(snapshot=snap, recursive=p.recursive)
    return SnapshotDestroyResult(snapshot=snap.value)


@CORE.method(Action.DESTROY, carries={"dataset": DATASET, "snapshot": SNAPSHOT},
             errors=(NotFound, StateConflict, HasDependents, Busy))
async def snapshot_rollback(uc: RollbackSnapshot, p: SnapshotRollback, ctx: CallContext) -> RollbackResult:
    name = dataset_name(p.dataset)
    snap = _snap(name, p.snapshot)
    destroyed = await uc.execute(snapshot=snap, destroy_newer=p.destroy_newer)
    return RollbackResult(dataset=name.value, snapshot=snap.short, destroyed=destroyed)


@CORE.method(Action.CHANGE, carries={"dataset": DATASET, "snapshot": SNAPSHOT}, errors=(NotFound, AlreadyExists))
async def snapshot_hold(uc: HoldSnapshot, p: SnapshotHold, ctx: CallContext) -> HoldResult:
    name = dataset_name(p.dataset)
    snap, tag = _snap(name, p.snapshot), parse("tag", HoldTag.parse, p.tag)
    await uc.execute(snapshot=snap, tag=tag, recursive=p.recursive)
    return HoldResult(dataset=name.value, snapshot=snap.short, hold=tag.value)


@CORE.method(Action.CHANGE, carries={"dataset": DATASET, "snapshot": SNAPSHOT}, errors=(NotFound,))
async def snapshot_release(uc: ReleaseSnapshot, p: SnapshotHold, ctx: CallContext) -> ReleaseResult:
    name = dataset_name(p.dataset)
    snap, tag = _snap(name, p.snapshot), parse("tag", HoldTag.parse, p.tag)
    await uc.execute(snapshot=snap, tag=tag, recursive=p.recursive)
    return ReleaseResult(dataset=name.value, snapshot=snap.short, released=tag.value)


@CORE.method(Action.READ, carries={"dataset": DATASET, "snapshot": SNAPSHOT}, errors=(NotFound,))
async def snapshot_holds_list(uc: ListHolds, p: SnapshotHolds, ctx: CallContext) -> HoldsResult:
    name = dataset_name(p.dataset)
    snap = _snap(name, p.snapshot)
    holds = await uc.execute(snapshot=snap, recursive=p.recursive)
    return HoldsResult(dataset=name.value, snapshot=snap.short, holds=sorted({h.tag for _, h in holds}),
                       details=[HoldDetail(tag=h.tag, timestamp=h.timestamp, snapshot=s) for s, h in holds])


@CORE.method(Action.READ, carries={"snapshot1": DATASET, "snapshot2": SNAPSHOT}, errors=(NotFound, InvalidArgument))
async def snapshot_diff(uc: DiffSnapshots, p: SnapshotDiff, ctx: CallContext) -> DiffResult:
    older = parse("snapshot1", SnapshotName.parse, p.snapshot1)
    newer = None
    if p.snapshot2 is not None:
        newer = parse("snapshot2", lambda s: SnapshotName.of(older.dataset, s), p.snapshot2)
    entries = await uc.execute(older=older, newer=newer)
    paths: dict[ChangeKind, list[PathChange]] = {ChangeKind.NEW: [], ChangeKind.MODIFIED: [], ChangeKind.DELETED: []}
    renamed: list[RenameChange] = []
    for e in entries:
        if e.kind is ChangeKind.RENAMED:
            renamed.append(RenameChange(old_path=e.path, new_path=e.new_path, type=e.file_type))
        else:
            paths[e.kind].append(PathChange(path=e.path, type=e.file_type))
    new, modified, deleted = paths[ChangeKind.NEW], paths[ChangeKind.MODIFIED], paths[ChangeKind.DELETED]
    return DiffResult(
        snapshot1=older.value, snapshot2=newer.value if newer else "current",
        changes=DiffChanges(new=new, modified=modified, deleted=deleted, renamed=renamed),
        summary=DiffSummary(new_count=len(new), modified_count=len(modified), deleted_count=len(deleted),
                            renamed_count=len(renamed), total_changes=len(entries)),
    )


@CORE.method(Action.CHANGE, carries={"snapshot": DATASET, "bookmark": SNAPSHOT},
             errors=(NotFound, AlreadyExists, InvalidArgument))
async def bookmark_create(uc: CreateBookmark, p: BookmarkCreate, ctx: CallContext) -> BookmarkCreateResult:
    source = parse("snapshot", parse_snapshot_or_bookmark, p.snapshot)
    text = p.bookmark if "#" in p.bookmark else f"{source.dataset}#{p.bookmark}"
    bookmark = parse("bookmark", BookmarkName.parse, text)
    await uc.execute(source=source, bookmark=bookmark)
    return BookmarkCreateResult(snapshot=source.value, bookmark=bookmark.value)


@CORE.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def bookmark_list(uc: ListBookmarks, p: DatasetOnly, ctx: CallContext) -> BookmarkListResult:
    name = dataset_name(p.dataset)
    return BookmarkListResult(dataset=name.value, bookmarks=ctx.visible(await uc.execute(dataset=name)))


@CORE.method(Action.DESTROY, carries={"bookmark": DATASET}, errors=(NotFound,))
async def bookmark_destroy(uc: DestroyBookmark, p: BookmarkOnly, ctx: CallContext) -> BookmarkDestroyResult:
    bookmark = parse("bookmark", BookmarkName.parse, p.bookmark)
    await uc.execute(bookmark=bookmark)
    return BookmarkDestroyResult(bookmark=bookmark.value)


# ---- rows: pools -------------------------------------------------------------------------------------------

@CORE.method(Action.LIST)
async def pool_list(uc: ListPools, p: NoParams, ctx: CallContext) -> PoolListResult:
    pools = await uc.execute()
    if ctx.principal is not None:
        pools = [x for x in pools if ctx.principal.sees_pool(x.name)]
    return PoolListResult(pools=[x.name for x in pools],
                          details=[PoolDetail(name=x.name, size=x.size, allocated=x.allocated, free=x.free,
                                              capacity=x.capacity, health=x.health, fragmentation=x.fragmentation)
                                   for x in pools])


@CORE.method(Action.READ, carries={"pool": POOL}, errors=(NotFound, InvalidArgument))
async def pool_get_properties(uc: GetPoolProperties, p: PoolGetProperties, ctx: CallContext) -> PoolPropertiesResult:
    pool = parse("pool", PoolName.parse, p.pool)
    props = await uc.execute(pool=pool, property=_prop_or_all("property", p.property))
    return PoolPropertiesResult(pool=pool.value, properties={k: v.value for k, v in props.items()})


@CORE.method(Action.CHANGE, carries={"pool": POOL}, errors=(NotFound, Busy), background=True)
async def pool_scrub_start(uc: StartScrub, p: ScrubStart, ctx: CallContext) -> ScrubResult:
    pool = parse("pool", PoolName.parse, p.pool)
    scan = await uc.execute(pool=pool, progress=ctx.progress)
    if scan is None:
        return ScrubResult(pool=pool.value, scrub="started")
    return ScrubResult(pool=pool.value, scrub="canceled" if scan.state == "canceled" else "finished",
                       errors=UNSET if scan.errors is None else scan.errors)


@CORE.method(Action.CHANGE, carries={"pool": POOL}, errors=(NotFound, StateConflict))
async def pool_scrub_stop(uc: StopScrub, p: PoolOnly, ctx: CallContext) -> ScrubResult:
    pool = parse("pool", PoolName.parse, p.pool)
    await uc.execute(pool=pool)
    return ScrubResult(pool=pool.value, scrub="stopped")


@CORE.method(Action.READ, carries={"pool": POOL}, errors=(NotFound,))
async def pool_status(uc: GetPoolStatus, p: PoolOnly, ctx: CallContext) -> PoolStatusResult:
    st = await uc.execute(pool=parse("pool", PoolName.parse, p.pool))
    s = st.scan
    return PoolStatusResult(
        pool=st.pool, status=st.raw, state=st.state,
        scan=ScanState(function=s.function, state=s.state, percent=s.percent, examined=s.examined, total=s.total,
                       errors=s.errors),
        vdevs=[_vdev(v) for v in st.vdevs], errors=st.errors,
    )


def register_core(registry: Registry, uc: UseCases) -> None:
    """Register every row of CORE, each bound to its use case in `uc`."""
    registry.include(CORE, uc.__getitem__)
