"""The core's use cases in one object: what the HTTP adapter dispatches to and what embedders await."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterator, TypeVar

from .datasets import (
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
from .pools import (
    GetPoolProperties,
    GetPoolStatus,
    ListPools,
    PoolOverview,
    StartScrub,
    StopScrub,
)
from .snapshots import (
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
from .transfers import (
    AbortReceive,
    ReceiveFromFile,
    SendEstimate,
    SendToFile,
    StreamService,
)

U = TypeVar("U")


@dataclass(frozen=True, slots=True, kw_only=True)
class UseCases:
    """The core's use cases by wire method name (`api.snapshot_list`), or by class (`api[ListSnapshots]`). The
    composition root fills it; methods served by one use case share its instance."""

    dataset_create: CreateDataset
    dataset_destroy: DestroyDataset
    dataset_list: ListDatasets
    dataset_get_properties: GetDatasetProperties
    dataset_set_property: SetDatasetProperty
    dataset_get_space: GetDatasetSpace
    dataset_mount: MountDataset
    dataset_unmount: UnmountDataset
    dataset_rename: RenameDataset
    clone_create: CreateClone
    volume_create: CreateVolume
    volume_list: ListDatasets
    snapshot_create: CreateSnapshot
    snapshot_create_auto: CreateAutoSnapshot
    snapshot_list: ListSnapshots
    snapshot_destroy: DestroySnapshot
    snapshot_rollback: RollbackSnapshot
    snapshot_hold: HoldSnapshot
    snapshot_release: ReleaseSnapshot
    snapshot_holds_list: ListHolds
    snapshot_diff: DiffSnapshots
    bookmark_create: CreateBookmark
    bookmark_list: ListBookmarks
    bookmark_destroy: DestroyBookmark
    pool_list: ListPools
    pool_get_properties: GetPoolProperties
    pool_scrub_start: StartScrub
    pool_scrub_stop: StopScrub
    pool_status: GetPoolStatus
    pool_overview: PoolOverview  # the pools of /health, cached
    send_estimate: SendEstimate
    send_to_file: SendToFile
    receive_from_file: ReceiveFromFile
    receive_abort: AbortReceive
    stream_init: StreamService
    stream_list: StreamService
    stream_cancel: StreamService

    def __getitem__(self, kind: type[U]) -> U:
        """The use case of exactly this class (KeyError when none is)."""
        for name in self:
            found = getattr(self, name)
            if type(found) is kind and isinstance(found, kind):
                return found
        raise KeyError(kind.__name__)

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self))
