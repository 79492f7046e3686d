"""Replication: where a dataset is replicated to (this host, an SSH host, another zfsapi over HTTP)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from .authz import Principal
from .errors import InvalidArgument, StateConflict
from .models import Bookmark, Snapshot
from .names import BookmarkName, DatasetName, SnapshotName
from .transfer import Compression

HOLD_TAG = "zfsapi:replication"

# A host name (RFC 1123 labels), never starting with "-" (it would be read as an ssh option); its last label
# starts with a letter, as a top-level domain does, so no number form (`127.1`, `0x7f000001`) that the resolver
# would read as an address passes as a name.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z)(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.?")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_ZONE = re.compile(r"[A-Za-z0-9]{1,32}")  # an IPv6 zone id: an interface name or number, nothing a shell reads
# scheme://host[:port][/], nothing else: no user info, path, query or fragment
_URL = re.compile(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?/?")
#: a remote's name in replication.remotes: never an address (no dot, colon or @, starts with a letter), never an
#: option
REMOTE_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
_NOT_A_REMOTE = "not a remote: a name from replication.remotes, user@host, host or http(s)://host[:port]"


class RemoteKind(Enum):
    SSH = "ssh"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Remote:
    """A validated `remote`: `user@host` / `host` (SSH, OpenSSH's own port and keys) or `http(s)://host[:port]`
    (another zfsapi). Nothing here can be read as an option by ssh or by a shell, or carry a path, query or
    credentials: the host is a host name, or an IP address (an IPv6 zone id only over SSH, letters and digits)."""

    kind: RemoteKind
    host: str
    user: str | None = None
    port: int | None = None
    scheme: str | None = None  # http or https

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port else "")

    @property
    def ssh_destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def on_this_host(self) -> bool:
        """A loopback (or unspecified) address or `localhost`: the remote's pools are this host's own."""
        name = self.host.split("%", 1)[0].rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return ip.is_loopback or ip.is_unspecified or (mapped is not None and (mapped.is_loopback
                                                                              or mapped.is_unspecified))

    def __str__(self) -> str:
        return self.url if self.kind is RemoteKind.HTTP else self.ssh_destination

    @classmethod
    def parse(cls, text: str, param: str = "remote") -> Remote:
        if not isinstance(text, str) or not text or len(text) > 300 or not text.isascii() \
                or any(c.isspace() or not c.isprintable() for c in text):
            raise InvalidArgument(param, _NOT_A_REMOTE)
        if "://" in text:
            return cls._parse_url(text, param)
        user, _, host = text.rpartition("@")
        if "@" in text and not _USER.fullmatch(user):
            raise InvalidArgument(param, f"{user!r} is not a valid user name")
        if not _is_host(host, zone=True):
            raise InvalidArgument(param, f"{host!r} is not a host name or IP address")
        return cls(RemoteKind.SSH, _normal(host), user or None)

    @classmethod
    def _parse_url(cls, text: str, param: str) -> Remote:
        m = _URL.fullmatch(text)
        if m is None:
            raise InvalidArgument(param, "a URL remote is http(s)://host[:port] only (no user info, path or query: "
                                         "credentials come from the config)")
        scheme, host, port = m.group(1), m.group(2), m.group(3)
        host = host[1:-1] if host.startswith("[") else host
        if not _is_host(host, zone=False) or (":" in host) != m.group(2).startswith("["):
            raise InvalidArgument(param, f"{host!r} is not a host name or IP address")
        if port is not None and not 1 <= int(port) <= 65535:
            raise InvalidArgument(param, f"port {port} is not 1-65535")
        return cls(RemoteKind.HTTP, _normal(host), None, int(port) if port else None, scheme)


def _normal(host: str) -> str:
    """A valid host as it compares: a name in lower case, an address in its canonical form (zone kept)."""
    address, percent, zone_id = host.partition("%")
    try:
        return str(ipaddress.ip_address(address)) + percent + zone_id
    except ValueError:
        return host.lower()


def _is_host(host: str, *, zone: bool) -> bool:
    if not host.isascii():
        return False
    address, percent, zone_id = host.partition("%")
    if percent and (not zone or not _ZONE.fullmatch(zone_id)):
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return not percent and bool(_HOSTNAME.fullmatch(host))
    return not percent or isinstance(ip, ipaddress.IPv6Address)


@dataclass(frozen=True, slots=True)
class NamedRemote:
    """A remote as the config lists it: its `name` (None: an unlisted remote an unrestricted admin named), the
    validated `remote`, extra ssh `options` for it, and whether it has `credentials` (an HTTP remote's username
    and password or token; the values stay in the adapter)."""

    name: str | None
    remote: Remote
    options: tuple[str, ...] = ()
    credentials: bool = False

    def __post_init__(self) -> None:
        if self.remote.kind is RemoteKind.HTTP and not self.credentials and not self.remote.on_this_host:
            # without credentials the caller's own token (signed here) is sent: only ever to this host
            raise InvalidArgument("remote", f"the zfsapi at {self.remote.url} has no credentials in "
                                            "replication.remotes (only a loopback URL, this host, may go without)")


@dataclass(frozen=True, slots=True)
class RemoteBook:
    """replication.remotes and replication.allow_unlisted_remotes: which remotes a migration may name."""

    remotes: tuple[NamedRemote, ...] = ()
    allow_unlisted: bool = False

    def resolve(self, text: str, who: Principal) -> NamedRemote:
        """The remote `text` names: a listed name, or the URL or ssh string of a listed remote. Anything else only
        for an unrestricted admin, only where unlisted remotes are allowed, and only over SSH.

        Raises:
            InvalidArgument: (param `remote`) not a remote, or not one this caller may name.
        """
        found = next((r for r in self.remotes if r.name == text), None)
        if found is not None:
            return found
        if REMOTE_NAME.fullmatch(text) and not who.unrestricted_admin:
            raise InvalidArgument("remote", f"{text!r} is not a remote listed in replication.remotes")
        remote = Remote.parse(text)
        found = next((r for r in self.remotes if r.remote == remote), None)
        if found is not None:
            return found
        if not who.unrestricted_admin:
            raise InvalidArgument("remote", f"{remote} is not a remote listed in replication.remotes")
        if not self.allow_unlisted:
            raise InvalidArgument("remote", f"{remote} is not a remote listed in replication.remotes (and "
                                            "replication.allow_unlisted_remotes is off)")
        if remote.kind is RemoteKind.HTTP:  # its credentials (or leave to get the caller's token) come from there
            raise InvalidArgument("remote", f"{remote} is not a remote listed in replication.remotes: another "
                                            "zfsapi is called only with the credentials listed there")
        return NamedRemote(None, remote)


# ---- what to replicate, and how ----

#: auto snapshots taken for a replication are named like snapshot_create_auto's (`zfsapi-repl_YYYY-MM-DD-HH-MM`)
SNAPSHOT_TAG = "zfsapi-repl"
#: the bookmark a synced replication keeps of its snapshot on the source: `dataset#zfsapi-repl-<short>`
BOOKMARK_PREFIX = "zfsapi-repl-"
MEGABYTE = 1_000_000  # `limit` is in MB/s (decimal, as network rates are)
#: the slowest `limit` (1 KiB/s: slower is no transfer at all) and the fastest (1 TB/s: faster is no limit)
MIN_LIMIT = 1024 / MEGABYTE
MAX_LIMIT = 1e6


@dataclass(frozen=True, slots=True)
class ReplicationSpec:
    """A validated migration_create: replicate `source` (a snapshot, or a dataset: snapshot it now) to
    `destination` here or on `remote`, at most `limit` MB/s on the wire, `compression` on the wire to a remote,
    `recursive` with every child (-R), and with `sync` the snapshot held on both sides (HOLD_TAG) and bookmarked
    on the source so that the next incremental always has its base."""

    source: SnapshotName | DatasetName
    destination: DatasetName
    remote: str | None = None  # a remote's name, URL or ssh string, checked for syntax (see RemoteBook.resolve)
    limit: float | None = None
    compression: Compression = Compression.NONE
    recursive: bool = False
    sync: bool = True

    def __post_init__(self) -> None:
        if self.limit is not None and not (isinstance(self.limit, (int, float))
                                           and MIN_LIMIT <= self.limit <= MAX_LIMIT):  # NaN fails both
            raise InvalidArgument("limit", f"must be a number of MB/s from {MIN_LIMIT:g} (1 KiB/s) to "
                                           f"{MAX_LIMIT:g}, or null for no limit")
        if self.remote is not None and not REMOTE_NAME.fullmatch(self.remote):
            Remote.parse(self.remote)
        if self.remote is None:
            self.check_target(None)

    def check_target(self, target: NamedRemote | None) -> None:
        """On this host (no remote, or a remote whose address is this host's), the destination must lie outside
        the source and not contain it.

        Raises:
            InvalidArgument: (param `destination`) it does not.
        """
        if target is not None and not target.remote.on_this_host:
            return
        if self.destination.is_within(self.source_dataset) or self.source_dataset.is_within(self.destination):
            raise InvalidArgument("destination", f"must lie outside the source {self.source_dataset} on this host "
                                                 "(and not contain it)")

    @property
    def source_dataset(self) -> DatasetName:
        return self.source.dataset if isinstance(self.source, SnapshotName) else self.source

    @property
    def bytes_per_second(self) -> float | None:
        return None if self.limit is None else self.limit * MEGABYTE

    @classmethod
    def parse(cls, *, source: str, destination: str, remote: str | None = None, limit: float | None = None,
              compression: str | None = None, recursive: bool = False, sync: bool = True) -> ReplicationSpec:
        """From the wire's values; InvalidArgument names the parameter."""
        try:
            src: SnapshotName | DatasetName = (SnapshotName.parse(source) if isinstance(source, str) and "@" in source
                                               else DatasetName.parse(source))
        except InvalidArgument as exc:
            raise exc.for_param("source") from None
        try:
            dst = DatasetName.parse(destination)
        except InvalidArgument as exc:
            raise exc.for_param("destination") from None
        try:
            wire = Compression.NONE if compression is None else Compression(compression)
        except ValueError:
            names = ", ".join(c.value for c in Compression if c is not Compression.NONE)
            raise InvalidArgument("compression", f"must be one of {names}, or null") from None
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
            raise InvalidArgument("limit", "must be a number of MB/s, or null")
        if remote is not None and not isinstance(remote, str):
            raise InvalidArgument("remote", _NOT_A_REMOTE)
        return cls(src, dst, remote, limit, wire, recursive, sync)


class ReplicationMode(Enum):
    FULL = "full"
    INCREMENTAL = "incremental"
    UP_TO_DATE = "up_to_date"


@dataclass(frozen=True, slots=True)
class ReplicationPlan:
    """What to send: FULL (no base), INCREMENTAL from `base` (a source snapshot, or a bookmark of it when the
    snapshot is gone) whose destination twin is `common`, or nothing (UP_TO_DATE)."""

    mode: ReplicationMode
    snapshot: SnapshotName  # the source snapshot the destination will hold
    base: SnapshotName | BookmarkName | None = None
    common: str | None = None  # the destination's snapshot with the base's guid (full name)
    base_guid: int | None = None


def plan_replication(wanted: Snapshot, source: Sequence[Snapshot], destination: Sequence[Snapshot] | None, *,
                     bookmarks: Sequence[Bookmark] = (), recursive: bool = False) -> ReplicationPlan:
    """Decide a replication of `wanted` given the source dataset's snapshots and bookmarks (oldest first) and
    the destination's snapshots (oldest first; None: it does not exist). Snapshots are matched by guid.

    Raises:
        StateConflict: the destination diverged (its newest snapshot is not in the source's history, it
            shares no snapshot with the source, or it is ahead of `wanted`); `reason` names the snapshots.
    """
    name = SnapshotName.parse(wanted.name)
    if destination is None:
        return ReplicationPlan(ReplicationMode.FULL, name)
    if not destination:
        raise StateConflict(f"the destination exists and has no snapshot in common with {wanted.name} (it has "
                            "no snapshots): destroy it or choose another destination", snapshot=wanted.name)
    newest = destination[-1]
    snaps = {s.guid: s for s in source}
    marks = {b.guid: b for b in bookmarks}
    if newest.guid not in snaps and newest.guid not in marks:
        common = next((d for d in reversed(destination) if d.guid in snaps or d.guid in marks), None)
        shared = f"the newest snapshot both have is {common.name}" if common else "they share no snapshot"
        raise StateConflict(f"the destination has diverged: its newest snapshot {newest.name} is not in the "
                            f"history of {name.dataset} ({shared}); roll it back or choose another destination",
                            destination_snapshot=newest.name, common=common.name if common else None)
    if newest.guid == wanted.guid or any(d.guid == wanted.guid for d in destination):
        return ReplicationPlan(ReplicationMode.UP_TO_DATE, name, common=newest.name, base_guid=newest.guid)
    base_txg = snaps[newest.guid].createtxg if newest.guid in snaps else marks[newest.guid].createtxg
    if base_txg >= wanted.createtxg:
        raise StateConflict(f"the destination is ahead: its newest snapshot {newest.name} is newer than "
                            f"{wanted.name}", destination_snapshot=newest.name)
    if newest.guid in snaps:
        base: SnapshotName | BookmarkName = SnapshotName.parse(snaps[newest.guid].name)
    elif recursive:
        raise StateConflict(f"the destination's newest snapshot {newest.name} survives on the source only as the "
                            f"bookmark {marks[newest.guid].name}, and a recursive send cannot start from a bookmark",
                            destination_snapshot=newest.name)
    else:
        base = BookmarkName.parse(marks[newest.guid].name)
    return ReplicationPlan(ReplicationMode.INCREMENTAL, name, base, newest.name, newest.guid)


def plan_package_retry(first: ReplicationPlan, source: Sequence[Snapshot],
                       destination: Sequence[Snapshot] | None) -> ReplicationPlan:
    """The plan that brings a recursive (-R) replication in step again after its package was cut and the
    partial receives resumed: its datasets may stand at different snapshots, so the same -R -I package is sent
    again (zfs skips the snapshots a dataset already has), from the first plan's base or, when that was a full
    send, from the oldest snapshot the destination received. A destination that is still missing gets the full
    send again. (A child that was never created, when the cut fell in the top dataset of a full send, makes zfs
    refuse: the destination must then be destroyed and the replication run again.)"""
    if first.base is not None or destination is None:
        return first
    snaps = {s.guid: s for s in source}
    oldest = next((d for d in destination if d.guid in snaps), None)
    if oldest is None:
        return first
    if oldest.guid == next(s.guid for s in source if s.name == first.snapshot.value):
        return ReplicationPlan(ReplicationMode.UP_TO_DATE, first.snapshot, common=oldest.name, base_guid=oldest.guid)
    return ReplicationPlan(ReplicationMode.INCREMENTAL, first.snapshot, SnapshotName.parse(snaps[oldest.guid].name),
                           oldest.name, oldest.guid)
