"""Every use case of the core in one object: what the HTTP adapter dispatches to and what embedders await."""

from __future__ import annotations

from dataclasses import dataclass

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
from .pools import GetPoolProperties, GetPoolStatus, ListPools, PoolOverview, StartScrub, StopScrub
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


@dataclass(frozen=True, slots=True)
class UseCases:
    """The core's use cases, by wire method name."""

    dataset_create: CreateDataset
    dataset_destroy: DestroyDataset
    dataset_list: ListDatasets
    dataset_get_properties: GetDatasetProperties
    dataset_set_property: SetDatasetProperty
    dataset_get_space: GetDatasetSpace
    dataset_mount: MountDataset
    dataset_unmount: UnmountDataset
    dataset_rename: RenameDataset
    snapshot_create: CreateSnapshot
    snapshot_create_auto: CreateAutoSnapshot
    snapshot_list: ListSnapshots
    snapshot_destroy: DestroySnapshot
    snapshot_rollback: RollbackSnapshot
    snapshot_hold: HoldSnapshot
    snapshot_release: ReleaseSnapshot
    snapshot_holds_list: ListHolds
    snapshot_diff: DiffSnapshots
    pool_list: ListPools
    pool_get_properties: GetPoolProperties
    pool_scrub_start: StartScrub
    pool_scrub_stop: StopScrub
    pool_status: GetPoolStatus
    pool_overview: PoolOverview
    clone_create: CreateClone
    volume_create: CreateVolume
    bookmark_create: CreateBookmark
    bookmark_list: ListBookmarks
    bookmark_destroy: DestroyBookmark
