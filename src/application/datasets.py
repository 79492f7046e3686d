"""Use cases for filesystems, volumes and clones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidArgument, PermissionDenied
from zfsapi.domain.models import DatasetType, PropertyEntry, SpaceUsage
from zfsapi.domain.names import DatasetName, PropertyName, PropertyValue, SnapshotName
from zfsapi.domain.planning import plan_destroy

from .ports import Datasets, Properties


class CreateDataset:
    """Create a filesystem, optionally with its missing parents (`zfs create [-p] [-o k=v]...`).

    Raises:
        AlreadyExists: the dataset exists.
        NotFound: the parent is missing and `parents` is false.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName, properties: Properties, parents: bool = False) -> None:
        await self._datasets.create_dataset(dataset, properties=properties, parents=parents)


class DestroyDataset:
    """Destroy a dataset. `recursive` takes children and snapshots (-r); clones elsewhere only with
    `recursive_dependents` (-R).

    Raises:
        NotFound: the dataset does not exist.
        HasDependents: children, snapshots, clones or holds the flags do not take (listed in `dependents`).
        Busy: it is mounted and in use.
        InvalidArgument: the dataset is a pool's root.
        PermissionDenied: with `recursive_dependents`, the destroy would reach beyond the `caller`'s datasets.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName, recursive: bool = False, recursive_dependents: bool = False,
                      caller: Principal | None = None) -> None:
        if dataset.depth == 0:
            raise InvalidArgument("dataset", "a pool's root dataset cannot be destroyed")
        flags = plan_destroy(recursive, recursive_dependents)
        if flags.dependents and caller is not None and not caller.unrestricted:
            # -R follows clones wherever they are in the pool: every victim must be the caller's to destroy
            doomed = await self._datasets.preview_destroy(dataset, flags=flags)
            outside = [name for name in doomed if not caller.covers(name)]
            if outside:
                raise PermissionDenied("dataset_destroy", outside[0],
                                       f"recursive_dependents would also destroy {len(outside)} dataset(s) or "
                                       "snapshot(s) outside the datasets this user may touch")
        await self._datasets.destroy_dataset(dataset, flags=flags)


@dataclass(frozen=True, slots=True)
class DatasetListing:
    names: list[str]
    properties: dict[str, dict[str, int | str]] | None


class ListDatasets:
    """List filesystems and/or volumes, under `dataset` or in every pool; optionally with properties.

    Raises:
        NotFound: `dataset` does not exist.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(
        self,
        *,
        dataset: DatasetName | None = None,
        recursive: bool = True,
        type: str = "all",
        properties: Sequence[PropertyName] = (),
    ) -> DatasetListing:
        kinds = {
            "all": (DatasetType.FILESYSTEM, DatasetType.VOLUME),
            "filesystem": (DatasetType.FILESYSTEM,),
            "volume": (DatasetType.VOLUME,),
        }
        if type not in kinds:
            raise InvalidArgument("type", "must be one of filesystem, volume, all")
        rows = await self._datasets.list_datasets(dataset, recursive=recursive, types=kinds[type], properties=properties)
        names = [name for name, _ in rows]
        return DatasetListing(names, {name: props for name, props in rows} if properties else None)


class GetDatasetProperties:
    """Read one property or all of them, of a dataset or a snapshot (exact integers from parsable output,
    with their source). A user property that is not set reads as "-".

    Raises:
        NotFound: the dataset or snapshot does not exist.
        InvalidArgument: zfs knows no property of that name.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(
        self, *, dataset: DatasetName | SnapshotName, property: PropertyName | None = None
    ) -> dict[str, PropertyEntry]:
        return await self._datasets.get_properties(dataset, property=property)


class SetDatasetProperty:
    """Set one property (`zfs set`).

    Raises:
        NotFound: the dataset does not exist.
        ZfsCommandFailed: zfs refused the value.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName, property: PropertyName, value: PropertyValue) -> None:
        await self._datasets.set_property(dataset, property, value)


class GetDatasetSpace:
    """Space accounting of one dataset in bytes (`zfs list -o space`).

    Raises:
        NotFound: the dataset does not exist.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName) -> SpaceUsage:
        return await self._datasets.get_space(dataset)


class MountDataset:
    """Mount a filesystem; returns False when it was mounted already.

    Raises:
        NotFound: the dataset does not exist.
        Busy: zfs reports it busy.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName) -> bool:
        return await self._datasets.mount(dataset)


class UnmountDataset:
    """Unmount a filesystem; returns False when it was not mounted.

    Raises:
        NotFound: the dataset does not exist.
        Busy: it is in use.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName) -> bool:
        return await self._datasets.unmount(dataset)


class RenameDataset:
    """Rename a dataset within its pool.

    Raises:
        NotFound: the dataset does not exist.
        AlreadyExists: the new name is taken.
        InvalidArgument: the new name is in another pool, or below the dataset itself.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, dataset: DatasetName, new_name: DatasetName) -> None:
        if dataset.pool != new_name.pool:
            raise InvalidArgument("new_name", "a dataset cannot be renamed into another pool")
        if new_name.is_within(dataset):
            raise InvalidArgument("new_name", "a dataset cannot be renamed below itself")
        await self._datasets.rename(dataset, new_name)


class CreateClone:
    """Clone a snapshot into a new dataset of the same pool.

    Raises:
        NotFound: the snapshot does not exist.
        AlreadyExists: the target exists.
        InvalidArgument: the target is in another pool.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(self, *, source: SnapshotName, target: DatasetName, properties: Properties) -> None:
        if source.dataset.pool != target.pool:
            raise InvalidArgument("target", "a clone must be in the same pool as its snapshot")
        await self._datasets.create_clone(source, target, properties=properties)


_SIZE_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20}


def parse_block_size(text: str) -> int:
    """'16K' -> 16384; a power of two between 512 B and 16 MiB (OpenZFS's widest range: above 128 KiB a pool
    needs the large_blocks feature, and zfs itself refuses a size the pool cannot take)."""
    raw = text.strip().upper().removesuffix("B")
    suffix = raw[-1] if raw and raw[-1] in "KM" else ""
    number = raw[: len(raw) - len(suffix)]
    if not number.isdigit():
        raise InvalidArgument("volblocksize", f"not a size: {text!r} (e.g. 16K)")
    size = int(number) * _SIZE_SUFFIX[suffix]
    if size < 512 or size > (16 << 20) or size & (size - 1):
        raise InvalidArgument("volblocksize", "must be a power of two from 512 to 16M")
    return size


class CreateVolume:
    """Create a zvol of `size_bytes` (rounded up to a multiple of the block size), sparse by default.

    Raises:
        AlreadyExists: the volume exists.
        NotFound: its parent does not exist.
        InvalidArgument: the size or block size is out of range.
    """

    def __init__(self, datasets: Datasets) -> None:
        self._datasets = datasets

    async def execute(
        self,
        *,
        dataset: DatasetName,
        size_bytes: int,
        compression: PropertyValue,
        volblocksize: str = "16K",
        sparse: bool = True,
    ) -> int:
        block = parse_block_size(volblocksize)
        if size_bytes <= 0:
            raise InvalidArgument("size_bytes", "must be positive")
        size = -(-size_bytes // block) * block
        props = {
            PropertyName("compression"): compression,
            PropertyName("volblocksize"): PropertyValue(str(block)),
        }
        await self._datasets.create_volume(dataset, size_bytes=size, properties=props, sparse=sparse)
        return size
