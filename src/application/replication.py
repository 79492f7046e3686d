"""Replication: a snapshot (and with `recursive` its children) sent from this host to a destination here, over
SSH or on another zfsapi, full or incremental as `plan_replication` decides, resumed from the receiver's token
when a transfer is cut, and with `sync` holds and a bookmark kept for the next incremental.

Split as zrepl is: the pure plan (zfsapi.domain.replication), the steps between a sender and a receiver
(replication_steps: planning, transfer; replication_holds: holds and bookmarks), the sender (this host,
replication_sender) and the receiver (the ReplicaSide of the destination), and here the driver: the steps' order
and the retries of a cut transfer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import PermissionDenied, ServiceUnavailable, ZfsCommandFailed
from zfsapi.domain.jobs import Job, Origin, ProgressMeter
from zfsapi.domain.names import SnapshotName
from zfsapi.domain.replication import (
    SNAPSHOT_TAG,
    NamedRemote,
    ReplicationMode,
    ReplicationPlan,
    ReplicationSpec,
)
from zfsapi.domain.transfer import SendSpec

from .jobs import Jobs
from .ports import Bookmarks, Clock, Pipelines, Replicas, Snapshots, Transfers
from .replication_holds import HOLD, KeepBase
from .replication_sender import LocalSender
from .replication_steps import Pacer as Pacer  # re-exported: the pacer's callers' name for it
from .replication_steps import Planning, Run, Transfer
from .snapshots import CreateAutoSnapshot

METHOD = "migration_create"
#: what a cut transfer raises (zfs on either side, or the connection to a remote); retried when a token is left
_CUT = (ZfsCommandFailed, ServiceUnavailable, OSError)
_HOLD = HOLD  # the hold tag a replication keeps its bases with


@dataclass(frozen=True, slots=True)
class ReplicationResult:
    source_snapshot: str  # the source snapshot the destination now holds
    destination: str
    mode: ReplicationMode  # of the first transfer this run made (a resumed one included); up_to_date: none
    from_snapshot: str | None  # the incremental's base on the source (a snapshot or bookmark)
    bytes: int  # relayed by this run (every attempt)
    resumed: bool  # a partial receive was continued from its token
    duration: float  # seconds


class _Driver:
    """The steps of one replication in their order: finish the partial receives the destination holds, plan,
    send; a cut transfer is retried from the receiver's token up to `retries` times, with exponential backoff."""

    def __init__(self, retries: int, backoff: float) -> None:
        self._retries, self._backoff = retries, backoff
        self._planning, self._transfer = Planning(), Transfer()

    async def replicate(self, run: Run, snapshot: SnapshotName) -> ReplicationPlan:
        """The plan whose snapshot the destination now has."""
        attempt = 0
        while True:
            try:
                plan = await self._next_plan(run, snapshot)
                if plan.mode is not ReplicationMode.UP_TO_DATE:
                    run.first = run.first or plan
                    if run.spec.recursive:
                        run.package = run.package or plan
                    await self._transfer.send(run, plan)
                return plan
            except _CUT:
                if attempt >= self._retries or not await self._planning.partial(run):
                    raise
                await asyncio.sleep(min(self._backoff * 2 ** attempt, 60.0))
                attempt += 1

    async def _next_plan(self, run: Run, snapshot: SnapshotName) -> ReplicationPlan:
        """Finish the partial receives the destination holds, then plan (both looked up at once: a plan made
        before a resume is made again after it)."""
        partial, plan, sending = await asyncio.gather(
            self._planning.partial(run), self._planning.plan(run, snapshot),
            run.sender.plan_send(SendSpec(snapshot)), return_exceptions=True)
        if isinstance(partial, BaseException):
            raise partial
        if isinstance(sending, BaseException):
            raise sending
        run.raw = sending.raw
        if not partial:
            if isinstance(plan, BaseException):
                raise plan
            return plan
        for target, token in partial:
            await self._transfer.resume(run, target, token)
        return await self._planning.plan(run, snapshot)


class Replicate:
    """Replicate a snapshot (or a dataset: snapshotted now, named like snapshot_create_auto's with the tag
    `zfsapi-repl`) to a destination on this host, an SSH host or another zfsapi.

    Full when the destination does not exist; incremental (-I: intermediate snapshots too) from the newest
    snapshot both sides share by guid, or from the source's bookmark of it; nothing when the destination has the
    snapshot already. A partial receive on the destination is resumed first (its token checked to continue this
    source). A transfer cut off is resumed from the receiver's token up to `retries` times, with exponential
    backoff. Cancelled, both zfs processes are killed and reaped; the destination keeps its resume token.

    Receives are resumable (-s). -F is used only where it cannot destroy anything the plan did not account
    for: a full receive creates the destination (no -F); a single dataset's incremental takes -F, since the
    plan has checked that the destination's newest snapshot is the base, so it only rolls back changes made to
    the replica since then (atime, a browsing user), which would otherwise refuse the stream, as syncoid does.
    A recursive incremental is sent without -F: with -R, -F would also destroy the destination's snapshots and
    children that the source no longer has.

    With `sync`, the new snapshot is held (tag zfsapi:replication) on both sides, the previous base's holds are
    released, and the source keeps a bookmark `zfsapi-repl-<short>` of it (the previous one is destroyed). The
    hold tag is shared by every replication of the source: two destinations from one source should not use
    `sync` with different schedules (the first to move releases the other's base hold; its bookmark remains).

    Raises:
        PermissionDenied: the source or destination lies outside the caller's scope.
        NotFound: no such source dataset or snapshot.
        StateConflict: the destination diverged (the snapshots named), or holds a partial receive of something
            else.
    """

    def __init__(self, snapshots: Snapshots, bookmarks: Bookmarks, transfers: Transfers, pipelines: Pipelines,
                 replicas: Replicas, clock: Clock, *, retries: int = 5, backoff: float = 1.0) -> None:
        self._snapshots, self._replicas, self._clock = snapshots, replicas, clock
        self._sender = LocalSender(snapshots, bookmarks, transfers, pipelines)
        self._retries, self._backoff = retries, backoff
        self._keep = KeepBase()

    def admit(self, *, who: Principal, spec: ReplicationSpec) -> NamedRemote | None:
        """Check a replication before it is queued, and again when it runs (the configuration may have changed
        meanwhile): both datasets in the caller's scope, the remote one it may name, the destination outside
        the source when it is on this host. The remote as listed (None: this host).

        Raises:
            PermissionDenied: the source or destination lies outside the caller's scope.
            InvalidArgument: (param `remote`) a remote the caller may not name; (param `destination`) inside
                the source on this host.
        """
        for name in (spec.source_dataset.value, spec.destination.value):
            if not who.covers(name):
                raise PermissionDenied(METHOD, name, "outside the datasets this user may touch")
        target = None if spec.remote is None else self._replicas.resolve(spec.remote, who)
        spec.check_target(target)
        return target

    async def execute(self, *, who: Principal, spec: ReplicationSpec, progress: ProgressMeter) -> ReplicationResult:
        started = time.monotonic()
        target = self.admit(who=who, spec=spec)
        progress.phase("snapshot")
        snapshot = spec.source if isinstance(spec.source, SnapshotName) else await CreateAutoSnapshot(
            self._snapshots, self._clock).execute(dataset=spec.source_dataset, tag=SNAPSHOT_TAG,
                                                  recursive=spec.recursive)
        rate = spec.bytes_per_second
        run = Run(spec, who, self._sender, self._replicas.side(target, who), progress, Pacer(rate) if rate else None)
        plan = await _Driver(self._retries, self._backoff).replicate(run, snapshot)
        if spec.sync:
            progress.phase("holds")
            await self._keep.keep(run, plan.snapshot)
        first = run.first or plan
        progress.phase("done")
        return ReplicationResult(snapshot.value, spec.destination.value, first.mode,
                                 first.base.value if first.base else None, run.moved, run.resumed,
                                 time.monotonic() - started)


class StartMigration:
    """Queue a replication as a job of kind `migration_create`, once `Replicate.admit` has checked it (the job
    checks it again when it runs)."""

    def __init__(self, jobs: Jobs, replicate: Replicate) -> None:
        self._jobs, self._replicate = jobs, replicate

    async def execute(self, *, who: Principal, spec: ReplicationSpec, params: dict[str, Any],
                      origin: Origin | None = None) -> Job:
        """The queued job (`origin`: where its owner is configured). Raises what `Replicate.admit` raises."""
        self._replicate.admit(who=who, spec=spec)
        return await self._jobs.submit(METHOD, who, params, (spec.source.value, spec.destination.value),
                                       origin=origin)
