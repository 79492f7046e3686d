"""snapshot_diff: the changes between a snapshot and a later one (or the live filesystem), its params, result
and handler."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from zfsapi.application.snapshots import DiffSnapshots
from zfsapi.domain.authz import Action
from zfsapi.domain.errors import InvalidArgument, NotFound
from zfsapi.domain.models import ChangeKind
from zfsapi.domain.names import SnapshotName

from .method_common import DATASET, Name, SNAPSHOT, ZFS_ERRORS, parse
from .registry import CallContext, Params, Result, Table

DIFFS = Table(errors=ZFS_ERRORS)


class SnapshotDiff(Params, frozen=True, forbid_unknown_fields=True):
    snapshot1: Annotated[Name, Meta(description="The older snapshot's full name.")]
    snapshot2: Annotated[Name | None, Meta(
        description="A newer snapshot of the same dataset (short or full name); null: the live filesystem.")] = None


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


class DiffResult(Result, frozen=True, kw_only=True):
    snapshot1: str
    snapshot2: str
    changes: DiffChanges
    summary: DiffSummary


@DIFFS.method(Action.READ, carries={"snapshot1": DATASET, "snapshot2": SNAPSHOT}, errors=(NotFound, InvalidArgument))
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
