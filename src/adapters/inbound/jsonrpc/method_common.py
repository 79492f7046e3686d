"""What the core's method modules share: the wire's name and text types, the params several features read (a
dataset, a snapshot, a pool, properties), the errors every zfs call can return, and parsers from wire strings to
value objects that name the parameter at fault."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Callable, TypeVar

from msgspec import Meta

from zfsapi.domain.authz import Carries
from zfsapi.domain.errors import InvalidArgument, ZfsCommandFailed, ZfsUnavailable
from zfsapi.domain.names import DatasetName, PropertyName, SnapshotName

from .registry import Params

T = TypeVar("T")
Name = Annotated[str, Meta(min_length=1, max_length=1024)]
Text = Annotated[str, Meta(max_length=8192)]
PropMap = Annotated[dict[Name, Text], Meta(max_length=256)]

DATASET, SNAPSHOT, POOL = Carries.DATASET, Carries.SNAPSHOT, Carries.POOL

# Every method runs zfs or zpool, which may refuse in ways no other error names, or be missing.
ZFS_ERRORS: tuple[type[BaseException], ...] = (ZfsCommandFailed, ZfsUnavailable)

Dataset = Annotated[Name, Meta(description="A dataset's full name: pool/path.")]
Snap = Annotated[Name, Meta(description="A snapshot of `dataset`: its short name, or its full name dataset@name.")]
Pool = Annotated[Name, Meta(description="A pool's name.")]
SetProps = Annotated[PropMap, Meta(description="Properties to set, {name: value}.")]
Recursive = Annotated[bool, Meta(description="Also the same-named snapshots of every descendant (-r).")]
GetProp = Annotated[Name, Meta(description='A property name, or "all".')]

PropertyValueOut = int | str  # exact integers for numeric native properties, verbatim text otherwise


class DatasetOnly(Params, frozen=True, forbid_unknown_fields=True):
    dataset: Dataset


def iso(ts: float) -> str:
    """A POSIX timestamp as ISO 8601 UTC with a Z, as every time on the wire is written."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def parse(param: str, factory: Callable[[str], T], value: str) -> T:
    """Run a value-object parser, attributing its error to the request parameter `param`."""
    try:
        return factory(value)
    except InvalidArgument as exc:
        raise exc.for_param(param) from None


def dataset_name(value: str, param: str = "dataset") -> DatasetName:
    """A dataset name parameter as its value object (errors name `param`)."""
    return parse(param, DatasetName.parse, value)


def snapshot_name(dataset: DatasetName, snapshot: str, param: str = "snapshot") -> SnapshotName:
    """A snapshot parameter (short, or full in `dataset`) as its value object (errors name `param`)."""
    return parse(param, lambda s: SnapshotName.of(dataset, s), snapshot)


def prop_or_all(param: str, value: str) -> PropertyName | None:
    """A property name parameter; None for "all"."""
    return None if value == "all" else parse(param, PropertyName.parse, value)
