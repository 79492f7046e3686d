"""The policy engine's use cases: take a policy's snapshots, preview a prune, prune, and move a replication
target's base. Each is one run over ZFS through the PolicyZfs port; the decisions are the domain's
(`plan_snapshot_calls`, `retention.decide`), and progress is reported to a `(done, total)` callable.

A failure that concerns some snapshots only (a name that exists already, a hold or a clone made since the
listing) is reported for those snapshots and the run goes on; ZFS being unavailable stops it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable, Mapping, Sequence

from zfsapi.domain.errors import InvalidArgument, ZfsApiError, ZfsUnavailable
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.policies import Policy, Selection, SnapshotCall, plan_snapshot_calls, snapshot_short_name
from zfsapi.domain.retention import Action, Decision, SnapshotInfo, TargetBase, decide

from .policy_ports import ListedSnapshot, PolicyZfs
from .ports import Clock

#: `progress(done, total)`: called with 0 first, then after each step
Progress = Callable[[int, int], None]
#: target -> dataset -> the base that target needs there (a dataset without one: no known base)
Bases = Mapping[str, Mapping[DatasetName, TargetBase]]
NO_RETENTION = "no retention: the policy never prunes"


def _quiet(done: int, total: int) -> None:
    """The default progress: report nothing."""


def policy_roots(policy: Policy) -> list[DatasetName]:
    """The datasets to list recursively to see every dataset the policy may cover: its include entries,
    less those inside another include entry."""
    roots: list[DatasetName] = []
    for d in sorted((r.dataset for r in policy.datasets.rules if not r.exclude), key=lambda d: d.depth):
        if not any(d.is_within(r) for r in roots):
            roots.append(d)
    return sorted(roots, key=lambda d: d.value)


def _item_failure(exc: ZfsApiError) -> str:
    """The reason a step failed for its snapshots; ZFS being unavailable is no item's failure: re-raised."""
    if isinstance(exc, ZfsUnavailable):
        raise exc
    return str(exc)


@dataclass(frozen=True, slots=True)
class Skipped:
    dataset: DatasetName
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    snapshot: SnapshotName
    reason: str


@dataclass(frozen=True, slots=True)
class SnapshotRun:
    """What one snapshot run did: the name it used (`<prefix>-<UTC time>`), what it took, skipped and failed."""

    short: str
    taken: tuple[SnapshotName, ...]
    skipped: tuple[Skipped, ...]
    failed: tuple[Failed, ...]


def _made_by(call: SnapshotCall, selection: Selection, short: str) -> list[SnapshotName]:
    """The snapshots one call makes: those it names, and with -r those of every covered descendant."""
    if not call.recursive:
        return list(call.snapshots)
    return [d.snapshot(short) for d in selection.covered if any(d.is_within(s.dataset) for s in call.snapshots)]


class TakePolicySnapshots:
    """One snapshot run of a policy: its datasets (listed once), less those below `min_written`, snapshotted
    as `plan_snapshot_calls` says (atomic per pool, or one call per dataset), named from the clock in UTC."""

    def __init__(self, zfs: PolicyZfs, clock: Clock) -> None:
        self._zfs, self._clock = zfs, clock

    async def __call__(self, policy: Policy, progress: Progress = _quiet) -> SnapshotRun:
        settings = policy.snapshot
        short = snapshot_short_name(settings.prefix, self._clock.now())
        tree = await self._zfs.tree(policy_roots(policy))
        skipped = [Skipped(e.dataset, f"written {e.written} bytes, below min_written {settings.min_written}")
                   for e in tree if e.written < settings.min_written and policy.datasets.covers(e.dataset)]
        selection = policy.datasets.select([e.dataset for e in tree], [s.dataset for s in skipped])
        calls = plan_snapshot_calls(selection, short, atomic=settings.recursive_atomic)
        taken: list[SnapshotName] = []
        failed: list[Failed] = []
        progress(0, len(calls))
        for done, call in enumerate(calls, start=1):
            made = _made_by(call, selection, short)
            try:
                await self._zfs.take(call.snapshots, recursive=call.recursive, policy=policy.name)
            except ZfsApiError as exc:
                reason = _item_failure(exc)
                failed += [Failed(s, reason) for s in made]
            else:
                taken += made
            progress(done, len(calls))
        return SnapshotRun(short, tuple(taken), tuple(skipped), tuple(failed))


@dataclass(frozen=True, slots=True)
class DatasetPlan:
    """Keep or destroy, with the reasons, for every snapshot of one dataset (oldest first)."""

    dataset: DatasetName
    decisions: tuple[Decision, ...]

    def doomed(self) -> list[Decision]:
        return [d for d in self.decisions if d.action is Action.DESTROY]


def _grouped(listed: Sequence[ListedSnapshot], policy: Policy) -> dict[DatasetName, list[ListedSnapshot]]:
    """The listing by dataset, for the datasets the policy covers only."""
    out: dict[DatasetName, list[ListedSnapshot]] = {}
    covers: dict[DatasetName, bool] = {}
    for item in listed:
        if covers.setdefault(item.dataset, policy.datasets.covers(item.dataset)):
            out.setdefault(item.dataset, []).append(item)
    return out


class PreviewPrune:
    """What a prune of a policy would do at a time: every snapshot of every dataset the policy covers, kept
    or destroyed with the reasons `retention.decide` gives. Nothing is changed.

    `bases`: the base each replication target of the policy needs per dataset (kept whatever the counts say);
    a target of the policy given no base still protects the snapshots that hold its tag. The listing is one
    child; the holds of the policy's own held snapshots one more."""

    def __init__(self, zfs: PolicyZfs, clock: Clock) -> None:
        self._zfs, self._clock = zfs, clock

    async def __call__(self, policy: Policy, *, at: datetime | None = None,
                       bases: Bases | None = None) -> list[DatasetPlan]:
        when = int((at or self._clock.now()).timestamp())
        groups = _grouped(await self._zfs.snapshots(policy_roots(policy)), policy)
        held = [i.dataset.snapshot(i.info.name) for items in groups.values() for i in items
                if i.userrefs > 0 and i.info.policy == policy.name]
        holds = await self._zfs.holds(held) if held else {}
        plans = []
        for dataset, items in groups.items():
            infos = [_with_holds(i, holds) for i in items]
            plans.append(DatasetPlan(dataset, tuple(self._decide(policy, dataset, infos, bases or {}, when))))
        return plans

    @staticmethod
    def _decide(policy: Policy, dataset: DatasetName, infos: list[SnapshotInfo], bases: Bases,
                at: int) -> list[Decision]:
        if policy.retention is None:
            return [Decision(i, Action.KEEP, (NO_RETENTION,)) for i in sorted(infos, key=lambda i: i.createtxg)]
        targets = {t.name: bases.get(t.name, {}).get(dataset) for t in policy.replicate}
        return decide(infos, policy=policy.name, counts=policy.retention, bases=targets, at=at)


def _with_holds(item: ListedSnapshot, holds: Mapping[SnapshotName, tuple[str, ...]]) -> SnapshotInfo:
    if item.userrefs == 0:
        return item.info
    return replace(item.info, holds=holds.get(item.dataset.snapshot(item.info.name), ()))


@dataclass(frozen=True, slots=True)
class PruneRun:
    """What a prune did: the snapshots it destroyed, those it could not (with why), how many it kept."""

    destroyed: tuple[SnapshotName, ...]
    failed: tuple[Failed, ...]
    kept: int
    owned: int = 0  # the policy's own snapshots left after the prune


class Prune:
    """A prune: the decisions PreviewPrune shows, carried out. Holds this policy placed for targets it no
    longer has are released (one child per tag), then each dataset's snapshots are destroyed in one batch
    (`zfs destroy ds@a,b,c`); a snapshot ZFS refuses (held or cloned since the listing) is reported failed.
    Progress counts the snapshots to destroy."""

    def __init__(self, zfs: PolicyZfs, clock: Clock) -> None:
        self._zfs = zfs
        self._preview = PreviewPrune(zfs, clock)

    async def __call__(self, policy: Policy, *, at: datetime | None = None, bases: Bases | None = None,
                       progress: Progress = _quiet) -> PruneRun:
        plans = await self._preview(policy, at=at, bases=bases)
        total = sum(len(p.doomed()) for p in plans)
        kept = sum(len(p.decisions) for p in plans) - total
        progress(0, total)
        await self._release_stale(plans)
        destroyed: list[SnapshotName] = []
        failed: list[Failed] = []
        done = 0
        for plan in plans:
            doomed = [d.snapshot.name for d in plan.doomed()]
            if not doomed:
                continue
            try:
                refused = await self._zfs.destroy(plan.dataset, doomed)
            except ZfsApiError as exc:
                reason = _item_failure(exc)
                refused = {short: reason for short in doomed}
            failed += [Failed(plan.dataset.snapshot(s), why) for s, why in refused.items()]
            destroyed += [plan.dataset.snapshot(s) for s in doomed if s not in refused]
            done += len(doomed)
            progress(done, total)
        owned = sum(d.snapshot.policy == policy.name for p in plans for d in p.decisions) - len(destroyed)
        return PruneRun(tuple(destroyed), tuple(failed), kept, owned)

    async def _release_stale(self, plans: Sequence[DatasetPlan]) -> None:
        """Release the holds of this policy's removed targets from the snapshots about to be destroyed."""
        stale: dict[str, list[SnapshotName]] = {}
        for plan in plans:
            for decision in plan.doomed():
                for tag in decision.release:
                    stale.setdefault(tag, []).append(plan.dataset.snapshot(decision.snapshot.name))
        for tag, snapshots in stale.items():
            await self._zfs.release(HoldTag.parse(tag), snapshots)


@dataclass(frozen=True, slots=True)
class BaseMove:
    """One dataset's base for a target moves from the snapshot `old` (None: it had none) to `new`."""

    dataset: DatasetName
    new: str
    old: str | None = None


class MoveTargetBase:
    """Move one (policy, target)'s base: hold the new snapshots with the tag `zfsapi:<policy>:<target>` (one
    child), point the bookmark `ds#zfsapi-<policy>-<target>` at each (a child per dataset), then release that
    tag, and only that tag, from the old ones: another target's hold on the same snapshot stays."""

    def __init__(self, zfs: PolicyZfs) -> None:
        self._zfs = zfs

    async def __call__(self, policy: Policy, target: str, moves: Sequence[BaseMove]) -> None:
        if policy.target(target) is None:
            raise InvalidArgument("target", f"policy {policy.name!r} has no target {target!r}")
        tag = policy.hold_tag(target)
        await self._zfs.hold(tag, [m.dataset.snapshot(m.new) for m in moves])
        for m in moves:
            await self._zfs.bookmark(m.dataset.snapshot(m.new), policy.bookmark(m.dataset, target))
        old = [m.dataset.snapshot(m.old) for m in moves if m.old is not None and m.old != m.new]
        if old:
            await self._zfs.release(tag, old)
