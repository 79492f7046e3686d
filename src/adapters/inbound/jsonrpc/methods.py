"""The core's JSON-RPC methods: param Structs (syntax), value objects (semantics), use cases (work), and
the result keys of the wire contract (shared/api-contract.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Literal, TypeVar

from msgspec import Meta

from zfsapi.application.catalog import UseCases
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.models import ChangeKind, PropertyEntry, Vdev
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

from .registry import CallContext, NoParams, Params, Registry

T = TypeVar("T")
Name = Annotated[str, Meta(min_length=1, max_length=1024)]
Text = Annotated[str, Meta(max_length=8192)]
PropMap = Annotated[dict[Name, Text], Meta(max_length=256)]


def iso(ts: float) -> str:
    """A POSIX timestamp as ISO 8601 UTC with a Z, as every time on the wire is written."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def parse(param: str, factory: Callable[[str], T], value: str) -> T:
    """Run a value-object parser, attributing its error to the request parameter `param`."""
    try:
        return factory(value)
    except InvalidArgument as exc:
        raise exc.for_param(param) from None


def _props(param: str, raw: dict[str, str]) -> dict[PropertyName, PropertyValue]:
    return parse_properties(raw, param)


def _snap(dataset: DatasetName, snapshot: str, param: str = "snapshot") -> SnapshotName:
    return parse(param, lambda s: SnapshotName.of(dataset, s), snapshot)


def _prop_or_all(param: str, value: str) -> PropertyName | None:
    return None if value == "all" else parse(param, PropertyName.parse, value)


def _props_out(props: dict[str, PropertyEntry], detailed: bool) -> dict[str, Any]:
    if detailed:
        return {k: {"value": v.value, "source": v.source} for k, v in props.items()}
    return {k: v.value for k, v in props.items()}


# ---- params ------------------------------------------------------------------------------------------------

class DatasetCreate(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    properties: PropMap = {}
    parents: bool = False


class DatasetDestroy(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    recursive: bool = False
    recursive_dependents: bool = False


class DatasetList(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name | None = None
    recursive: bool = True
    type: Literal["filesystem", "volume", "all"] = "all"
    properties: Annotated[list[Name], Meta(max_length=128)] = []


class DatasetGetProperties(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    property: Name = "all"
    detailed: bool = False


class DatasetSetProperty(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    property: Name
    value: Text


class DatasetOnly(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name


class DatasetRename(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    new_name: Name


class SnapshotCreate(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    name: Name
    recursive: bool = False
    properties: PropMap = {}


class SnapshotCreateAuto(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    tag: Name
    tag1: Name | None = None
    recursive: bool = False


class SnapshotList(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    recursive: bool = False
    details: bool = True


class SnapshotDestroy(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    snapshot: Name
    recursive: bool = False


class SnapshotRollback(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    snapshot: Name
    destroy_newer: bool = False


class SnapshotHold(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    snapshot: Name
    tag: Name
    recursive: bool = False


class SnapshotHolds(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    snapshot: Name
    recursive: bool = False


class SnapshotDiff(Params, frozen=True, forbid_unknown_fields=True):
    snapshot1: Name
    snapshot2: Name | None = None


class PoolOnly(Params, frozen=True, forbid_unknown_fields=True):
    pool: Name


class PoolGetProperties(Params, frozen=True, forbid_unknown_fields=True):
    pool: Name
    property: Name = "all"


class CloneCreate(Params, frozen=True, forbid_unknown_fields=True):
    source: Name
    target: Name
    properties: PropMap = {}


class VolumeCreate(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name
    size_gb: Annotated[float, Meta(gt=0, le=(2**63 - 1) / 2**30)] | None = None  # within what size_bytes takes
    size_bytes: Annotated[int, Meta(gt=0, le=2**63 - 1)] | None = None
    compression: Name = "lz4"
    volblocksize: Annotated[str, Meta(max_length=16)] = "16K"
    sparse: bool = True


class VolumeList(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Name | None = None


class BookmarkCreate(Params, frozen=True, forbid_unknown_fields=True):
    snapshot: Name
    bookmark: Name


class BookmarkOnly(Params, frozen=True, forbid_unknown_fields=True):
    bookmark: Name


# ---- registration ------------------------------------------------------------------------------------------

_SNAPSHOT_ID_FIELDS = ("name", "guid", "createtxg")
_SNAPSHOT_FIELDS = (*_SNAPSHOT_ID_FIELDS, "creation", "used", "referenced", "userrefs")


def _vdev(v: Vdev) -> dict[str, Any]:
    return {"name": v.name, "state": v.state, "read": v.read, "write": v.write, "checksum": v.checksum,
            "children": [_vdev(c) for c in v.children]}


def register_core(registry: Registry, uc: UseCases) -> None:
    """Add every dataset, snapshot, pool, clone, volume and bookmark method."""
    ds = lambda value, param="dataset": parse(param, DatasetName.parse, value)  # noqa: E731

    async def dataset_create(p: DatasetCreate, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        await uc.dataset_create.execute(dataset=name, properties=_props("properties", p.properties), parents=p.parents)
        return {"dataset": name.value, "created": True}

    async def dataset_destroy(p: DatasetDestroy, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        await uc.dataset_destroy.execute(dataset=name, recursive=p.recursive, recursive_dependents=p.recursive_dependents)
        return {"dataset": name.value, "destroyed": True}

    async def dataset_list(p: DatasetList, ctx: CallContext) -> dict[str, Any]:
        root = ds(p.dataset) if p.dataset is not None else None
        props = [parse("properties", PropertyName.parse, x) for x in p.properties]
        listing = await uc.dataset_list.execute(dataset=root, recursive=p.recursive, type=p.type, properties=props)
        names = ctx.visible(listing.names)
        out: dict[str, Any] = {"datasets": names}
        if listing.properties is not None:
            out["properties"] = {n: listing.properties[n] for n in names if n in listing.properties}
        return out

    async def dataset_get_properties(p: DatasetGetProperties, ctx: CallContext) -> dict[str, Any]:
        target = parse("dataset", SnapshotName.parse if "@" in p.dataset else DatasetName.parse, p.dataset)
        props = await uc.dataset_get_properties.execute(dataset=target, property=_prop_or_all("property", p.property))
        return {"dataset": target.value, "properties": _props_out(props, p.detailed)}

    async def dataset_set_property(p: DatasetSetProperty, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        prop = parse("property", PropertyName.parse, p.property)
        value = parse("value", PropertyValue.parse, p.value)
        await uc.dataset_set_property.execute(dataset=name, property=prop, value=value)
        return {"dataset": name.value, "property": prop.value, "value": value.value}

    async def dataset_get_space(p: DatasetOnly, ctx: CallContext) -> dict[str, Any]:
        s = await uc.dataset_get_space.execute(dataset=ds(p.dataset))
        return {"dataset": s.name, "space": {"name": s.name, "avail": s.avail, "used": s.used, "usedsnap": s.usedsnap,
                                             "useddss": s.useddss, "usedrefreserv": s.usedrefreserv,
                                             "usedchild": s.usedchild}}

    async def dataset_mount(p: DatasetOnly, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        changed = await uc.dataset_mount.execute(dataset=name)
        return {"dataset": name.value, "mounted": True, **({} if changed else {"already_mounted": True})}

    async def dataset_unmount(p: DatasetOnly, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        changed = await uc.dataset_unmount.execute(dataset=name)
        return {"dataset": name.value, "unmounted": True, **({} if changed else {"already_unmounted": True})}

    async def dataset_rename(p: DatasetRename, ctx: CallContext) -> dict[str, Any]:
        old, new = ds(p.dataset), ds(p.new_name, "new_name")
        await uc.dataset_rename.execute(dataset=old, new_name=new)
        return {"old_name": old.value, "new_name": new.value, "renamed": True}

    async def snapshot_create(p: SnapshotCreate, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        snap = _snap(name, p.name, "name")
        await uc.snapshot_create.execute(snapshot=snap, recursive=p.recursive, properties=_props("properties", p.properties))
        return {"dataset": name.value, "snapshot": snap.short, "created": True}

    async def snapshot_create_auto(p: SnapshotCreateAuto, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        # the tags become part of a snapshot name: check them as name components
        parse("tag", lambda t: SnapshotName.of(name, t), p.tag)
        if p.tag1 is not None:
            parse("tag1", lambda t: SnapshotName.of(name, t), p.tag1)
        snap = await uc.snapshot_create_auto.execute(dataset=name, tag=p.tag, tag1=p.tag1, recursive=p.recursive)
        return {"dataset": name.value, "snapshot": snap.short, "created": True}

    async def snapshot_list(p: SnapshotList, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        snaps = await uc.snapshot_list.execute(dataset=name, recursive=p.recursive, details=p.details)
        if ctx.principal is not None and not ctx.principal.unrestricted:
            snaps = [s for s in snaps if ctx.principal.covers(s.name)]
        own = name.value + "@"
        fields = _SNAPSHOT_FIELDS if p.details else _SNAPSHOT_ID_FIELDS
        details = [{f: getattr(s, f) for f in fields} for s in snaps]
        return {
            "dataset": name.value,
            # own snapshots by short name; with recursive, descendants' snapshots need their full name
            "snapshots": [s.name[len(own):] if s.name.startswith(own) else s.name for s in snaps],
            "details": details,
        }

    async def snapshot_destroy(p: SnapshotDestroy, ctx: CallContext) -> dict[str, Any]:
        snap = _snap(ds(p.dataset), p.snapshot)
        await uc.snapshot_destroy.execute(snapshot=snap, recursive=p.recursive)
        return {"snapshot": snap.value, "destroyed": True}

    async def snapshot_rollback(p: SnapshotRollback, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        snap = _snap(name, p.snapshot)
        destroyed = await uc.snapshot_rollback.execute(snapshot=snap, destroy_newer=p.destroy_newer)
        return {"dataset": name.value, "snapshot": snap.short, "rolled_back": True, "destroyed": destroyed}

    async def snapshot_hold(p: SnapshotHold, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        snap, tag = _snap(name, p.snapshot), parse("tag", HoldTag.parse, p.tag)
        await uc.snapshot_hold.execute(snapshot=snap, tag=tag, recursive=p.recursive)
        return {"dataset": name.value, "snapshot": snap.short, "hold": tag.value}

    async def snapshot_release(p: SnapshotHold, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        snap, tag = _snap(name, p.snapshot), parse("tag", HoldTag.parse, p.tag)
        await uc.snapshot_release.execute(snapshot=snap, tag=tag, recursive=p.recursive)
        return {"dataset": name.value, "snapshot": snap.short, "released": tag.value}

    async def snapshot_holds_list(p: SnapshotHolds, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        snap = _snap(name, p.snapshot)
        holds = await uc.snapshot_holds_list.execute(snapshot=snap, recursive=p.recursive)
        return {
            "dataset": name.value,
            "snapshot": snap.short,
            "holds": sorted({h.tag for _, h in holds}),
            "details": [{"tag": h.tag, "timestamp": h.timestamp, "snapshot": s} for s, h in holds],
        }

    async def snapshot_diff(p: SnapshotDiff, ctx: CallContext) -> dict[str, Any]:
        older = parse("snapshot1", SnapshotName.parse, p.snapshot1)
        newer = None
        if p.snapshot2 is not None:
            newer = parse("snapshot2", lambda s: SnapshotName.of(older.dataset, s), p.snapshot2)
        entries = await uc.snapshot_diff.execute(older=older, newer=newer)
        changes: dict[str, list[dict[str, Any]]] = {"new": [], "modified": [], "deleted": [], "renamed": []}
        for e in entries:
            if e.kind is ChangeKind.RENAMED:
                changes["renamed"].append({"old_path": e.path, "new_path": e.new_path, "type": e.file_type})
            else:
                changes[e.kind.value].append({"path": e.path, "type": e.file_type})
        summary = {f"{k}_count": len(v) for k, v in changes.items()}
        summary["total_changes"] = len(entries)
        return {"snapshot1": older.value, "snapshot2": newer.value if newer else "current",
                "changes": changes, "summary": summary}

    async def pool_list(p: NoParams, ctx: CallContext) -> dict[str, Any]:
        pools = await uc.pool_list.execute()
        if ctx.principal is not None:
            pools = [x for x in pools if ctx.principal.sees_pool(x.name)]
        return {"pools": [x.name for x in pools],
                "details": [{"name": x.name, "size": x.size, "allocated": x.allocated, "free": x.free,
                             "capacity": x.capacity, "health": x.health, "fragmentation": x.fragmentation}
                            for x in pools]}

    async def pool_get_properties(p: PoolGetProperties, ctx: CallContext) -> dict[str, Any]:
        pool = parse("pool", PoolName.parse, p.pool)
        props = await uc.pool_get_properties.execute(pool=pool, property=_prop_or_all("property", p.property))
        return {"pool": pool.value, "properties": _props_out(props, False)}

    async def pool_scrub_start(p: PoolOnly, ctx: CallContext) -> dict[str, Any]:
        pool = parse("pool", PoolName.parse, p.pool)
        await uc.pool_scrub_start.execute(pool=pool)
        return {"pool": pool.value, "scrub": "started"}

    async def pool_scrub_stop(p: PoolOnly, ctx: CallContext) -> dict[str, Any]:
        pool = parse("pool", PoolName.parse, p.pool)
        await uc.pool_scrub_stop.execute(pool=pool)
        return {"pool": pool.value, "scrub": "stopped"}

    async def pool_status(p: PoolOnly, ctx: CallContext) -> dict[str, Any]:
        st = await uc.pool_status.execute(pool=parse("pool", PoolName.parse, p.pool))
        s = st.scan
        return {"pool": st.pool, "status": st.raw, "state": st.state,
                "scan": {"function": s.function, "state": s.state, "percent": s.percent, "examined": s.examined,
                         "total": s.total, "errors": s.errors},
                "vdevs": [_vdev(v) for v in st.vdevs], "errors": st.errors}

    async def clone_create(p: CloneCreate, ctx: CallContext) -> dict[str, Any]:
        source = parse("source", SnapshotName.parse, p.source)
        target = ds(p.target, "target")
        await uc.clone_create.execute(source=source, target=target, properties=_props("properties", p.properties))
        return {"source": source.value, "clone": target.value, "created": True}

    async def volume_create(p: VolumeCreate, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        if (p.size_gb is None) == (p.size_bytes is None):
            raise InvalidArgument("size_bytes", "give exactly one of size_gb and size_bytes")
        size = p.size_bytes if p.size_bytes is not None else int((p.size_gb or 0) * (1 << 30))
        size = await uc.volume_create.execute(
            dataset=name, size_bytes=size, compression=parse("compression", PropertyValue.parse, p.compression),
            volblocksize=p.volblocksize, sparse=p.sparse,
        )
        return {"volume": name.value, "created": True, "size_bytes": size}

    async def volume_list(p: VolumeList, ctx: CallContext) -> dict[str, Any]:
        """Volumes (zvols) under a dataset, or in every pool."""
        root = ds(p.dataset) if p.dataset is not None else None
        listing = await uc.dataset_list.execute(dataset=root, recursive=True, type="volume")
        return {"volumes": ctx.visible(listing.names)}

    async def bookmark_create(p: BookmarkCreate, ctx: CallContext) -> dict[str, Any]:
        source = parse("snapshot", parse_snapshot_or_bookmark, p.snapshot)
        text = p.bookmark if "#" in p.bookmark else f"{source.dataset}#{p.bookmark}"
        bookmark = parse("bookmark", BookmarkName.parse, text)
        await uc.bookmark_create.execute(source=source, bookmark=bookmark)
        return {"snapshot": source.value, "bookmark": bookmark.value, "created": True}

    async def bookmark_list(p: DatasetOnly, ctx: CallContext) -> dict[str, Any]:
        name = ds(p.dataset)
        return {"dataset": name.value, "bookmarks": ctx.visible(await uc.bookmark_list.execute(dataset=name))}

    async def bookmark_destroy(p: BookmarkOnly, ctx: CallContext) -> dict[str, Any]:
        bookmark = parse("bookmark", BookmarkName.parse, p.bookmark)
        await uc.bookmark_destroy.execute(bookmark=bookmark)
        return {"bookmark": bookmark.value, "destroyed": True}

    def add(name: str, params: type[Params], handler: Any, result: str, action: Action) -> None:
        use_case = getattr(uc, name, None)
        doc = (use_case.__doc__ or handler.__name__) if use_case is not None else handler.__name__
        registry.add(name, params, handler, summary=" ".join(doc.split("\n\n")[0].split()),
                     result=tuple(result.split()), action=action)

    add("dataset_create", DatasetCreate, dataset_create, "dataset created", Action.CHANGE)
    add("dataset_destroy", DatasetDestroy, dataset_destroy, "dataset destroyed", Action.DESTROY)
    add("dataset_list", DatasetList, dataset_list, "datasets properties", Action.LIST)
    add("dataset_get_properties", DatasetGetProperties, dataset_get_properties, "dataset properties", Action.READ)
    add("dataset_set_property", DatasetSetProperty, dataset_set_property, "dataset property value", Action.CHANGE)
    add("dataset_get_space", DatasetOnly, dataset_get_space, "dataset space", Action.READ)
    add("dataset_mount", DatasetOnly, dataset_mount, "dataset mounted already_mounted", Action.CHANGE)
    add("dataset_unmount", DatasetOnly, dataset_unmount, "dataset unmounted already_unmounted", Action.CHANGE)
    add("dataset_rename", DatasetRename, dataset_rename, "old_name new_name renamed", Action.CHANGE)
    add("snapshot_create", SnapshotCreate, snapshot_create, "dataset snapshot created", Action.CHANGE)
    add("snapshot_create_auto", SnapshotCreateAuto, snapshot_create_auto, "dataset snapshot created", Action.CHANGE)
    add("snapshot_list", SnapshotList, snapshot_list, "dataset snapshots details", Action.LIST)
    add("snapshot_destroy", SnapshotDestroy, snapshot_destroy, "snapshot destroyed", Action.DESTROY)
    add("snapshot_rollback", SnapshotRollback, snapshot_rollback, "dataset snapshot rolled_back destroyed", Action.DESTROY)
    add("snapshot_hold", SnapshotHold, snapshot_hold, "dataset snapshot hold", Action.CHANGE)
    add("snapshot_release", SnapshotHold, snapshot_release, "dataset snapshot released", Action.CHANGE)
    add("snapshot_holds_list", SnapshotHolds, snapshot_holds_list, "dataset snapshot holds details", Action.READ)
    add("snapshot_diff", SnapshotDiff, snapshot_diff, "snapshot1 snapshot2 changes summary", Action.READ)
    add("pool_list", NoParams, pool_list, "pools details", Action.LIST)
    add("pool_get_properties", PoolGetProperties, pool_get_properties, "pool properties", Action.READ)
    add("pool_scrub_start", PoolOnly, pool_scrub_start, "pool scrub", Action.CHANGE)
    add("pool_scrub_stop", PoolOnly, pool_scrub_stop, "pool scrub", Action.CHANGE)
    add("pool_status", PoolOnly, pool_status, "pool status state scan vdevs errors", Action.READ)
    add("clone_create", CloneCreate, clone_create, "source clone created", Action.CHANGE)
    add("volume_create", VolumeCreate, volume_create, "volume created size_bytes", Action.CHANGE)
    add("volume_list", VolumeList, volume_list, "volumes", Action.LIST)
    add("bookmark_create", BookmarkCreate, bookmark_create, "snapshot bookmark created", Action.CHANGE)
    add("bookmark_list", DatasetOnly, bookmark_list, "dataset bookmarks", Action.LIST)
    add("bookmark_destroy", BookmarkOnly, bookmark_destroy, "bookmark destroyed", Action.DESTROY)
