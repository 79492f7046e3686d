"""A replication's steps between a sender and a receiver (ReplicaSender, ReplicaSide: this host or a remote):
`Planning` reads both sides and asks the pure planner (zfsapi.domain.replication) what to send, `Transfer` moves
a send or a resumed one into the receiver, paced. Their order and retries are the driver's (Replicate); the
holds and bookmarks that follow are their own step (replication_holds)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import NotFound, StateConflict
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.models import Bookmark, Snapshot
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.replication import (
    ReplicationMode,
    ReplicationPlan,
    ReplicationSpec,
    plan_package_retry,
    plan_replication,
)
from zfsapi.domain.transfer import ReceiveSpec, ResumeSend, ResumeToken, SendSpec

from .ports import ReplicaSender, ReplicaSide


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
class Run:
    """One replication's state: its sides, what moved, what the first transfer was, whether a token was resumed."""

    spec: ReplicationSpec
    who: Principal
    sender: ReplicaSender
    side: ReplicaSide  # the receiver
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


def named(snapshots: list[Snapshot], name: str) -> Snapshot:
    found = next((s for s in snapshots if s.name == name), None)
    if found is None:
        raise NotFound("snapshot", name)
    return found


class Planning:
    """What the sides hold, and the plan the pure planner makes of it."""

    async def plan(self, run: Run, snapshot: SnapshotName) -> ReplicationPlan:
        run.progress.phase("planning")
        source, destination = await asyncio.gather(run.sender.snapshots(snapshot.dataset),
                                                   run.side.snapshots(run.spec.destination))
        if run.package is not None:  # a cut -R package
            return plan_package_retry(run.package, source, destination)
        marks: list[Bookmark] = []
        if destination and destination[-1].guid not in {s.guid for s in source}:
            marks = await run.sender.bookmarks(snapshot.dataset)  # the base may be a bookmark now
        return plan_replication(named(source, snapshot.value), source, destination, bookmarks=marks,
                                recursive=run.spec.recursive)

    async def partial(self, run: Run) -> list[tuple[DatasetName, ResumeToken]]:
        """The destination datasets (the top, and with `recursive` its children) holding a partial receive."""
        targets = [run.spec.destination]
        if run.spec.recursive:
            children = await run.sender.snapshots(run.spec.source_dataset, recursive=True)
            targets += sorted({run.target(s.dataset) for s in children if s.dataset != run.spec.source_dataset.value},
                              key=lambda d: d.value)
        tokens = await asyncio.gather(*(run.side.resume_token(target) for target in targets))
        return [(target, token) for target, token in zip(targets, tokens) if token is not None]


class Transfer:
    """A planned send, or a partial receive's resumed one, relayed from the sender into the receiver."""

    async def send(self, run: Run, plan: ReplicationPlan) -> None:
        send = SendSpec(plan.snapshot, plan.base, recursive=run.spec.recursive, raw=run.raw,
                        intermediates=isinstance(plan.base, SnapshotName))
        # -F: see Replicate's docstring (an incremental of one dataset whose newest snapshot is the base)
        force = plan.mode is ReplicationMode.INCREMENTAL and not run.spec.recursive
        receive = ReceiveSpec(run.spec.destination, force=force, resumable=True,
                              trusted=run.who.unrestricted_admin)
        run.progress.restart()
        await self._relay(run, send, receive, run.sender.estimate(send))

    async def resume(self, run: Run, target: DatasetName, token: ResumeToken) -> None:
        """Continue the partial receive into `target` from its token, once the token is known to continue a
        snapshot of this source that the caller may read."""
        run.progress.phase("resuming")
        contents = await run.sender.decode_resume_token(token)
        to, top = SnapshotName.parse(contents.toname), run.spec.source_dataset
        ours = to.dataset == top or run.spec.recursive and to.dataset.is_within(top)
        if not ours or run.target(to.dataset.value) != target or not run.who.covers(to.value):
            raise StateConflict(f"{target} holds a partial receive of {to}, not of {run.spec.source_dataset}: "
                                "abort it (receive_abort) or choose another destination", partial=to.value)
        source = await run.sender.snapshots(to.dataset)
        if named(source, to.value).guid != contents.toguid:
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

    async def _relay(self, run: Run, source: SendSpec | ResumeSend, receive: ReceiveSpec,
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
            send = await run.sender.open_send(source)
            try:
                recv = await run.side.open_receive(receive, run.spec.compression)
            except BaseException:
                await send.kill()
                raise
            try:
                await run.sender.relay(send, recv, run.moved_by)
                await recv.finish()
            finally:
                await send.kill()
                await recv.kill()
        finally:
            if sizing is not None:
                sizing.cancel()
                await asyncio.wait([sizing])
