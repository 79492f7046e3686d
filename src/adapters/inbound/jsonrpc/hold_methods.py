"""Holds on snapshots (hold, release, list): each method's params, result and handler."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from zfsapi.application.snapshots import HoldSnapshot, ListHolds, ReleaseSnapshot
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import AlreadyExists, NotFound
from zfsapi.domain.names import HoldTag

from .method_common import (
    DATASET,
    Dataset,
    Name,
    Recursive,
    SNAPSHOT,
    Snap,
    ZFS_ERRORS,
    dataset_name,
    parse,
    snapshot_name,
)
from .registry import CallContext, Params, Result, Table

HOLDS = Table(errors=ZFS_ERRORS)


class SnapshotHold(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    tag: Annotated[Name, Meta(description="The hold's tag.")]
    recursive: Recursive = False


class SnapshotHolds(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    snapshot: Snap
    recursive: Recursive = False


class HoldDetail(Result, frozen=True, kw_only=True):
    tag: str
    timestamp: int
    snapshot: str


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


@HOLDS.method(Action.CHANGE, carries={"dataset": DATASET, "snapshot": SNAPSHOT}, errors=(NotFound, AlreadyExists))
async def snapshot_hold(uc: HoldSnapshot, p: SnapshotHold, ctx: CallContext) -> HoldResult:
    name = dataset_name(p.dataset)
    snap, tag = snapshot_name(name, p.snapshot), parse("tag", HoldTag.parse, p.tag)
    await uc.execute(snapshot=snap, tag=tag, recursive=p.recursive)
    return HoldResult(dataset=name.value, snapshot=snap.short, hold=tag.value)


@HOLDS.method(Action.CHANGE, carries={"dataset": DATASET, "snapshot": SNAPSHOT}, errors=(NotFound,))
async def snapshot_release(uc: ReleaseSnapshot, p: SnapshotHold, ctx: CallContext) -> ReleaseResult:
    name = dataset_name(p.dataset)
    snap, tag = snapshot_name(name, p.snapshot), parse("tag", HoldTag.parse, p.tag)
    await uc.execute(snapshot=snap, tag=tag, recursive=p.recursive)
    return ReleaseResult(dataset=name.value, snapshot=snap.short, released=tag.value)


@HOLDS.method(Action.READ, carries={"dataset": DATASET, "snapshot": SNAPSHOT}, errors=(NotFound,))
async def snapshot_holds_list(uc: ListHolds, p: SnapshotHolds, ctx: CallContext) -> HoldsResult:
    name = dataset_name(p.dataset)
    snap = snapshot_name(name, p.snapshot)
    holds = await uc.execute(snapshot=snap, recursive=p.recursive)
    return HoldsResult(dataset=name.value, snapshot=snap.short, holds=sorted({h.tag for _, h in holds}),
                       details=[HoldDetail(tag=h.tag, timestamp=h.timestamp, snapshot=s) for s, h in holds])
