"""Send and receive: what a send or a receive is (SendSpec, ResumeSend, ReceiveSpec), resume tokens, stream
sessions and their states, and the path rule for send files (pure: the filesystem checks live in the adapter)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace
from enum import Enum

from .authz import Principal
from .errors import InvalidArgument, PermissionDenied
from .names import BookmarkName, DatasetName, SnapshotName

# a receive_resume_token: "<version>-<checksum>-<packed length>-<compressed nvlist>", all hex
# (libzfs zfs_send_resume_token_to_nvlist)
_RESUME_TOKEN = re.compile(r"[0-9a-f]+(-[0-9a-f]+){3}")
MAX_RESUME_TOKEN = 65536


class Compression(Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def suffix(self) -> str:
        return {"none": "", "gzip": ".gz", "zstd": ".zst"}[self.value]

    @classmethod
    def by_suffix(cls, path: str) -> Compression:
        if path.endswith(".gz"):
            return cls.GZIP
        if path.endswith((".zst", ".zstd")):
            return cls.ZSTD
        return cls.NONE


@dataclass(frozen=True, slots=True)
class SendSpec:
    """One send: full (from_ None) or incremental from a snapshot or bookmark; with `intermediates` (-I instead
    of -i) every snapshot between the two goes too (from a snapshot only).

    Flags chosen for the caller: large blocks and embedded data always (-L -e), the blocks as they are stored
    on disk (-c) unless turned off, raw (-w) for encrypted datasets or when asked. An incremental chain keeps
    its flags by being sent with the same options; -L, once used, must stay on for the chain.
    """

    snapshot: SnapshotName
    from_: SnapshotName | BookmarkName | None = None
    recursive: bool = False
    raw: bool = False
    native_compressed: bool = True
    intermediates: bool = False

    def __post_init__(self) -> None:
        if self.from_ is not None and self.recursive and isinstance(self.from_, BookmarkName):
            raise InvalidArgument("from_snapshot", "a recursive send cannot start from a bookmark")
        if self.intermediates and isinstance(self.from_, BookmarkName):
            # zfs: "multiple snapshots cannot be sent from a bookmark"
            raise InvalidArgument("from_snapshot", "intermediate snapshots cannot be sent from a bookmark")

    def flags(self) -> list[str]:
        out = ["-L", "-e"]
        if self.native_compressed:
            out.append("-c")
        if self.raw:
            out.append("-w")
        if self.recursive:
            out.append("-R")
        return out

    def with_raw(self, raw: bool) -> SendSpec:
        return replace(self, raw=raw)


@dataclass(frozen=True, slots=True)
class ResumeToken:
    """A zfs receive_resume_token as text: only its syntax is checked here (what it continues is ZFS's to say)."""

    value: str

    @classmethod
    def parse(cls, text: str) -> ResumeToken:
        """Raises InvalidArgument."""
        if len(text) > MAX_RESUME_TOKEN or not _RESUME_TOKEN.fullmatch(text):
            raise InvalidArgument("resume_token", "not a zfs receive_resume_token")
        return cls(text)


@dataclass(frozen=True, slots=True)
class ResumeSend:
    """A send that continues an interrupted receive (`zfs send -t TOKEN`).

    `dataset`, `snapshot`, `raw` and `native_compressed` are what the caller expects the token to continue;
    they are checked against the token before the send is accepted, and filled in from it.
    """

    token: ResumeToken
    dataset: DatasetName | None = None
    snapshot: SnapshotName | None = None
    raw: bool = False
    native_compressed: bool = True


@dataclass(frozen=True, slots=True)
class ReceiveSpec:
    """One receive into `target`: -F when `force`, -s (keep a resume token on failure) when `resumable`;
    `resume_token` is the token of the target's partial receive that the stream continues, if any."""

    target: DatasetName
    force: bool = False
    resumable: bool = True
    resume_token: ResumeToken | None = None
    # What a stream says about where and how its filesystems are mounted is taken only for a `trusted`
    # receiver (an unrestricted admin). For anyone else these properties of the stream are not applied: they
    # inherit from the target's parent, inside the receiver's scope and set by an admin (`zfs receive -x`).
    # A stream sent with -p/-R could otherwise mount a filesystem over /etc, share it, or honour the setuid
    # binaries and device nodes it brings. (-x, not -o: `-o setuid=off` fails on a volume's stream.)
    trusted: bool = False


UNTRUSTED_RECEIVE_EXCLUDED = ("mountpoint", "sharenfs", "sharesmb", "setuid", "devices", "zoned")


class StreamState(Enum):
    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self not in (StreamState.PENDING, StreamState.ACTIVE)


class Operation(Enum):
    SEND = "send"
    RECEIVE = "receive"


#: what a stream session moves: a send (new or resumed) or a receive
StreamTransfer = SendSpec | ResumeSend | ReceiveSpec


@dataclass(frozen=True, slots=True)
class StreamSession:
    """A single-use capability for one HTTP transfer, as kept in the session store."""

    stream_id: str
    username: str
    created: float
    expires_at: float
    transfer: StreamTransfer
    state: StreamState = StreamState.PENDING
    bytes: int = 0
    error: str | None = None

    @property
    def operation(self) -> Operation:
        return Operation.RECEIVE if isinstance(self.transfer, ReceiveSpec) else Operation.SEND

    def effective_state(self, now: float) -> StreamState:
        if self.state is StreamState.PENDING and now >= self.expires_at:
            return StreamState.EXPIRED
        return self.state


@dataclass(frozen=True, slots=True)
class ResumeTokenContents:
    """What `zfs send -nvt TOKEN` says a receive_resume_token continues."""

    toname: str  # dataset@snapshot the stream leads to
    toguid: int
    fromguid: int | None
    raw: bool
    compressed: bool
    bytes_done: int
    size: int | None = None  # the whole stream's estimated size (bytes_done of it already received)


def size_human(n: int) -> str:
    value = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1024
    return f"{n}B"


_OWNER = re.compile(r"[A-Za-z0-9_.-]+")


def file_owner(principal: Principal) -> str | None:
    """The subdirectory of the transfer directories that holds the caller's send files: None (the whole
    directory) for an admin without a dataset scope; the principal's name for everyone else, so a file sent
    by one scope is never received through another. PermissionDenied when that name is not a safe single path
    component."""
    if principal.unrestricted_admin:
        return None
    if not _OWNER.fullmatch(principal.name) or principal.name in (".", ".."):
        raise PermissionDenied("send files", None,
                               f"the user name {principal.name!r} cannot name a transfer subdirectory")
    return principal.name


@dataclass(frozen=True, slots=True)
class Confined:
    """A send file's path as `confine` accepted it."""

    root: str  # the transfer directory
    owner: str | None  # the caller's subdirectory of it (None: the whole directory)
    path: str  # normalized, absolute, inside `directory`

    @property
    def directory(self) -> str:
        return posixpath.join(self.root, self.owner) if self.owner else self.root


def confine(path: str, roots: tuple[str, ...], param: str, owner: str | None = None) -> Confined:
    """Where a send file path lies, when it lies inside one of `roots` (inside the `owner` subdirectory of it
    when an owner is given); InvalidArgument otherwise. Relative paths are taken relative to the first root
    (its `owner` subdirectory); no '..' component is accepted at all. The adapter then resolves symlinks and
    opens with O_NOFOLLOW, so this is the first of two checks."""
    if not roots:
        raise InvalidArgument(param, "no transfer directories are configured (transfer.directories)")
    if not path or "\0" in path or len(path.encode()) > 4096:
        raise InvalidArgument(param, "not a usable path")
    if ".." in path.split("/"):
        raise InvalidArgument(param, "'..' is not allowed in transfer paths")
    homes = [(posixpath.normpath(root), owner) for root in roots]
    where = [posixpath.join(root, owner) if owner else root for root, _ in homes]
    full = posixpath.normpath(path if path.startswith("/") else posixpath.join(where[0], path))
    for (root, _), directory in zip(homes, where):
        if full.startswith(directory.rstrip("/") + "/"):
            return Confined(root, owner, full)
    mine = f"your subdirectory {owner}/ of " if owner else ""
    raise InvalidArgument(param, f"must lie inside {mine}a transfer directory ({', '.join(roots)})")
