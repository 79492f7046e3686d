"""ZFS names as value objects, following OpenZFS's rules (module/zcommon/zfs_namecheck.c, libzfs).

A parsed name is always a valid ZFS name and can never be read as a command-line option: every
full name starts with a pool name, and a pool name starts with a letter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidArgument

#: ZFS_MAX_DATASET_NAME_LEN is 256 including the terminating NUL.
MAX_NAME_BYTES = 255
#: zfs_max_dataset_nesting (module parameter, default 50).
MAX_NESTING = 50
_COMPONENT = re.compile(r"[A-Za-z0-9_.: -]+")
# libzfs refuses these as new pool names (zpool_name_valid); the kernel refuses mirror/raidz/draid.
_RESERVED_POOL_PREFIXES = ("mirror", "raidz", "draid", "spare")
_RESERVED_POOLS = {"log"}
_NATIVE_PROPERTY = re.compile(r"[a-z][a-z0-9_]*")
# userquota@, groupquota@, projectquota@ and written@/written# take a suffix. The suffix is checked as strictly
# as a name: a user or group (name, numeric id, name@domain or an SMB SID), a project id, or the SHORT name of a
# snapshot or bookmark of the same dataset (a full name would read another dataset's data: a scope leak). No
# character that ZFS's property syntax gives meaning ('=', ',', spaces) gets through.
_AT_PROPERTY = re.compile(
    r"(user|group)(obj)?(quota|used)@[A-Za-z0-9_][A-Za-z0-9_.$+-]*(@[A-Za-z0-9_][A-Za-z0-9_.-]*)?"
    r"|project(obj)?(quota|used)@[0-9]+"
    r"|written[@#][A-Za-z0-9_.:-]+"
)
_USER_PROPERTY = re.compile(r"[a-z0-9_.:+-]+")
MAX_PROPERTY_VALUE_BYTES = 8192
MAX_USER_PROPERTY_NAME_BYTES = 255


def _check_length(text: str, what: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(what, f"name is {size} bytes, longer than the ZFS limit of {MAX_NAME_BYTES}")


def _check_component(component: str, what: str) -> None:
    if component == "":
        raise InvalidArgument(what, "empty name component")
    if not _COMPONENT.fullmatch(component):
        bad = next(c for c in component if not _COMPONENT.fullmatch(c))
        raise InvalidArgument(
            what, f"invalid character {bad!r}; allowed are letters, digits, space and _ . : -"
        )
    if component in (".", ".."):
        raise InvalidArgument(what, f"'{component}' is not a valid name component")


def _check_pool(pool: str, what: str) -> None:
    _check_component(pool, what)
    if not pool[0].isascii() or not pool[0].isalpha():
        raise InvalidArgument(what, "pool name must begin with a letter")
    if pool in _RESERVED_POOLS or pool.startswith(_RESERVED_POOL_PREFIXES):
        raise InvalidArgument(what, f"pool name '{pool}' is reserved")
    if len(pool) > 1 and pool[0] == "c" and pool[1].isdigit():
        raise InvalidArgument(what, "pool name may not look like a disk (c0...)")


@dataclass(frozen=True, slots=True)
class PoolName:
    """A pool name: a letter, then letters, digits, space and _ . : -; not reserved."""

    value: str

    @classmethod
    def parse(cls, text: str) -> PoolName:
        """Validate `text`. Raises InvalidArgument."""
        if not isinstance(text, str):
            raise InvalidArgument("pool", "must be a string")
        _check_length(text, "pool")
        _check_pool(text, "pool")
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class DatasetName:
    """A filesystem or volume: `pool[/component]*`, at most 255 bytes and 50 levels deep."""

    value: str

    @classmethod
    def parse(cls, text: str) -> DatasetName:
        """Validate `text`. Raises InvalidArgument."""
        if not isinstance(text, str):
            raise InvalidArgument("dataset", "must be a string")
        if "@" in text or "#" in text:
            raise InvalidArgument("dataset", "a dataset name has no '@' or '#' part")
        if text.startswith("/") or text.endswith("/"):
            raise InvalidArgument("dataset", "leading or trailing '/'")
        _check_length(text, "dataset")
        parts = text.split("/")
        if len(parts) > MAX_NESTING:
            raise InvalidArgument("dataset", f"nested {len(parts)} levels deep, more than {MAX_NESTING}")
        _check_pool(parts[0], "dataset")
        for part in parts[1:]:
            _check_component(part, "dataset")
        return cls(text)

    @property
    def pool(self) -> PoolName:
        return PoolName(self.value.split("/", 1)[0])

    @property
    def parent(self) -> DatasetName | None:
        head, sep, _ = self.value.rpartition("/")
        return DatasetName(head) if sep else None

    @property
    def depth(self) -> int:
        return self.value.count("/")

    def is_within(self, other: DatasetName) -> bool:
        """True when self is `other` or one of its descendants."""
        return self.value == other.value or self.value.startswith(other.value + "/")

    def snapshot(self, short: str) -> SnapshotName:
        return SnapshotName.parse(f"{self.value}@{short}")

    def bookmark(self, short: str) -> BookmarkName:
        return BookmarkName.parse(f"{self.value}#{short}")

    def __str__(self) -> str:
        return self.value


def _parse_at(text: object, sep: str, what: str) -> tuple[DatasetName, str]:
    if not isinstance(text, str):
        raise InvalidArgument(what, "must be a string")
    if text.count(sep) != 1:
        raise InvalidArgument(what, f"must contain exactly one '{sep}' (dataset{sep}name)")
    dataset, short = text.split(sep)
    if ("#" if sep == "@" else "@") in text:
        raise InvalidArgument(what, "has both '@' and '#'")
    try:
        ds = DatasetName.parse(dataset)
    except InvalidArgument as exc:
        raise exc.for_param(what) from None
    if short == "":
        raise InvalidArgument(what, f"empty name after '{sep}'")
    if "/" in short:
        raise InvalidArgument(what, f"'/' after '{sep}'")
    _check_component(short, what)
    _check_length(text, what)
    return ds, short


@dataclass(frozen=True, slots=True)
class SnapshotName:
    """`dataset@name`."""

    dataset: DatasetName
    short: str

    @classmethod
    def parse(cls, text: str) -> SnapshotName:
        """Validate `text`. Raises InvalidArgument."""
        ds, short = _parse_at(text, "@", "snapshot")
        return cls(ds, short)

    @classmethod
    def of(cls, dataset: DatasetName, short: str) -> SnapshotName:
        """`dataset@short`, validating `short` (a bare name, or `dataset@short` naming `dataset`)."""
        if isinstance(short, str) and "@" in short:
            full = cls.parse(short)
            if full.dataset != dataset:
                raise InvalidArgument("snapshot", f"names dataset {full.dataset}, not {dataset}")
            return full
        return cls.parse(f"{dataset}@{short}")

    @property
    def value(self) -> str:
        return f"{self.dataset.value}@{self.short}"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class BookmarkName:
    """`dataset#name`."""

    dataset: DatasetName
    short: str

    @classmethod
    def parse(cls, text: str) -> BookmarkName:
        """Validate `text`. Raises InvalidArgument."""
        ds, short = _parse_at(text, "#", "bookmark")
        return cls(ds, short)

    @property
    def value(self) -> str:
        return f"{self.dataset.value}#{self.short}"

    def __str__(self) -> str:
        return self.value


def parse_snapshot_or_bookmark(text: str) -> SnapshotName | BookmarkName:
    """A `dataset@snap` or a `dataset#bookmark` (incremental sources may be either)."""
    if isinstance(text, str) and "#" in text:
        return BookmarkName.parse(text)
    return SnapshotName.parse(text)


@dataclass(frozen=True, slots=True)
class HoldTag:
    """A user hold tag: 1-255 bytes, no tab/newline/NUL (holds are listed tab-separated), no leading '-'."""

    value: str

    @classmethod
    def parse(cls, text: str) -> HoldTag:
        if not isinstance(text, str) or text == "":
            raise InvalidArgument("tag", "must be a non-empty string")
        if len(text.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidArgument("tag", f"longer than {MAX_NAME_BYTES} bytes")
        if any(c in text for c in "\t\n\r\0"):
            raise InvalidArgument("tag", "may not contain tab, newline or NUL")
        if text.startswith("-"):
            raise InvalidArgument("tag", "may not begin with '-'")
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PropertyName:
    """A native property (`compression`, `userquota@bob`) or a user property (`com.example:note`)."""

    value: str

    @classmethod
    def parse(cls, text: str) -> PropertyName:
        if not isinstance(text, str) or text == "":
            raise InvalidArgument("property", "must be a non-empty string")
        if ":" in text:
            if not _USER_PROPERTY.fullmatch(text) or text.startswith("-"):
                raise InvalidArgument(
                    "property", "user property names use lowercase letters, digits and _ . : + - only"
                )
            if len(text.encode()) > MAX_USER_PROPERTY_NAME_BYTES:
                raise InvalidArgument("property", f"longer than {MAX_USER_PROPERTY_NAME_BYTES} bytes")
            return cls(text)
        if _NATIVE_PROPERTY.fullmatch(text) or _AT_PROPERTY.fullmatch(text):
            return cls(text)
        raise InvalidArgument(
            "property", "not a property name (user properties need a ':', e.g. com.example:note)"
        )

    @property
    def is_user(self) -> bool:
        return ":" in self.value

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PropertyValue:
    """A property value: at most 8192 bytes, no NUL, tab or newline (the listing format cannot carry them)."""

    value: str

    @classmethod
    def parse(cls, text: str) -> PropertyValue:
        if not isinstance(text, str):
            raise InvalidArgument("value", "must be a string")
        if len(text.encode("utf-8")) > MAX_PROPERTY_VALUE_BYTES:
            raise InvalidArgument("value", f"longer than {MAX_PROPERTY_VALUE_BYTES} bytes")
        if any(c in text for c in "\t\n\r\0"):
            raise InvalidArgument("value", "may not contain tab, newline or NUL")
        return cls(text)

    def __str__(self) -> str:
        return self.value


def parse_properties(props: dict[str, str], param: str = "properties") -> dict[PropertyName, PropertyValue]:
    """Validate a {name: value} mapping; errors name `param` and the offending key."""
    out: dict[PropertyName, PropertyValue] = {}
    for key, val in props.items():
        try:
            out[PropertyName.parse(key)] = PropertyValue.parse(val)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{param}.{key}", exc.reason) from None
    return out
