"""Domain models: frozen, slotted records of what ZFS reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DatasetType(str, Enum):
    FILESYSTEM = "filesystem"
    VOLUME = "volume"
    SNAPSHOT = "snapshot"
    BOOKMARK = "bookmark"


@dataclass(frozen=True, slots=True)
class PropertyEntry:
    """One property as ZFS reports it: `value` from parsable output (native numbers as exact integers),
    `source` e.g. local/default/inherited from x."""

    value: int | str
    source: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot; its identity is `guid` (+ `createtxg`), since names can be renamed.

    The space and time fields are None when the listing skipped them (a much cheaper listing on ZFS).
    """

    name: str  # full name, dataset@short
    guid: int
    createtxg: int
    creation: int | None = None
    used: int | None = None
    referenced: int | None = None
    userrefs: int | None = None

    @property
    def short(self) -> str:
        return self.name.split("@", 1)[1]

    @property
    def dataset(self) -> str:
        return self.name.split("@", 1)[0]


@dataclass(frozen=True, slots=True)
class Bookmark:
    """A bookmark: the guid and createtxg of the snapshot it was made from (an incremental send may start
    from it once that snapshot is gone)."""

    name: str  # full name, dataset#short
    guid: int
    createtxg: int


@dataclass(frozen=True, slots=True)
class Hold:
    tag: str
    timestamp: int  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    size: int
    allocated: int
    free: int
    capacity: int  # percent
    health: str
    fragmentation: int | None  # percent; None where ZFS reports '-'


@dataclass(frozen=True, slots=True)
class SpaceUsage:
    name: str
    avail: int
    used: int
    usedsnap: int
    useddss: int
    usedrefreserv: int
    usedchild: int


class ChangeKind(str, Enum):
    NEW = "new"
    MODIFIED = "modified"
    DELETED = "deleted"
    RENAMED = "renamed"


#: `zfs diff -F` file type markers.
FILE_TYPES = {
    "F": "file",
    "/": "directory",
    "@": "symlink",
    "B": "block_device",
    "C": "character_device",
    "|": "fifo",
    "=": "socket",
    ">": "door",
    "P": "event_port",
}


@dataclass(frozen=True, slots=True)
class DiffEntry:
    kind: ChangeKind
    path: str
    file_type: str
    new_path: str | None = None


@dataclass(frozen=True, slots=True)
class ScanStatus:
    function: str | None  # "scrub", "resilver" or None when never scanned
    state: str | None  # "scanning", "finished", "canceled", "paused" or None
    percent: float | None
    examined: int | None
    total: int | None
    errors: int | None
    ended: float | None = None  # when a finished or canceled scan ended (epoch seconds), when zpool says


@dataclass(frozen=True, slots=True)
class Vdev:
    name: str
    state: str
    read: int
    write: int
    checksum: int
    children: list[Vdev] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PoolStatus:
    pool: str
    raw: str
    state: str
    scan: ScanStatus
    vdevs: list[Vdev]
    errors: str
