"""Pure argv builders. Names arrive as validated value objects; output is always machine-readable.

argv[0] is the symbolic binary ("zfs" or "zpool"); the executor substitutes the configured path.
"""

from __future__ import annotations

from typing import Sequence

from zfsapi.application.ports import Properties
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import (
    BookmarkName,
    DatasetName,
    HoldTag,
    PoolName,
    PropertyName,
    PropertyValue,
    SnapshotName,
)
from zfsapi.domain.planning import DestroyFlags
from zfsapi.domain.transfer import (
    UNTRUSTED_RECEIVE_EXCLUDED,
    ReceiveSpec,
    ResumeToken,
    SendSpec,
)

SNAPSHOT_COLUMNS = ("name", "guid", "createtxg", "creation", "used", "referenced", "userrefs")
# name, guid and createtxg keep `zfs list` on its fast iteration path; each other column tripled the time of
# listing 2,000 snapshots (OpenZFS 2.3.2, measured in the test host).
SNAPSHOT_ID_COLUMNS = ("name", "guid", "createtxg")
SPACE_COLUMNS = ("name", "avail", "used", "usedsnap", "usedds", "usedrefreserv", "usedchild")
POOL_COLUMNS = ("name", "size", "alloc", "free", "cap", "health", "frag")


def _opts(properties: Properties) -> list[str]:
    out: list[str] = []
    for key, value in properties.items():
        out += ["-o", f"{key}={value}"]
    return out


def create(name: DatasetName, properties: Properties, parents: bool) -> list[str]:
    return ["zfs", "create", *(["-p"] if parents else []), *_opts(properties), name.value]


def create_volume(name: DatasetName, size_bytes: int, properties: Properties, sparse: bool) -> list[str]:
    return ["zfs", "create", *(["-s"] if sparse else []), "-V", str(size_bytes), *_opts(properties), name.value]


def clone(source: SnapshotName, target: DatasetName, properties: Properties) -> list[str]:
    return ["zfs", "clone", *_opts(properties), source.value, target.value]


def destroy(name: DatasetName | SnapshotName | BookmarkName, flags: DestroyFlags | None = None,
            dry_run: bool = False) -> list[str]:
    extra: list[str] = ["-n", "-v", "-p"] if dry_run else []  # -p: one "destroy<TAB>name" line per victim
    if flags is not None:
        extra += ["-r"] if flags.recursive and not flags.dependents else []
        extra += ["-R"] if flags.dependents else []
    return ["zfs", "destroy", *extra, name.value]


def list_datasets(
    root: DatasetName | None, recursive: bool, types: Sequence[DatasetType], columns: Sequence[str]
) -> list[str]:
    argv = ["zfs", "list", "-H", "-p", "-o", ",".join(columns), "-t", ",".join(t.value for t in types)]
    if root is None:
        argv += [] if recursive else ["-d", "0"]
    else:
        argv += ["-r"] if recursive else ["-d", "1"]
        argv.append(root.value)
    return argv


def get(name: DatasetName | SnapshotName, prop: PropertyName | None) -> list[str]:
    return get_of(prop, [name.value])


def get_of(prop: PropertyName | None, names: list[str]) -> list[str]:
    """One name: its properties (property,value,source); several: with the name first on each row."""
    return get_each(prop.value if prop else "all", names)


def get_each(props: str, names: list[str]) -> list[str]:
    """`props` (comma-separated) of each name, as get_of gives them."""
    columns = "property,value,source" if len(names) == 1 else "name,property,value,source"
    return ["zfs", "get", "-H", "-p", "-o", columns, props, *names]


def set_property(name: DatasetName, prop: PropertyName, value: PropertyValue) -> list[str]:
    return ["zfs", "set", f"{prop}={value}", name.value]


def space(name: DatasetName) -> list[str]:
    return space_of([name.value])


def space_of(names: list[str]) -> list[str]:
    return ["zfs", "list", "-H", "-p", "-o", ",".join(SPACE_COLUMNS), *names]


def mount(name: DatasetName) -> list[str]:
    return ["zfs", "mount", name.value]


def unmount(name: DatasetName) -> list[str]:
    return ["zfs", "unmount", name.value]


def rename(old: DatasetName, new: DatasetName) -> list[str]:
    return ["zfs", "rename", old.value, new.value]


def snapshot(name: SnapshotName, recursive: bool, properties: Properties) -> list[str]:
    return ["zfs", "snapshot", *(["-r"] if recursive else []), *_opts(properties), name.value]


def list_snapshots(dataset: DatasetName, recursive: bool, details: bool = True) -> list[str]:
    # Sorted by createtxg: oldest first, independent of names and clock changes.
    columns = SNAPSHOT_COLUMNS if details else SNAPSHOT_ID_COLUMNS
    return [
        "zfs", "list", "-H", "-p", "-t", "snapshot", "-o", ",".join(columns), "-s", "createtxg",
        *(["-r"] if recursive else ["-d", "1"]), dataset.value,
    ]


def rollback(name: SnapshotName, destroy_newer: bool) -> list[str]:
    return ["zfs", "rollback", *(["-r"] if destroy_newer else []), name.value]


def hold(name: SnapshotName, tag: HoldTag, recursive: bool) -> list[str]:
    return ["zfs", "hold", *(["-r"] if recursive else []), tag.value, name.value]


def release(name: SnapshotName, tag: HoldTag, recursive: bool) -> list[str]:
    return ["zfs", "release", *(["-r"] if recursive else []), tag.value, name.value]


def holds(name: SnapshotName, recursive: bool, parsable: bool) -> list[str]:
    # `zfs holds -p` (exact timestamps) exists from OpenZFS 2.2 on.
    return ["zfs", "holds", "-H", *(["-p"] if parsable else []), *(["-r"] if recursive else []), name.value]


def diff(older: SnapshotName, newer: SnapshotName | DatasetName) -> list[str]:
    return ["zfs", "diff", "-F", "-H", older.value, newer.value]


def bookmark(source: SnapshotName | BookmarkName, target: BookmarkName) -> list[str]:
    return ["zfs", "bookmark", source.value, target.value]


def list_bookmarks(dataset: DatasetName, columns: Sequence[str] = ("name",)) -> list[str]:
    return ["zfs", "list", "-H", "-p", "-t", "bookmark", "-o", ",".join(columns), "-s", "createtxg", "-d", "1",
            dataset.value]


def version() -> list[str]:
    return ["zfs", "version"]


def pool_list() -> list[str]:
    return ["zpool", "list", "-H", "-p", "-o", ",".join(POOL_COLUMNS)]


def pool_get(pool: PoolName, prop: PropertyName | None) -> list[str]:
    return ["zpool", "get", "-H", "-p", "-o", "property,value,source", prop.value if prop else "all", pool.value]


def scrub(pool: PoolName, stop: bool) -> list[str]:
    return ["zpool", "scrub", *(["-s"] if stop else []), pool.value]


def pool_status(pool: PoolName) -> list[str]:
    return ["zpool", "status", "-p", "-v", pool.value]


# ---- send / receive ----

def _from(spec: SendSpec) -> list[str]:
    return [] if spec.from_ is None else ["-I" if spec.intermediates else "-i", spec.from_.value]


def send(spec: SendSpec, dry_run: bool = False) -> list[str]:
    return ["zfs", "send", *(["-n", "-v", "-P"] if dry_run else []), *spec.flags(), *_from(spec), spec.snapshot.value]


def send_resume(token: ResumeToken, dry_run: bool = False) -> list[str]:
    return ["zfs", "send", *(["-n", "-v", "-P"] if dry_run else []), "-t", token.value]


def receive(spec: ReceiveSpec) -> list[str]:
    argv = ["zfs", "receive", "-v", *(["-s"] if spec.resumable else []), *(["-F"] if spec.force else [])]
    if not spec.trusted:
        for prop in UNTRUSTED_RECEIVE_EXCLUDED:
            argv += ["-x", prop]
    return [*argv, spec.target.value]


def receive_abort(target: DatasetName) -> list[str]:
    return ["zfs", "receive", "-A", target.value]


def get_value(name: DatasetName, prop: str) -> list[str]:
    return ["zfs", "get", "-H", "-p", "-o", "value", prop, name.value]


# ---- policies (zfsapi.application.policy_ports) ----

OWNER_PROPERTY = "zfsapi:policy"
POLICY_TREE_COLUMNS = ("name", "written")
# one listing of the datasets and their snapshots: a dataset's row says whether it has a `zfsapi:policy` value
# that its snapshots would inherit (then `local_values` tells the snapshots' own values apart)
POLICY_SNAPSHOT_COLUMNS = ("name", "guid", "createtxg", "creation", "userrefs", OWNER_PROPERTY, "clones")


def policy_tree(roots: Sequence[DatasetName]) -> list[str]:
    return ["zfs", "list", "-H", "-p", "-o", ",".join(POLICY_TREE_COLUMNS), "-t", "filesystem,volume", "-r",
            *(r.value for r in roots)]


def policy_snapshots(roots: Sequence[DatasetName]) -> list[str]:
    return ["zfs", "list", "-H", "-p", "-o", ",".join(POLICY_SNAPSHOT_COLUMNS), "-t", "filesystem,volume,snapshot",
            "-r", *(r.value for r in roots)]


def local_values(prop: str, datasets: Sequence[DatasetName]) -> list[str]:
    """The values of `prop` set on the snapshots of `datasets` themselves (not inherited)."""
    return ["zfs", "get", "-H", "-p", "-o", "name,value", "-s", "local", "-t", "snapshot", "-d", "1", prop,
            *(d.value for d in datasets)]


def holds_of(snapshots: Sequence[SnapshotName]) -> list[str]:
    # no -p: 2.1 has none, and only the tags are read
    return ["zfs", "holds", "-H", *(s.value for s in snapshots)]


def snapshot_many(snapshots: Sequence[SnapshotName], recursive: bool, properties: Properties) -> list[str]:
    return ["zfs", "snapshot", *(["-r"] if recursive else []), *_opts(properties), *(s.value for s in snapshots)]


def destroy_snapshots(argument: str) -> list[str]:
    """`zfs destroy ds@a,b,c` (`argument` from zfsapi.domain.retention.destroy_arguments)."""
    return ["zfs", "destroy", argument]


def hold_many(tag: HoldTag, snapshots: Sequence[SnapshotName]) -> list[str]:
    return ["zfs", "hold", tag.value, *(s.value for s in snapshots)]


def release_many(tag: HoldTag, snapshots: Sequence[SnapshotName]) -> list[str]:
    return ["zfs", "release", tag.value, *(s.value for s in snapshots)]
