"""The snapshot methods (create, create_auto, list, destroy, rollback): each method's params, result and
handler."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, UNSET, UnsetType

from zfsapi.application.snapshots import (
    CreateAutoSnapshot,
    CreateSnapshot,
    DestroySnapshot,
    ListSnapshots,
    RollbackSnapshot,
)
from zfsapi.domain.authz import Action, Carries
from zfsapi.domain.errors import AlreadyExists, Busy, HasDependents, NotFound, StateConflict
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import SnapshotName, parse_properties

from .method_common import (
    DATASET,
    Dataset,
    Name,
    Recursive,
    SNAPSHOT,
    SetProps,
    Snap,
    ZFS_ERRORS,
    dataset_name,
    parse,
    snapshot_name,
)
from .registry import CallContext, Params, Result, Table

SNAPSHOTS = Table(errors=ZFS_ERRORS)


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


class SnapshotDetail(Result, frozen=True, kw_only=True):
    name: str
    guid: int
    createtxg: int
    # only with details=true
    creation: int | None | UnsetType = UNSET
    used: int | None | UnsetType = UNSET
    referenced: int | None | UnsetType = UNSET
    userrefs: int | None | UnsetType = UNSET


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


def _snapshot_detail(s: Snapshot, details: bool) -> SnapshotDetail:
    if not details:
        return SnapshotDetail(name=s.name, guid=s.guid, createtxg=s.createtxg)
    return SnapshotDetail(name=s.name, guid=s.guid, createtxg=s.createtxg, creation=s.creation, used=s.used,
                          referenced=s.referenced, userrefs=s.userrefs)


@SNAPSHOTS.method(Action.CHANGE, carries={"dataset": DATASET, "properties": Carries.PROPERTIES},
             errors=(NotFound, AlreadyExists))
async def snapshot_create(uc: CreateSnapshot, p: SnapshotCreate, ctx: CallContext) -> SnapshotCreateResult:
    name = dataset_name(p.dataset)
    snap = snapshot_name(name, p.name, "name")
    await uc.execute(snapshot=snap, recursive=p.recursive, properties=parse_properties(p.properties, "properties"))
    return SnapshotCreateResult(dataset=name.value, snapshot=snap.short)


@SNAPSHOTS.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, AlreadyExists))
async def snapshot_create_auto(uc: CreateAutoSnapshot, p: SnapshotCreateAuto,
                               ctx: CallContext) -> SnapshotCreateResult:
    name = dataset_name(p.dataset)
    # the tags become part of a snapshot name: check them as name components
    parse("tag", lambda t: SnapshotName.of(name, t), p.tag)
    if p.tag1 is not None:
        parse("tag1", lambda t: SnapshotName.of(name, t), p.tag1)
    snap = await uc.execute(dataset=name, tag=p.tag, tag1=p.tag1, recursive=p.recursive)
    return SnapshotCreateResult(dataset=name.value, snapshot=snap.short)


@SNAPSHOTS.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
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


@SNAPSHOTS.method(Action.DESTROY, carries={"dataset": DATASET, "snapshot": SNAPSHOT},
             errors=(NotFound, HasDependents, Busy))
async def snapshot_destroy(uc: DestroySnapshot, p: SnapshotDestroy, ctx: CallContext) -> SnapshotDestroyResult:
    snap = snapshot_name(dataset_name(p.dataset), p.snapshot)
    await uc.execute(snapshot=snap, recursive=p.recursive)
    return SnapshotDestroyResult(snapshot=snap.value)


@SNAPSHOTS.method(Action.DESTROY, carries={"dataset": DATASET, "snapshot": SNAPSHOT},
             errors=(NotFound, StateConflict, HasDependents, Busy))
async def snapshot_rollback(uc: RollbackSnapshot, p: SnapshotRollback, ctx: CallContext) -> RollbackResult:
    name = dataset_name(p.dataset)
    snap = snapshot_name(name, p.snapshot)
    destroyed = await uc.execute(snapshot=snap, destroy_newer=p.destroy_newer)
    return RollbackResult(dataset=name.value, snapshot=snap.short, destroyed=destroyed)
