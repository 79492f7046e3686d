"""Clones and volumes (zvols): each method's params, result and handler."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from zfsapi.application.datasets import CreateClone, CreateVolume, ListDatasets
from zfsapi.domain.authz import Action, Carries
from zfsapi.domain.errors import AlreadyExists, InvalidArgument, NotFound
from zfsapi.domain.names import PropertyValue, SnapshotName, parse_properties

from .method_common import DATASET, Dataset, Name, SetProps, ZFS_ERRORS, dataset_name, parse
from .registry import CallContext, Params, Result, Table

VOLUMES = Table(errors=ZFS_ERRORS)


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


@VOLUMES.method(Action.CHANGE, carries={"target": DATASET, "source": DATASET, "properties": Carries.PROPERTIES},
             errors=(NotFound, AlreadyExists, InvalidArgument))
async def clone_create(uc: CreateClone, p: CloneCreate, ctx: CallContext) -> CloneResult:
    source = parse("source", SnapshotName.parse, p.source)
    target = dataset_name(p.target, "target")
    await uc.execute(source=source, target=target, properties=parse_properties(p.properties, "properties"))
    return CloneResult(source=source.value, clone=target.value)


@VOLUMES.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(AlreadyExists, NotFound, InvalidArgument))
async def volume_create(uc: CreateVolume, p: VolumeCreate, ctx: CallContext) -> VolumeCreateResult:
    name = dataset_name(p.dataset)
    if (p.size_gb is None) == (p.size_bytes is None):
        raise InvalidArgument("size_bytes", "give exactly one of size_gb and size_bytes")
    size = p.size_bytes if p.size_bytes is not None else int((p.size_gb or 0) * (1 << 30))
    size = await uc.execute(dataset=name, size_bytes=size, volblocksize=p.volblocksize, sparse=p.sparse,
                            compression=parse("compression", PropertyValue.parse, p.compression))
    return VolumeCreateResult(volume=name.value, size_bytes=size)


@VOLUMES.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def volume_list(uc: ListDatasets, p: VolumeList, ctx: CallContext) -> VolumeListResult:
    """Volumes (zvols) under a dataset, or in every pool."""
    root = dataset_name(p.dataset) if p.dataset is not None else None
    listing = await uc.execute(dataset=root, recursive=True, type="volume")
    return VolumeListResult(volumes=ctx.visible(listing.names))
