"""Ports: what the use cases need from the outside world, named by intent (never by tool)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Mapping, Protocol, Sequence

from zfsapi.domain.authz import Principal
from zfsapi.domain.jobs import Job, JobError, JobProgress, JobState, ProgressMeter
from zfsapi.domain.models import (
    Bookmark,
    DatasetType,
    DiffEntry,
    Hold,
    Pool,
    PoolStatus,
    PropertyEntry,
    Snapshot,
    SpaceUsage,
)
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
from zfsapi.domain.ratelimit import Decision, Quota
from zfsapi.domain.replication import NamedRemote
from zfsapi.domain.transfer import (
    Compression,
    ReceiveSpec,
    ResumeSend,
    ResumeToken,
    ResumeTokenContents,
    SendSpec,
    StreamSession,
    StreamState,
)

Properties = dict[PropertyName, PropertyValue]


class Datasets(Protocol):
    """Filesystems and volumes.

    Every method raises NotFound / AlreadyExists / HasDependents / ZfsCommandFailed / ZfsUnavailable
    as ZFS's answer warrants.
    """

    async def create_dataset(self, name: DatasetName, *, properties: Properties, parents: bool) -> None: ...

    async def create_volume(
        self, name: DatasetName, *, size_bytes: int, properties: Properties, sparse: bool
    ) -> None: ...

    async def create_clone(self, source: SnapshotName, target: DatasetName, *, properties: Properties) -> None: ...

    async def destroy_dataset(self, name: DatasetName, *, flags: DestroyFlags) -> None: ...

    async def preview_destroy(self, name: DatasetName, *, flags: DestroyFlags) -> list[str]:
        """Every dataset and snapshot the destroy would remove (a dry run: nothing is destroyed). Raises what
        the destroy itself would raise."""
        ...

    async def list_datasets(
        self,
        root: DatasetName | None,
        *,
        recursive: bool,
        types: Sequence[DatasetType],
        properties: Sequence[PropertyName],
    ) -> list[tuple[str, dict[str, int | str]]]:
        """(full name, {property: value}) in ZFS's order; `root` itself is included."""
        ...

    async def get_properties(
        self, name: DatasetName | SnapshotName, *, property: PropertyName | None
    ) -> dict[str, PropertyEntry]: ...

    async def set_property(self, name: DatasetName, prop: PropertyName, value: PropertyValue) -> None: ...

    async def get_space(self, name: DatasetName) -> SpaceUsage: ...

    async def mount(self, name: DatasetName) -> bool:
        """Mount; False when it was mounted already."""
        ...

    async def unmount(self, name: DatasetName) -> bool:
        """Unmount; False when it was not mounted."""
        ...

    async def rename(self, old: DatasetName, new: DatasetName) -> None: ...


class Snapshots(Protocol):
    """Snapshots, holds and diffs."""

    async def create_snapshot(self, name: SnapshotName, *, recursive: bool, properties: Properties) -> None: ...

    async def list_snapshots(self, dataset: DatasetName, *, recursive: bool, details: bool = True) -> list[Snapshot]:
        """Oldest first (by createtxg). Without `details`, only name, guid and createtxg are read.

        Raises NotFound when the dataset does not exist."""
        ...

    async def destroy_snapshot(self, name: SnapshotName, *, recursive: bool) -> None: ...

    async def rollback(self, name: SnapshotName, *, destroy_newer: bool) -> None: ...

    async def hold(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None: ...

    async def release(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None: ...

    async def list_holds(self, name: SnapshotName, *, recursive: bool) -> list[tuple[str, Hold]]:
        """(snapshot full name, hold) pairs."""
        ...

    async def diff(self, older: SnapshotName, newer: SnapshotName | DatasetName) -> list[DiffEntry]: ...


class Bookmarks(Protocol):
    async def create_bookmark(self, source: SnapshotName | BookmarkName, bookmark: BookmarkName) -> None: ...

    async def list_bookmarks(self, dataset: DatasetName) -> list[str]:
        """Full names of the dataset's own bookmarks. Raises NotFound for a missing dataset."""
        ...

    async def list_bookmark_ids(self, dataset: DatasetName) -> list[Bookmark]:
        """The dataset's own bookmarks with the guid and createtxg of their snapshots, oldest first. Raises
        NotFound for a missing dataset."""
        ...

    async def destroy_bookmark(self, bookmark: BookmarkName) -> None: ...


class Pools(Protocol):
    async def list_pools(self) -> list[Pool]: ...

    async def pool_properties(self, pool: PoolName, *, property: PropertyName | None) -> dict[str, PropertyEntry]: ...

    async def scrub(self, pool: PoolName, *, stop: bool) -> None: ...

    async def pool_status(self, pool: PoolName) -> PoolStatus: ...

    async def version(self) -> str:
        """The OpenZFS userland version, e.g. '2.3.2'."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class RateLimiter(Protocol):
    """Shared or per-process GCRA state: one check-and-update per call, atomic."""

    async def hit(self, key: str, quota: Quota, cost: int = 1) -> Decision: ...


class SendPipe(Protocol):
    """A running `zfs send`: read chunks until b"" (then `finish` says whether it succeeded). An adapter's pipe may
    also offer its adapters a faster way to move the bytes between themselves (splicing); the application moves
    them only through these methods."""

    async def read(self) -> bytes: ...

    async def finish(self) -> None:
        """Wait for the process; raise the classified error when it failed."""
        ...

    async def kill(self) -> None:
        """Kill and reap (idempotent)."""
        ...


class ReceivePipe(Protocol):
    """A running `zfs receive`: write chunks, then `finish` (end of input, wait, raise on failure). As a SendPipe,
    it may offer adapters a faster way in."""

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> str | None:
        """End of input: wait, raise the classified error on failure, else the snapshot received."""
        ...

    async def kill(self) -> None:
        """Kill and reap (idempotent)."""
        ...


class Transfers(Protocol):
    """The one-shot side of send/receive: estimates, resume tokens, aborting a partial receive, encryption."""

    async def estimate(self, spec: SendSpec) -> int:
        """Bytes the send would write; raises the classified error zfs gives for the snapshots and flags."""
        ...

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents:
        """What the token continues; StateConflict when zfs refuses it (forged, corrupt or foreign)."""
        ...

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        """The dataset's receive_resume_token; None without a partial receive."""
        ...

    async def abort_receive(self, dataset: DatasetName) -> None: ...

    async def is_encrypted(self, dataset: DatasetName) -> bool: ...


class SendFileDirs(Protocol):
    """The per-user subdirectories of the transfer directories."""

    async def ensure(self, root: str, name: str, param: str) -> None:
        """Make `root/name` a directory (mode 0700) unless it is one; anything else there, a symlink included
        (never followed), is refused as InvalidArgument of `param`."""
        ...

    async def check(self, root: str, path: str, param: str, *, exists: bool) -> None:
        """Everything opening the send file `path` inside `root` would refuse, without opening it: an existing
        regular file to read (`exists`), else a new name to write. Raises InvalidArgument of `param` (outside
        `root` once symlinks are resolved, a symlink, FIFO, device or directory, a path the filesystem cannot
        take), NotFound (its directory; the file to read) or AlreadyExists (the file to write)."""
        ...


class Pipelines(Protocol):
    """zfs send/receive running for the length of a transfer: joined to the caller (HTTP) or to send files."""

    async def open_send(self, source: SendSpec | ResumeSend) -> SendPipe:
        """Start the send; raise the classified error if it fails before producing its first byte."""
        ...

    async def open_receive(self, spec: ReceiveSpec, compression: Compression = Compression.NONE) -> ReceivePipe:
        """`compression`: what is written is compressed so (it is decompressed before zfs receive)."""
        ...

    async def relay(self, send: SendPipe, receive: ReceivePipe, moved: Callable[[int], float]) -> None:
        """Move the send's stream into the receive until the send ends (its failure raised); the receive is not
        finished. After each step `moved(nbytes)` is called, from any thread, and answers how many seconds to
        pause before the next (a rate limit; cancelled, a pause ends at once). Either end may be any adapter's."""
        ...

    async def send_to_file(self, spec: SendSpec, path: str, root: str, compression: Compression,
                           progress: ProgressMeter | None = None, mark: str | None = None) -> tuple[int, str]:
        """Write the send (compressed) to a new file at `path` inside `root`: (size, sha256 hex). A failed send
        leaves no file. `progress` counts the send's own (uncompressed) bytes. `mark` (a job's id) is recorded
        with the complete file, for `sent_file` to find when that job runs again."""
        ...

    async def sent_file(self, path: str, root: str, mark: str) -> tuple[int, str] | None:
        """(size, sha256 hex) of the complete file at `path` inside `root` that a `send_to_file` with this `mark`
        wrote, unchanged since; None when there is none (no file, another writer's, or changed)."""
        ...

    async def receive_from_file(self, spec: ReceiveSpec, path: str, root: str, compression: Compression,
                                progress: ProgressMeter | None = None) -> str | None:
        """The snapshot received. `progress` counts the bytes read from the file, of its size."""
        ...


class StreamSessions(Protocol):
    """Stream sessions by id: in this process or in Redis (shared by every worker and server)."""

    async def create(self, session: StreamSession, retain: float) -> None: ...

    async def get(self, stream_id: str) -> StreamSession | None: ...

    async def claim(self, stream_id: str, now: float) -> StreamSession | None:
        """Atomically move a pending, unexpired session to active; None when it is not claimable."""
        ...

    async def update(self, stream_id: str, *, state: StreamState | None = None, bytes: int | None = None,
                     error: str | None = None) -> StreamSession | None:
        """Set what is given (None leaves a field as it is); returns the session as stored (its state may say
        cancelled), None when it is gone."""
        ...

    async def list(self) -> list[StreamSession]: ...


class JobStore(Protocol):
    """Job records shared by every worker and server using the store (an embedded file, or Redis). Every change
    of state is atomic; a job runs under a lease only the worker holding it may renew or finish. Each claim gives
    the job a new fencing token (`Job.fence`, one more than the last): the holder's writes carry the token its
    claim got, and once another claim has moved it they are refused, whatever the holder's worker id."""

    async def add(self, job: Job, *, max_per_owner: int | None = None) -> None:
        """Store a new job.

        Raises:
            ValueError: a job with its id exists.
            TooManyJobs: its owner has `max_per_owner` jobs queued or running already (checked atomically)."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   scope: tuple[str, ...] | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[Job], int]:
        """Newest first (by created_at, then job_id), filtered; with the total that matched before the page.
        `scope` (dataset prefixes) keeps the jobs with a name under one of them, or with no name at all, found by
        an index: the candidates a scoped caller may see (`Job.visible_to` decides)."""
        ...

    async def claim(self, worker: str, now: float, lease_until: float) -> Job | None:
        """A queued job, atomically made running and leased to `worker` (started_at set on its first claim,
        attempts + 1, fence + 1); None when nothing is queued. Fair across owners: the owner with the fewest
        running jobs first, then the owner whose oldest queued job is oldest; that owner's oldest job."""
        ...

    async def renew(self, job_id: str, worker: str, lease_until: float, progress: JobProgress, *,
                    fence: int) -> Job | None:
        """Extend the lease and store the progress; the job as stored (its cancel_requested says whether to
        stop). None when `worker` no longer holds the lease under `fence` (interrupted, claimed again, gone)."""
        ...

    async def finish(self, job_id: str, worker: str, state: JobState, now: float, *, fence: int,
                     progress: JobProgress, result: dict[str, Any] | None = None,
                     error: JobError | None = None) -> Job | None:
        """Record the end of a job `worker` holds under `fence`; also a success that comes after the lease lapsed,
        while no claim has moved the token (the job interrupted or queued again, not cancelled). None when the
        outcome is refused."""
        ...

    async def cancel(self, job_id: str, now: float) -> Job | None:
        """A queued job is cancelled at once; a running one gets cancel_requested (its worker stops it); a
        finished one is left as it is. The job as stored; None when there is no such job."""
        ...

    async def interrupt_lapsed(self, now: float, *, grace: float = 0.0) -> list[Job]:
        """Every running job whose lease ended more than `grace` seconds before `now` becomes interrupted
        (cancelled when a cancel was requested; `Job.lapse`); those jobs as stored."""
        ...

    async def requeue(self, job_id: str, *, fence: int | None = None) -> Job | None:
        """An interrupted job (not cancel_requested) queued again to resume; with `fence`, only while its token is
        still that one (no claim since). None when it is not requeued."""
        ...

    async def purge(self, finished_before: float) -> int:
        """Delete finished jobs that finished before the time; how many."""
        ...


class ReplicaSender(Protocol):
    """Where a replication comes from (this host): its snapshots and bookmarks, its sends, and the holds and
    bookmarks that keep the next incremental's base. With ReplicaSide, the one interface a replication's steps use
    on each side."""

    async def snapshots(self, dataset: DatasetName, *, recursive: bool = False) -> list[Snapshot]:
        """Oldest first, with guid and createtxg. Raises NotFound for a missing dataset."""
        ...

    async def bookmarks(self, dataset: DatasetName) -> list[Bookmark]:
        """The dataset's own bookmarks with their snapshots' guid and createtxg, oldest first."""
        ...

    async def plan_send(self, spec: SendSpec) -> SendSpec:
        """The send as it will run (raw for an encrypted dataset)."""
        ...

    async def estimate(self, spec: SendSpec) -> int: ...

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents: ...

    async def open_send(self, source: SendSpec | ResumeSend) -> SendPipe: ...

    async def relay(self, send: SendPipe, receive: ReceivePipe, moved: Callable[[int], float]) -> None:
        """As Pipelines.relay."""
        ...

    async def hold(self, snapshot: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        """Hold (a hold already there with this tag is fine)."""
        ...

    async def release(self, snapshot: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        """Release (no such hold or snapshot is fine)."""
        ...

    async def bookmark(self, snapshot: SnapshotName, mark: BookmarkName) -> None:
        """Bookmark (a bookmark already there by this name is fine)."""
        ...

    async def destroy_bookmark(self, mark: BookmarkName) -> None: ...


class ReplicaSide(Protocol):
    """Where a replication lands: datasets on this host, on an SSH host (`zfs` run there) or on another zfsapi
    (its JSON-RPC methods and POST /stream). Names are the destination's."""

    async def snapshots(self, dataset: DatasetName, *, details: bool = False) -> list[Snapshot] | None:
        """The dataset's own snapshots, oldest first, with guid and createtxg (and with `details` their creation
        and userrefs too: what a target's retention reads); None when it does not exist."""
        ...

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        """The partial receive's token; None without one (or without the dataset)."""
        ...

    async def abort_receive(self, dataset: DatasetName) -> None: ...

    async def open_receive(self, spec: ReceiveSpec, compression: Compression) -> ReceivePipe:
        """A running receive there: the caller writes the (uncompressed) send stream; `compression` applies on
        the wire only."""
        ...

    async def hold(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        """Hold (a hold already there with this tag is fine)."""
        ...

    async def release(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        """Release (no such hold or snapshot is fine)."""
        ...

    async def destroy_snapshots(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        """Destroy these snapshots of one dataset there (a policy target's retention). Those refused (held, a
        clone's origin, busy) are left and returned with the reason ({short: reason}); the others are destroyed;
        one that no longer exists is skipped. Raises ZfsUnavailable when the side cannot be reached."""
        ...


class Replicas(Protocol):
    """The remotes a migration may name (the configuration's, as it is now), and the replica side of each."""

    def resolve(self, remote: str, who: Principal) -> NamedRemote:
        """The remote that `remote` (a name, URL or ssh string) names, if `who` may replicate to it.

        Raises:
            InvalidArgument: (param `remote`) not a listed remote (for an unrestricted admin: unless unlisted ones
                are allowed), or one this caller cannot be given credentials for.
        """
        ...

    def side(self, target: NamedRemote | None, who: Principal) -> ReplicaSide:
        """The replica side on `target` (None: this host), its calls made as `who` where they carry no
        configured credentials."""
        ...
