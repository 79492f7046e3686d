"""Replication of one policy target: the newest snapshot the policy owns of each dataset it covers is sent to
the target with the Replicate use case (full, or incremental from the newest snapshot both sides share, found
by guid or through a bookmark), then the target's base moves to it, then the target's own retention prunes
the destination.

Datasets: those the policy covers (its roots listed once through the PolicyZfs port, its include/exclude
entries applied) that hold at least one snapshot the policy owns; parents are sent before their children.

Destinations: with one include root R (`policy_roots`), R lands at the target's `destination` and R/x at
`destination/x`. With several roots, each root lands at `destination/<the root without its pool>` (tank/home
-> backup/home, tank/a/b -> backup/a/b; a whole pool, tank -> backup/tank) and its children below it. Two
datasets that would land on one name are refused before anything is sent (InvalidArgument naming the target's
destination). The destination's parents must exist (with several roots, every level between `destination`
and a root's name too): zfs receive creates the dataset only.

Holds: each dataset is replicated without Replicate's `sync` (its `zfsapi:replication` tag is shared by every
replication of a source); instead MoveTargetBase holds the snapshot sent with this (policy, target)'s own tag
`zfsapi:<policy>:<target>`, points the bookmark `ds#zfsapi-<policy>-<target>` at it and releases that tag,
and only that one, from the previous base. A dataset whose replication fails keeps its previous base held, so
a prune of the source (which never destroys a snapshot holding a current target's tag) keeps what this target
needs for its next incremental while it is down. One failing dataset does not stop the others: the run moves
the bases of those that went, prunes their destinations, and then raises TargetIncomplete naming the failed.

Target retention: `retention` "same_as_source" prunes by the policy's counts, counts by their own, "none"
never. On each destination replicated in this run, the policy's snapshots (by guid, those the source still
has and owns; by the name `<prefix>-YYYYMMDDTHHMMSSZ`, those the source no longer has at all) are decided by
`retention.decide` at the clock's now; never destroyed: the newest snapshot both sides share (the next base),
any snapshot with a hold, anything else. The destroys go through the target's replica side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidArgument, StateConflict, ZfsApiError
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName
from zfsapi.domain.policies import LOCAL, Policy, ReplicationTarget, RetentionCounts, parse_snapshot_time
from zfsapi.domain.replication import ReplicationSpec
from zfsapi.domain.retention import Action, SnapshotInfo, TargetBase, decide

from .policies import BaseMove, MoveTargetBase, policy_roots
from .policy_ports import ListedSnapshot, PolicyZfs
from .ports import Clock, Replicas, ReplicaSide
from .replication import Replicate

_MAX_REASON = 300  # characters of one dataset's failure in TargetIncomplete's message


@dataclass(frozen=True, slots=True)
class SentDataset:
    """One dataset of a target run: where it went, the snapshot sent (short name), how, and the bytes moved."""

    dataset: str
    destination: str
    snapshot: str
    mode: str  # "full", "incremental" or "up_to_date"
    bytes: int


@dataclass(frozen=True, slots=True)
class TargetRun:
    """What one run of a target did. `base_snapshot`: the short name of the newest snapshot sent in this run
    (now shared with the target, its next base); None when no dataset went."""

    target: str
    datasets: list[SentDataset]
    base_snapshot: str | None
    destroyed_on_target: list[str]  # full names, on the target
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "datasets": [asdict(d) for d in self.datasets],
                "base_snapshot": self.base_snapshot, "destroyed_on_target": list(self.destroyed_on_target),
                "bytes": self.bytes}


class TargetIncomplete(StateConflict):
    """Some datasets of a target run failed (`failed`: dataset -> reason); `run` is what the others did (their
    bases moved, their destinations pruned)."""

    def __init__(self, policy: str, run: TargetRun, failed: Mapping[str, str]) -> None:
        named = "; ".join(f"{d}: {why[:_MAX_REASON]}" for d, why in failed.items())
        super().__init__(f"policy {policy!r}, target {run.target!r}: {len(failed)} of "
                         f"{len(failed) + len(run.datasets)} datasets failed: {named}",
                         failed=dict(failed), run=run.to_dict())
        self.run, self.failed = run, dict(failed)


@dataclass(frozen=True, slots=True)
class _Source:
    """One dataset to send: its destination, the newest owned snapshot, the guids of the policy's snapshots
    and of all its snapshots, and the snapshots that hold this target's tag now (its current base)."""

    dataset: DatasetName
    destination: DatasetName
    newest: SnapshotInfo
    owned: frozenset[int]
    known: frozenset[int]
    held: tuple[str, ...]


def destinations(policy: Policy, target: ReplicationTarget,
                 datasets: Sequence[DatasetName]) -> dict[DatasetName, DatasetName]:
    """Where each of the policy's `datasets` lands on `target` (see the module's docstring).

    Raises:
        InvalidArgument: (param `replicate.<target>.destination`) two datasets would land on one name, or a
            name would be too long.
    """
    param = f"replicate.{target.name}.destination"
    roots = policy_roots(policy)
    out: dict[DatasetName, DatasetName] = {}
    landed: dict[DatasetName, DatasetName] = {}
    for dataset in datasets:
        root = next(r for r in roots if dataset.is_within(r))
        top = target.destination.value
        if len(roots) > 1:
            top += "/" + (root.value.partition("/")[2] or root.value)
        try:
            where = DatasetName.parse(top + dataset.value[len(root.value):])
        except InvalidArgument as exc:
            raise exc.for_param(param) from None
        if where in landed:
            raise InvalidArgument(param, f"{landed[where]} and {dataset} would both land on {where}")
        landed[where], out[dataset] = dataset, where
    return out


class _DatasetMeter(ProgressMeter):
    """Replicate's meter for one dataset: its bytes count into the run's meter after those of the datasets
    sent before it; its own phases stay here (the run's phase names the dataset)."""

    def __init__(self, outer: ProgressMeter) -> None:
        super().__init__()
        self._outer, self._before = outer, outer.bytes_done

    def add(self, nbytes: int) -> None:
        super().add(nbytes)
        self._outer.add(nbytes)

    def reach(self, done: int) -> None:
        super().reach(done)
        self._outer.reach(self._before + done)

    def restart(self, done: int = 0) -> None:
        super().restart(done)
        self._outer.reach(self._before + done)

    def expect(self, total: int | None) -> None:
        super().expect(total)
        self._outer.expect(None if total is None else self._before + total)


def _failure(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ZfsApiError) else f"{type(exc).__name__}: {exc}"


class ReplicatePolicyTarget:
    """One run of one target of a policy, as `who` (the job's owner: Replicate checks its scope and the
    remote it may name). Progress phases: "plan", "send <dataset>" (with Replicate's bytes), "base", "target
    retention". Raises TargetIncomplete when a dataset failed, InvalidArgument for a target the policy does not
    have or destinations that collide, and what the source listing raises (ZFS unavailable)."""

    def __init__(self, zfs: PolicyZfs, replicate: Replicate, replicas: Replicas, clock: Clock) -> None:
        self._zfs, self._replicate, self._replicas, self._clock = zfs, replicate, replicas, clock
        self._move = MoveTargetBase(zfs)

    async def __call__(self, policy: Policy, target: str, *, who: Principal, progress: ProgressMeter) -> TargetRun:
        spec = policy.target(target)
        if spec is None:
            raise InvalidArgument("target", f"policy {policy.name!r} has no target {target!r}")
        progress.phase("plan")
        sources = await self._plan(policy, spec)
        sent: list[tuple[_Source, SentDataset]] = []
        failed: dict[str, str] = {}
        for source in sources:
            progress.phase(f"send {source.dataset}")
            try:
                sent.append((source, await self._send(source, spec, who, progress)))
            except (ZfsApiError, OSError) as exc:
                failed[source.dataset.value] = _failure(exc)
        progress.phase("base")
        await self._move_bases(policy, target, [s for s, _ in sent], failed)
        progress.phase("target retention")
        ok = [s for s, _ in sent if s.dataset.value not in failed]
        destroyed = await self._prune_target(policy, spec, who, ok, failed)
        newest = max((s.newest for s, _ in sent), key=lambda i: (i.creation, i.createtxg, i.name), default=None)
        run = TargetRun(target, [d for _, d in sent], newest.name if newest else None, destroyed,
                        sum(d.bytes for _, d in sent))
        if failed:
            raise TargetIncomplete(policy.name, run, failed)
        return run

    async def _plan(self, policy: Policy, target: ReplicationTarget) -> list[_Source]:
        """The datasets to send (name order), from one listing of the policy's roots and one of the holds on
        its held snapshots."""
        groups: dict[DatasetName, list[ListedSnapshot]] = {}
        covers: dict[DatasetName, bool] = {}
        for item in await self._zfs.snapshots(policy_roots(policy)):
            if covers.setdefault(item.dataset, policy.datasets.covers(item.dataset)):
                groups.setdefault(item.dataset, []).append(item)
        owned = {d: [i for i in items if i.info.policy == policy.name] for d, items in groups.items()}
        datasets = sorted((d for d, items in owned.items() if items), key=lambda d: d.value)
        where = destinations(policy, target, datasets)
        candidates = [d.snapshot(i.info.name) for d in datasets for i in owned[d] if i.userrefs > 0]
        holds = await self._zfs.holds(candidates) if candidates else {}
        tag = policy.hold_tag(target.name).value
        out = []
        for d in datasets:
            mine = owned[d]
            held = tuple(i.info.name for i in mine if tag in holds.get(d.snapshot(i.info.name), ()))
            newest = max((i.info for i in mine), key=lambda i: (i.createtxg, i.creation))
            out.append(_Source(d, where[d], newest, frozenset(i.info.guid for i in mine),
                               frozenset(i.info.guid for i in groups[d]), held))
        return out

    async def _send(self, source: _Source, target: ReplicationTarget, who: Principal,
                    progress: ProgressMeter) -> SentDataset:
        spec = ReplicationSpec.parse(source=source.dataset.snapshot(source.newest.name).value,
                                     destination=source.destination.value,
                                     remote=None if target.remote == LOCAL else target.remote, limit=target.limit,
                                     compression=target.compression, recursive=False, sync=False)
        result = await self._replicate.execute(who=who, spec=spec, progress=_DatasetMeter(progress))
        return SentDataset(source.dataset.value, source.destination.value, source.newest.name, result.mode.value,
                           result.bytes)

    async def _move_bases(self, policy: Policy, target: str, sent: Sequence[_Source], failed: dict[str, str]) -> None:
        """Hold and bookmark the snapshots sent, release this target's tag from the previous bases (those
        datasets fail when ZFS refuses)."""
        if not sent:
            return
        moves = [BaseMove(s.dataset, s.newest.name, next((h for h in reversed(s.held) if h != s.newest.name), None))
                 for s in sent]
        extra = [s.dataset.snapshot(h) for s, m in zip(sent, moves) for h in s.held if h not in (m.new, m.old)]
        try:
            await self._move(policy, target, moves)
            if extra:
                await self._zfs.release(policy.hold_tag(target), extra)
        except ZfsApiError as exc:
            failed.update({s.dataset.value: f"moving the base: {exc.message}" for s in sent})

    async def _prune_target(self, policy: Policy, target: ReplicationTarget, who: Principal, sent: Sequence[_Source],
                            failed: dict[str, str]) -> list[str]:
        """Prune each destination replicated by the target's counts; the full names destroyed."""
        counts = policy.target_retention(target.name)
        if counts is None or not sent:
            return []
        remote = None if target.remote == LOCAL else self._replicas.resolve(target.remote, who)
        side = self._replicas.side(remote, who)
        at = int(self._clock.now().timestamp())
        destroyed: list[str] = []
        for source in sent:
            try:
                destroyed += await self._prune_one(policy, target.name, counts, side, source, at)
            except ZfsApiError as exc:
                failed[source.dataset.value] = f"target retention on {source.destination}: {exc.message}"
        return destroyed

    @staticmethod
    async def _prune_one(policy: Policy, target: str, counts: RetentionCounts, side: ReplicaSide, source: _Source,
                         at: int) -> list[str]:
        listed = await side.snapshots(source.destination, details=True) or []
        doomed = doomed_on_target(policy, target, counts, source.owned, source.known, listed, at)
        if not doomed:
            return []
        refused = await side.destroy_snapshots(source.destination, doomed)
        return [source.destination.snapshot(s).value for s in doomed if s not in refused]


def doomed_on_target(policy: Policy, target: str, counts: RetentionCounts, owned: frozenset[int],
                     known: frozenset[int], listed: Sequence[Snapshot], at: int) -> list[str]:
    """The short names to destroy of one destination's snapshots (`listed`, oldest first, with creation and
    userrefs): the policy's ones (by guid in `owned`; by the policy's name pattern when the source has no
    snapshot of that guid among `known`) that `decide` destroys at `at`, never the newest shared with the
    source (the target's base), never a held one, never one whose creation or holds are unknown."""
    shared = [s for s in listed if s.guid in known]
    if not shared:
        return []
    infos = []
    for s in listed:
        ours = s.guid in owned or (s.guid not in known
                                   and parse_snapshot_time(s.short, policy.snapshot.prefix) is not None)
        infos.append(SnapshotInfo(s.short, s.guid, s.creation or 0,
                                  policy.name if ours and s.creation is not None else None, createtxg=s.createtxg))
    decisions = decide(infos, policy=policy.name, counts=counts, bases={target: TargetBase(guid=shared[-1].guid)},
                       at=at)
    held = {s.short for s in listed if s.userrefs != 0}  # any hold, or holds unknown (None)
    return [d.snapshot.name for d in decisions if d.action is Action.DESTROY and d.snapshot.name not in held]
