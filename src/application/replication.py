"""Replication: a snapshot (and with `recursive` its children) sent from this host to a destination here, over
SSH or on another zfsapi, full or incremental as `plan_replication` decides, resumed from the receiver's token
when a transfer is cut, and with `sync` holds and a bookmark kept for the next incremental."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    StateConflict,
    ZfsCommandFailed,
)
from zfsapi.domain.jobs import Job, Origin, ProgressMeter
from zfsapi.domain.models import Bookmark, Snapshot
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, SnapshotName
from zfsapi.domain.replication import (
    BOOKMARK_PREFIX,
    HOLD_TAG,
    SNAPSHOT_TAG,
    NamedRemote,
    ReplicationMode,
    ReplicationPlan,
    ReplicationSpec,
    plan_package_retry,
    plan_replication,
)
from zfsapi.domain.transfer import ReceiveSpec, ResumeSend, ResumeToken, SendSpec

from .jobs import Jobs
from .ports import Bookmarks, Clock, Pipelines, ReplicaSide, Replicas, Snapshots, Transfers
from .snapshots import CreateAutoSnapshot
from .transfers import plan_send

METHOD = "migration_create"
_HOLD = HoldTag(HOLD_TAG)
#: what a cut transfer raises (zfs on either side, or the connection to a remote); retried when a token is left
_CUT = (ZfsCommandFailed, ServiceUnavailable, OSError)


@dataclass(frozen=True, slots=True)
class ReplicationResult:
    source_snapshot: str  # the source snapshot the destination now holds
    destination: str
    mode: ReplicationMode  # of the first transfer this run made (a resumed one included); up_to_date: none
    from_snapshot: str | None  # the incremental's base on the source (a snapshot or bookmark)
    bytes: int  # relayed by this run (every attempt)
    resumed: bool  # a partial receive was continued from its token
    duration: float  # seconds


class Pacer:
    """A token bucket over the relayed bytes: `rate` bytes per second on average, with at most `burst` seconds
    of unused allowance saved up (after a stall, the transfer catches up by no more than that). `delay` says
    how long to pause after moving some bytes (the relay pauses; it may run in a worker thread)."""

    def __init__(self, rate: float, *, burst: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._next: float | None = None  # when the bytes sent so far are paid for

    def delay(self, nbytes: int) -> float:
        now = self._clock()
        start = now if self._next is None else max(self._next, now - self._burst)
        self._next = start + nbytes / self._rate
        return max(0.0, self._next - now)


@dataclass
class _Run:
    """One execute's state: what moved, what the first transfer was, whether a token was resumed."""

    spec: ReplicationSpec
    who: Principal
    side: ReplicaSide
    progress: ProgressMeter
    pacer: Pacer | None
    moved: int = 0
    resumed: bool = False
    first: ReplicationPlan | None = None
    package: ReplicationPlan | None = None  # the -R package this run sent (again after a cut)
    raw: bool = False  # sends are raw (-w): the source is encrypted (plan_send's rule)

    def moved_by(self, nbytes: int) -> float:
        """The relay's report (from any thread): count the bytes; the pause the limit asks for."""
        self.moved += nbytes
        self.progress.add(nbytes)
        return self.pacer.delay(nbytes) if self.pacer is not None else 0.0

    def target(self, dataset: str) -> DatasetName:
        """The destination of a source dataset (the top, or a child with `recursive`)."""
        return DatasetName.parse(self.spec.destination.value + dataset[len(self.spec.source_dataset.value):])


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
        self._snapshots, self._bookmarks, self._t, self._p = snapshots, bookmarks, transfers, pipelines
        self._replicas, self._clock = replicas, clock
        self._retries, self._backoff = retries, backoff

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
        run = _Run(spec, who, self._replicas.side(target, who), progress, Pacer(rate) if rate else None)
        plan = await self._replicate(run, snapshot)
        if spec.sync:
            progress.phase("holds")
            await self._sync(run, plan.snapshot)
        first = run.first or plan
        progress.phase("done")
        return ReplicationResult(snapshot.value, spec.destination.value, first.mode,
                                 first.base.value if first.base else None, run.moved, run.resumed,
                                 time.monotonic() - started)

    # ---- planning and transfers ----
    async def _replicate(self, run: _Run, snapshot: SnapshotName) -> ReplicationPlan:
        """Resume what the destination holds partially, plan, send; a cut transfer is retried from its token.
        The plan whose snapshot the destination now has."""
        attempt = 0
        while True:
            try:
                plan = await self._next_plan(run, snapshot)
                if plan.mode is not ReplicationMode.UP_TO_DATE:
                    run.first = run.first or plan
                    if run.spec.recursive:
                        run.package = run.package or plan
                    await self._send(run, plan)
                return plan
            except _CUT:
                if attempt >= self._retries or not await self._partial(run):
                    raise
                await asyncio.sleep(min(self._backoff * 2 ** attempt, 60.0))
                attempt += 1

    async def _next_plan(self, run: _Run, snapshot: SnapshotName) -> ReplicationPlan:
        """Finish the partial receives the destination holds, then plan (both looked up at once: a plan made
        before a resume is made again after it)."""
        partial, plan, sending = await asyncio.gather(self._partial(run), self._plan(run, snapshot),
                                                      plan_send(self._t, SendSpec(snapshot)), return_exceptions=True)
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
            await self._resume(run, target, token)
        return await self._plan(run, snapshot)

    async def _plan(self, run: _Run, snapshot: SnapshotName) -> ReplicationPlan:
        run.progress.phase("planning")
        source, destination = await self._sides(run, snapshot)
        if run.package is not None:  # a cut -R package
            return plan_package_retry(run.package, source, destination)
        marks: list[Bookmark] = []
        if destination and destination[-1].guid not in {s.guid for s in source}:
            marks = await self._bookmarks.list_bookmark_ids(snapshot.dataset)  # the base may be a bookmark now
        return plan_replication(_named(source, snapshot.value), source, destination, bookmarks=marks,
                                recursive=run.spec.recursive)

    async def _sides(self, run: _Run, snapshot: SnapshotName) -> tuple[list[Snapshot], list[Snapshot] | None]:
        """The source dataset's snapshots and the destination's (None: missing)."""
        return await asyncio.gather(
            self._snapshots.list_snapshots(snapshot.dataset, recursive=False, details=False),
            run.side.snapshots(run.spec.destination))

    async def _send(self, run: _Run, plan: ReplicationPlan) -> None:
        send = SendSpec(plan.snapshot, plan.base, recursive=run.spec.recursive, raw=run.raw,
                        intermediates=isinstance(plan.base, SnapshotName))
        # -F: see the class docstring (an incremental of one dataset whose newest snapshot is the base)
        force = plan.mode is ReplicationMode.INCREMENTAL and not run.spec.recursive
        receive = ReceiveSpec(run.spec.destination, force=force, resumable=True,
                              trusted=run.who.unrestricted_admin)
        run.progress.restart()
        await self._relay(run, send, receive, self._t.estimate(send))

    async def _partial(self, run: _Run) -> list[tuple[DatasetName, ResumeToken]]:
        """The destination datasets (the top, and with `recursive` its children) holding a partial receive."""
        targets = [run.spec.destination]
        if run.spec.recursive:
            children = await self._snapshots.list_snapshots(run.spec.source_dataset, recursive=True, details=False)
            targets += sorted({run.target(s.dataset) for s in children if s.dataset != run.spec.source_dataset.value},
                              key=lambda d: d.value)
        tokens = await asyncio.gather(*(run.side.resume_token(target) for target in targets))
        return [(target, token) for target, token in zip(targets, tokens) if token is not None]

    async def _resume(self, run: _Run, target: DatasetName, token: ResumeToken) -> None:
        """Continue the partial receive into `target` from its token, once the token is known to continue a
        snapshot of this source that the caller may read."""
        run.progress.phase("resuming")
        contents = await self._t.decode_resume_token(token)
        to, top = SnapshotName.parse(contents.toname), run.spec.source_dataset
        ours = to.dataset == top or run.spec.recursive and to.dataset.is_within(top)
        if not ours or run.target(to.dataset.value) != target or not run.who.covers(to.value):
            raise StateConflict(f"{target} holds a partial receive of {to}, not of {run.spec.source_dataset}: "
                                "abort it (receive_abort) or choose another destination", partial=to.value)
        source = await self._snapshots.list_snapshots(to.dataset, recursive=False, details=False)
        if _named(source, to.value).guid != contents.toguid:
            raise StateConflict(f"{target} holds a partial receive of another {to} (its guid differs)",
                                partial=to.value)
        base = next((s.name for s in source if s.guid == contents.fromguid), None)
        if run.first is None:
            mode = ReplicationMode.FULL if contents.fromguid is None else ReplicationMode.INCREMENTAL
            run.first = ReplicationPlan(mode, to, SnapshotName.parse(base) if base else None,
                                        base_guid=contents.fromguid)
        run.resumed = True
        run.progress.expect(contents.size)
        run.progress.restart(contents.bytes_done)
        send = ResumeSend(token, to.dataset, to, contents.raw, contents.compressed)
        await self._relay(run, send, ReceiveSpec(target, resumable=True, resume_token=token,
                                                 trusted=run.who.unrestricted_admin))

    async def _relay(self, run: _Run, source: SendSpec | ResumeSend, receive: ReceiveSpec,
                     estimate: Coroutine[Any, Any, int] | None = None) -> None:
        """zfs send -> the destination's receive, paced; both ends killed and reaped on any failure or
        cancellation (a resumable receive keeps its token). The estimate, if any, runs alongside (its figure
        only feeds the progress: the send itself checks what the estimate would)."""
        run.progress.phase("sending")
        sizing = asyncio.ensure_future(estimate) if estimate is not None else None
        if sizing is not None:
            sizing.add_done_callback(lambda done: None if done.cancelled() or done.exception() is not None
                                     else run.progress.expect(done.result()))
        try:
            send = await self._p.open_send(source)
            try:
                recv = await run.side.open_receive(receive, run.spec.compression)
            except BaseException:
                await send.kill()
                raise
            try:
                await self._p.relay(send, recv, run.moved_by)
                await recv.finish()
            finally:
                await send.kill()
                await recv.kill()
        finally:
            if sizing is not None:
                sizing.cancel()
                await asyncio.wait([sizing])

    # ---- sync: holds and the bookmark follow the newest replicated snapshot ----
    async def _sync(self, run: _Run, snapshot: SnapshotName) -> None:
        """Hold `snapshot` on both sides (and its children's with `recursive`), release the holds of the
        previous base (the one this run's first transfer started from), bookmark it on the source."""
        recursive = run.spec.recursive
        source = await self._snapshots.list_snapshots(snapshot.dataset, recursive=recursive, details=False)
        family = [SnapshotName.parse(s.name) for s in source if s.short == snapshot.short]
        try:
            await self._snapshots.hold(snapshot, _HOLD, recursive=recursive)
        except AlreadyExists:
            pass
        for member in family:
            await run.side.hold(run.target(member.dataset.value).snapshot(member.short), _HOLD)
        previous = run.first.base_guid if run.first is not None else None
        if previous is not None:
            await self._release(run, snapshot, previous, source, family)
        await self._bookmark(snapshot, _named(source, snapshot.value).guid, previous)

    async def _release(self, run: _Run, snapshot: SnapshotName, previous: int, source: list[Snapshot],
                       family: list[SnapshotName]) -> None:
        """Release the holds of the previous base (by guid) on both sides: on the source unless only its bookmark
        is left, on the destination for the whole family (by the base's name there)."""
        old = next((s for s in source if s.guid == previous and s.dataset == snapshot.dataset.value), None)
        if old is not None:
            try:
                await self._snapshots.release(SnapshotName.parse(old.name), _HOLD, recursive=run.spec.recursive)
            except NotFound:
                pass
        twin = next((d for d in await run.side.snapshots(run.spec.destination) or [] if d.guid == previous), None)
        if twin is not None:
            for member in family:
                await run.side.release(run.target(member.dataset.value).snapshot(twin.short), _HOLD)

    async def _bookmark(self, snapshot: SnapshotName, guid: int, previous: int | None) -> None:
        """Bookmark the snapshot on the source (`zfsapi-repl-<short>`, by guid when that name is too long) and
        destroy the replication bookmark of the previous base."""
        try:
            mark = snapshot.dataset.bookmark(BOOKMARK_PREFIX + snapshot.short)
        except InvalidArgument:
            mark = snapshot.dataset.bookmark(f"{BOOKMARK_PREFIX}{guid:016x}")
        try:
            await self._bookmarks.create_bookmark(snapshot, mark)
        except AlreadyExists:
            pass
        for old in await self._bookmarks.list_bookmark_ids(snapshot.dataset):
            short = old.name.split("#", 1)[1]
            if old.guid == previous and old.name != mark.value and short.startswith(BOOKMARK_PREFIX):
                await self._bookmarks.destroy_bookmark(BookmarkName.parse(old.name))


def _named(snapshots: list[Snapshot], name: str) -> Snapshot:
    found = next((s for s in snapshots if s.name == name), None)
    if found is None:
        raise NotFound("snapshot", name)
    return found


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
