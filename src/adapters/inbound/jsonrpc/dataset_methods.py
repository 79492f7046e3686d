"""The dataset methods (create, destroy, list, properties, space, mount, unmount, rename): each method's
params, result and handler."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, UNSET, UnsetType

from zfsapi.application.datasets import (
    CreateDataset,
    DestroyDataset,
    GetDatasetProperties,
    GetDatasetSpace,
    ListDatasets,
    MountDataset,
    RenameDataset,
    SetDatasetProperty,
    UnmountDataset,
)
from zfsapi.domain.authz import Action, Carries
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ZfsCommandFailed,
)
from zfsapi.domain.models import PropertyEntry
from zfsapi.domain.names import DatasetName, PropertyName, PropertyValue, SnapshotName, parse_properties

from .method_common import (
    DATASET,
    Dataset,
    DatasetOnly,
    GetProp,
    Name,
    PropertyValueOut,
    SetProps,
    Text,
    ZFS_ERRORS,
    dataset_name,
    parse,
    prop_or_all,
)
from .registry import CallContext, Params, Result, Table

DATASETS = Table(errors=ZFS_ERRORS)


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


class DatasetRename(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset
    new_name: Annotated[Name, Meta(description="The new full name, in the same pool.")]


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


def _props_out(props: dict[str, PropertyEntry], detailed: bool) -> dict[str, PropertyValueOut | PropertyDetail]:
    if detailed:
        return {k: PropertyDetail(value=v.value, source=v.source) for k, v in props.items()}
    return {k: v.value for k, v in props.items()}


@DATASETS.method(Action.CHANGE, carries={"dataset": DATASET, "properties": Carries.PROPERTIES},
             errors=(AlreadyExists, NotFound))
async def dataset_create(uc: CreateDataset, p: DatasetCreate, ctx: CallContext) -> DatasetCreateResult:
    name = dataset_name(p.dataset)
    await uc.execute(dataset=name, properties=parse_properties(p.properties, "properties"), parents=p.parents)
    return DatasetCreateResult(dataset=name.value)


@DATASETS.method(Action.DESTROY, carries={"dataset": DATASET},
             errors=(NotFound, HasDependents, Busy, InvalidArgument, PermissionDenied))
async def dataset_destroy(uc: DestroyDataset, p: DatasetDestroy, ctx: CallContext) -> DatasetDestroyResult:
    name = dataset_name(p.dataset)
    await uc.execute(dataset=name, recursive=p.recursive, recursive_dependents=p.recursive_dependents,
                     caller=ctx.principal)
    return DatasetDestroyResult(dataset=name.value)


@DATASETS.method(Action.LIST, carries={"dataset": DATASET}, errors=(NotFound,))
async def dataset_list(uc: ListDatasets, p: DatasetList, ctx: CallContext) -> DatasetListResult:
    root = dataset_name(p.dataset) if p.dataset is not None else None
    props = [parse("properties", PropertyName.parse, x) for x in p.properties]
    listing = await uc.execute(dataset=root, recursive=p.recursive, type=p.type, properties=props)
    names = ctx.visible(listing.names)
    if listing.properties is None:
        return DatasetListResult(datasets=names)
    return DatasetListResult(datasets=names,
                             properties={n: listing.properties[n] for n in names if n in listing.properties})


@DATASETS.method(Action.READ, carries={"dataset": DATASET}, errors=(NotFound, InvalidArgument))
async def dataset_get_properties(uc: GetDatasetProperties, p: DatasetGetProperties,
                                 ctx: CallContext) -> DatasetPropertiesResult:
    target: DatasetName | SnapshotName = (parse("dataset", SnapshotName.parse, p.dataset) if "@" in p.dataset
                                          else dataset_name(p.dataset))
    props = await uc.execute(dataset=target, property=prop_or_all("property", p.property))
    return DatasetPropertiesResult(dataset=target.value, properties=_props_out(props, p.detailed))


@DATASETS.method(Action.CHANGE, carries={"dataset": DATASET, "property": Carries.PROPERTY},
             errors=(NotFound, ZfsCommandFailed))
async def dataset_set_property(uc: SetDatasetProperty, p: DatasetSetProperty, ctx: CallContext) -> SetPropertyResult:
    name = dataset_name(p.dataset)
    prop = parse("property", PropertyName.parse, p.property)
    value = parse("value", PropertyValue.parse, p.value)
    await uc.execute(dataset=name, property=prop, value=value)
    return SetPropertyResult(dataset=name.value, property=prop.value, value=value.value)


@DATASETS.method(Action.READ, carries={"dataset": DATASET}, errors=(NotFound,))
async def dataset_get_space(uc: GetDatasetSpace, p: DatasetOnly, ctx: CallContext) -> SpaceResult:
    s = await uc.execute(dataset=dataset_name(p.dataset))
    return SpaceResult(dataset=s.name, space=Space(name=s.name, avail=s.avail, used=s.used, usedsnap=s.usedsnap,
                                                   useddss=s.useddss, usedrefreserv=s.usedrefreserv,
                                                   usedchild=s.usedchild))


@DATASETS.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, Busy))
async def dataset_mount(uc: MountDataset, p: DatasetOnly, ctx: CallContext) -> MountResult:
    name = dataset_name(p.dataset)
    changed = await uc.execute(dataset=name)
    return MountResult(dataset=name.value, already_mounted=UNSET if changed else True)


@DATASETS.method(Action.CHANGE, carries={"dataset": DATASET}, errors=(NotFound, Busy))
async def dataset_unmount(uc: UnmountDataset, p: DatasetOnly, ctx: CallContext) -> UnmountResult:
    name = dataset_name(p.dataset)
    changed = await uc.execute(dataset=name)
    return UnmountResult(dataset=name.value, already_unmounted=UNSET if changed else True)


@DATASETS.method(Action.CHANGE, carries={"dataset": DATASET, "new_name": DATASET},
             errors=(NotFound, AlreadyExists, InvalidArgument))
async def dataset_rename(uc: RenameDataset, p: DatasetRename, ctx: CallContext) -> RenameResult:
    old, new = dataset_name(p.dataset), dataset_name(p.new_name, "new_name")
    await uc.execute(dataset=old, new_name=new)
    return RenameResult(old_name=old.value, new_name=new.value)
