"""Parsers for machine-readable zfs/zpool output, and stderr classification into the domain's typed errors.

Every regex here is pinned by a unit test in tests/unit/test_parsers.py, most of them on output captured from
real OpenZFS 2.3.2 (tests/unit/data); the integration tests drive the error paths against live OpenZFS.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    StateConflict,
    ZfsApiError,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.models import (
    FILE_TYPES,
    Bookmark,
    ChangeKind,
    DiffEntry,
    Hold,
    Pool,
    PoolStatus,
    PropertyEntry,
    ScanStatus,
    Snapshot,
    SpaceUsage,
    Vdev,
)
from zfsapi.domain.transfer import ResumeTokenContents

from .executor import Completed


def destroyed(completed: Completed) -> list[str]:
    """The victims of `zfs destroy -n -v -p`: its "destroy<TAB>name" lines (the "reclaim" line is skipped)."""
    text = completed.stdout.decode("utf-8", "surrogateescape")
    return [line.split("\t", 1)[1] for line in text.split("\n") if line.startswith("destroy\t")]


def rows(completed: Completed, columns: int) -> list[list[str]]:
    """Tab-separated rows; a row with the wrong column count is an error, never silently misread."""
    text = completed.stdout.decode("utf-8", "surrogateescape")
    out = []
    for line in text.split("\n"):
        if line == "":
            continue
        fields = line.split("\t")
        if len(fields) != columns:
            raise ZfsCommandFailed(
                completed.argv, completed.exit_code, f"unexpected output: {len(fields)} columns, expected {columns}"
            )
        out.append(fields)
    return out


def _int(value: str) -> int:
    return int(value) if value not in ("-", "") else 0


def snapshots(completed: Completed, details: bool = True) -> list[Snapshot]:
    if not details:
        return [Snapshot(name, int(guid), int(txg)) for name, guid, txg in rows(completed, 3)]
    return [
        Snapshot(name, int(guid), int(txg), int(creation), _int(used), _int(refer), _int(userrefs))
        for name, guid, txg, creation, used, refer, userrefs in rows(completed, 7)
    ]


def bookmarks(completed: Completed) -> list[Bookmark]:
    return [Bookmark(name, int(guid), int(txg)) for name, guid, txg in rows(completed, 3)]


def space(completed: Completed) -> SpaceUsage:
    (row,) = rows(completed, 7)
    name, *numbers = row
    return SpaceUsage(name, *(_int(n) for n in numbers))


# Native properties whose parsable values are text even when they look numeric are kept as text;
# all other native values of only digits are exact integers.
_TEXT_PROPERTIES = {"name", "mountpoint", "origin", "volmode", "keylocation", "comment"}


def property_value(name: str, value: str) -> int | str:
    if ":" not in name and name not in _TEXT_PROPERTIES and value.isdigit():
        return int(value)
    return value


def properties(completed: Completed) -> dict[str, PropertyEntry]:
    return {prop: PropertyEntry(property_value(prop, value), source) for prop, value, source in rows(completed, 3)}


def pools(completed: Completed) -> list[Pool]:
    out = []
    for name, size, alloc, free, cap, health, frag in rows(completed, 7):
        out.append(Pool(name, _int(size), _int(alloc), _int(free), _int(cap), health, None if frag == "-" else _int(frag)))
    return out


# 2.1 prints hold times as ctime-like local time ("%a %b %e %H:%M %Y"); the executor runs zfs with TZ=UTC.
def holds(completed: Completed) -> list[tuple[str, Hold]]:
    out = []
    for name, tag, stamp in rows(completed, 3):
        if stamp.isdigit():
            ts = int(stamp)
        else:
            ts = int(datetime.strptime(" ".join(stamp.split()), "%a %b %d %H:%M %Y").replace(tzinfo=timezone.utc).timestamp())
        out.append((name, Hold(tag, ts)))
    return out


_ESCAPE = re.compile(rb"\\([0-7]{4})")
_DIFF_KINDS = {"+": ChangeKind.NEW, "-": ChangeKind.DELETED, "M": ChangeKind.MODIFIED, "R": ChangeKind.RENAMED}


def _unescape_path(raw: bytes) -> str:
    """`zfs diff` writes every byte outside '!'..'~' (and the backslash) as a backslash and 4 octal digits."""
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), raw).decode("utf-8", "surrogateescape")


def diff(completed: Completed) -> list[DiffEntry]:
    out = []
    for line in completed.stdout.split(b"\n"):
        if not line:
            continue
        fields = line.split(b"\t")
        if len(fields) not in (3, 4) or fields[0].decode() not in _DIFF_KINDS:
            raise ZfsCommandFailed(completed.argv, completed.exit_code, f"unexpected zfs diff line: {line[:200]!r}")
        kind = _DIFF_KINDS[fields[0].decode()]
        ftype = FILE_TYPES.get(fields[1].decode(), fields[1].decode())
        new_path = _unescape_path(fields[3]) if len(fields) == 4 else None
        out.append(DiffEntry(kind, _unescape_path(fields[2]), ftype, new_path))
    return out


_VERSION = re.compile(r"zfs-(?:kmod-)?v?(\d+\.\d+(?:\.\d+)?)")


def version(completed: Completed) -> str:
    match = _VERSION.search(completed.stdout.decode("utf-8", "replace"))
    if not match:
        raise ZfsCommandFailed(completed.argv, completed.exit_code, "cannot read the zfs version")
    return match.group(1)


# ---- zpool status ----------------------------------------------------------------------------------------

_SCAN_PERCENT = re.compile(r"([\d.]+)% done")
_SCAN_ISSUED = re.compile(r"(\d+)\s*/\s*(\d+)\s+issued")
_SCAN_SCANNED = re.compile(r"(\d+)\s*/\s*(\d+)\s+scanned")
_SCAN_ERRORS = re.compile(r"with (\d+) errors")
_SCAN_ENDED = re.compile(r"\bon ([A-Z][a-z]{2} [A-Z][a-z]{2} \d{1,2} \d{2}:\d{2}:\d{2} \d{4})")


def _scan_ended(text: str) -> float | None:
    """The end of a finished or canceled scan ("... on Tue Nov 24 22:26:27 2026"), in UTC (zpool runs with
    TZ=UTC); None when the text names none."""
    m = _SCAN_ENDED.search(text)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _scan(block: str) -> ScanStatus:
    text = " ".join(block.split())
    if not text or text.startswith("none requested"):
        return ScanStatus(None, None, None, None, None, None)
    function = "resilver" if text.startswith("resilver") else "scrub" if text.startswith("scrub") else text.split()[0]
    if "in progress" in text:
        state = "scanning"
    elif "paused" in text:
        state = "paused"
    elif "canceled" in text:
        state = "canceled"
    else:
        state = "finished"
    percent = examined = total = None
    if m := _SCAN_PERCENT.search(text):
        percent = float(m.group(1))
    if m := (_SCAN_ISSUED.search(text) or _SCAN_SCANNED.search(text)):
        examined, total = int(m.group(1)), int(m.group(2))
    if state == "finished":
        percent = 100.0
    errors = int(m.group(1)) if (m := _SCAN_ERRORS.search(text)) else (0 if state == "scanning" else None)
    ended = _scan_ended(text) if state in ("finished", "canceled") else None
    return ScanStatus(function, state, percent, examined, total, errors, ended)


def _sections(text: str) -> dict[str, str]:
    """`zpool status` is `key: value` sections whose values continue on tab-indented lines."""
    out: dict[str, str] = {}
    key = None
    for line in text.split("\n"):
        m = re.fullmatch(r"\s{0,2}([a-z]+):\s?(.*)", line)
        if m and not line.startswith("\t"):
            key = m.group(1)
            out[key] = m.group(2)
        elif key is not None:
            out[key] += "\n" + line
    return out


def _vdevs(config: str) -> list[Vdev]:
    lines = [ln for ln in config.split("\n") if ln.strip()]
    header = next((i for i, ln in enumerate(lines) if ln.split()[:2] == ["NAME", "STATE"]), None)
    if header is None:
        return []
    roots: list[Vdev] = []
    stack: list[tuple[int, Vdev]] = []
    for line in lines[header + 1 :]:
        body = line.lstrip("\t")
        indent = len(body) - len(body.lstrip(" "))
        fields = body.split()
        if len(fields) < 2:
            continue
        vdev = Vdev(
            name=fields[0],
            state=fields[1],
            read=_int(fields[2]) if len(fields) > 4 and fields[2].isdigit() else 0,
            write=_int(fields[3]) if len(fields) > 4 and fields[3].isdigit() else 0,
            checksum=_int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else 0,
        )
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(vdev)
        stack.append((indent, vdev))
    return roots


def pool_status(completed: Completed, pool: str) -> PoolStatus:
    raw = completed.stdout.decode("utf-8", "replace")
    sections = _sections(raw)
    return PoolStatus(
        pool=pool,
        raw=raw,
        state=sections.get("state", "").strip(),
        scan=_scan(sections.get("scan", "")),
        vdevs=_vdevs(sections.get("config", "")),
        errors=" ".join(sections.get("errors", "").split()),
    )


# ---- stderr classification -----------------------------------------------------------------------------

_QUOTED = re.compile(r"cannot [^']*'([^']+)'")
_DEPENDENTS_HEADER = re.compile(r"use '-[rR]' to (destroy|force deletion of) the following")
_BOOKMARK_MISSING = re.compile(r"bookmark '([^']+)' does not exist")
_HELD = re.compile(r"cannot destroy snapshot (.+?): it's being held")
_DESTINATION_EXISTS = re.compile(r"destination '([^']+)' exists")  # zfs receive of a full stream without -F


def _kind(name: str, default: str) -> str:
    if "@" in name:
        return "snapshot"
    if "#" in name:
        return "bookmark"
    return "pool" if default == "pool" else "dataset"


def _dependents(stderr: str) -> list[str]:
    lines = stderr.split("\n")
    for i, line in enumerate(lines):
        if _DEPENDENTS_HEADER.search(line):
            return [ln.strip() for ln in lines[i + 1 :] if ln.strip()]
    return []


def classify(completed: Completed, *, name: str, kind: str = "dataset") -> ZfsApiError:
    """The typed error for a failed command. `name`/`kind` describe the object the request was about."""
    err = completed.stderr
    low = err.lower()
    quoted = m.group(1) if (m := _QUOTED.search(err)) else name
    if "modules are not loaded" in low or "/dev/zfs and /proc/self/mounts are required" in low \
            or "failed to initialize the libzfs library" in low or "must be run as root" in low \
            or "permission denied" in low and "zfs allow" not in low:
        return ZfsUnavailable(err.split("\n")[0] or f"exit {completed.exit_code}")
    if "no such pool or dataset" in low:  # e.g. a bookmark to copy that does not exist
        return NotFound(_kind(quoted, kind), quoted)
    if "no such pool" in low:
        return NotFound("pool", quoted.split("/")[0])
    if "parent does not exist" in low:
        parent = quoted.rsplit("/", 1)[0] if "/" in quoted else quoted
        return NotFound("dataset", parent)
    if "could not find any snapshots to destroy" in low:
        return NotFound(kind, name)
    if m := _BOOKMARK_MISSING.search(err):
        return NotFound("bookmark", m.group(1))
    if "no such tag on this dataset" in low:
        return NotFound("hold", name)
    if "dataset does not exist" in low or "no such file or directory" in low and "cannot open" in low:
        return NotFound(_kind(quoted, kind), quoted)
    if "tag already exists on this dataset" in low:
        return AlreadyExists("hold", name)
    if m := _DESTINATION_EXISTS.search(err):
        return AlreadyExists("dataset", m.group(1))
    if "already exists" in low or "bookmark exists" in low:
        return AlreadyExists(_kind(quoted, kind), quoted)
    if "has dependent clones" in low:
        return HasDependents(quoted, "has dependent clones", _dependents(err))
    if "has children" in low:
        return HasDependents(quoted, "has children", _dependents(err))
    if "it's being held" in low:
        held = m.group(1) if (m := _HELD.search(err)) else name
        return HasDependents(held, "snapshot has user holds (see snapshot_holds_list)")
    if "dataset is busy" in low and "@" in quoted + name:
        return HasDependents(quoted, "snapshot has user holds or is in use")
    if "is busy" in low or "device busy" in low:
        return Busy(quoted, "mounted and in use")
    if "currently scrubbing" in low or "currently resilvering" in low:  # the quoted text is "zpool scrub -s"
        return Busy(name, "a scrub or resilver is in progress")
    if "more recent snapshots or bookmarks exist" in low:
        return StateConflict("more recent snapshots or bookmarks exist", newer=_dependents(err))
    if "there is no active scrub" in low:
        return StateConflict("there is no active scrub")
    if "bad property list" in low or "invalid property" in low:
        return InvalidArgument("property", err.split("\n")[0])
    return ZfsCommandFailed(completed.argv, completed.exit_code, err)


def send_size(text: str) -> int:
    """The total of `zfs send -nvP`: its last `size<TAB>N` line, read as an unsigned 64-bit integer."""
    for line in reversed(text.splitlines()):
        parts = line.split("\t")
        if parts[0] == "size" and len(parts) == 2 and parts[1].isdigit():
            value = int(parts[1])
            if value >= 1 << 64:
                break
            return value
    raise ValueError(f"no size line in zfs send -nvP output: {text[-200:]!r}")


def resume_token(text: str) -> ResumeTokenContents:
    """`zfs send -nvt TOKEN`: the nvlist printed after "resume token contents:" (numbers in hex)."""
    fields: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("resume token contents"):
            inside = True
            continue
        if not inside or not line.startswith(("\t", " ")):
            continue
        key, sep, value = line.strip().partition(" = ")
        fields[key.strip()] = value.strip() if sep else "1"
    if "toname" not in fields or "toguid" not in fields:
        raise ValueError("resume token contents without toname/toguid")

    def num(key: str) -> int | None:
        return int(fields[key], 0) if key in fields else None

    return ResumeTokenContents(
        toname=fields["toname"], toguid=num("toguid") or 0, fromguid=num("fromguid"),
        raw="rawok" in fields, compressed="compressok" in fields, bytes_done=num("bytes") or 0,
        size=_size_or_none(text),
    )


def _size_or_none(text: str) -> int | None:
    try:
        return send_size(text)
    except ValueError:
        return None


# ---- policies ----

_DESTROY_HELD = re.compile(r"cannot destroy snapshot (.+?): it's being held")
_DESTROY_BUSY = re.compile(r"cannot destroy snapshot (.+?): dataset is busy")  # OpenZFS 2.1's word for held
_DESTROY_CLONED = re.compile(r"cannot destroy '(.+?)': snapshot has dependent clones")


def refused_snapshots(stderr: str) -> dict[str, str]:
    """The snapshots a failed `zfs destroy ds@a,b,c` names as refused ({full name: reason}): ZFS destroys a
    call's snapshots all or none, and says which are held (all of them; 2.1 says "busy") or a clone's origin
    (the first)."""
    out: dict[str, str] = {}
    for line in stderr.split("\n"):
        if m := _DESTROY_HELD.match(line):
            out[m.group(1)] = "it is held (a hold placed since the listing)"
        elif m := _DESTROY_BUSY.match(line):
            out[m.group(1)] = "it is held or in use (OpenZFS 2.1 does not tell which)"
        elif m := _DESTROY_CLONED.match(line):
            out[m.group(1)] = "it is a clone's origin (a clone made since the listing)"
    return out


def other_errors(stderr: str, *ignored: str) -> str:
    """The lines of a command's stderr that contain none of the `ignored` texts (a command over many names
    prints one line per name it could not change and goes on with the others)."""
    return "\n".join(line for line in stderr.split("\n") if line and not any(text in line for text in ignored))
