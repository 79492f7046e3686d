"""Retention: which snapshots of one dataset a policy keeps at a given time, and why; and the destroy batches.

`decide` is the one function that says keep or destroy, with every reason, for every snapshot of a dataset;
policy_preview shows its answer and prune carries it out. Semantics (the contract's, and where it is silent
the choice named here):

- Only snapshots the policy owns (user property `zfsapi:policy` equal to its name) are considered; any other
  is kept ("not owned"). Age is the `creation` property (UTC epoch seconds), never the name.
- Snapshots created after `at` are kept ("created after at") and count for no rule: at `at` they did not
  exist yet. This also keeps a snapshot whose creation is ahead of a skewed clock.
- `keep_last N`: the N newest owned snapshots ("keep_last 1/3" is the newest).
- `hourly/daily/weekly/monthly/yearly N`: buckets aligned in UTC (an hour, a day, an ISO 8601 week from
  Monday, a calendar month, a calendar year); the OLDEST owned snapshot of each of the newest N buckets that
  hold an owned snapshot is kept ("daily 1/14" is the newest day's). A bucket with no snapshot does not count
  toward N: this is restic's and borg's rule (`--keep-daily N`: "the last N days which have one or more
  snapshots"), chosen over sanoid's age window so that a policy that stopped snapshotting for a while (a
  paused policy, a server down for weeks) still keeps N per period instead of pruning down to keep_last
  (zrepl #651). The oldest of a bucket (not the newest, as restic and borg keep) is the contract's choice:
  it does not change as the bucket fills, so a kept snapshot stays kept.
- The rules are independent (restic's, not borg's cascade): a snapshot may be kept by several, and each rule
  keeps exactly min(N, buckets that hold an owned snapshot) snapshots.
- Never destroyed, whatever the rules say (each adds its reason): a replication base of a current target of
  the policy ("replication base for <target>": it matches the base given for that target by guid, or by
  name when no guid is given, or it carries the hold `zfsapi:<policy>:<target>` of a current target), a
  snapshot with any hold this policy did not place ("user hold <tag>"; stricter than "any tag not starting
  with zfsapi:": a `zfsapi:replication` hold of a manual migration_create keeps its base too), and the
  origin of a clone ("clone origin").
- An owned snapshot that is destroyed may still carry holds of this policy for targets it no longer has:
  `Decision.release` lists them (release them, then destroy).
A destroy's reasons say, per configured rule, why that rule does not keep it ("hourly: not the oldest of its
hour", "daily: its day is not among the newest 14").

The result is idempotent (pruning what it destroys and deciding again at the same `at` destroys nothing
more) and monotone (raising a count never turns a keep into a destroy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Callable, Mapping, Sequence

from .names import DatasetName
from .policies import MAX_ARG_BYTES, RetentionCounts, is_own_hold

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class Action(Enum):
    KEEP = "keep"
    DESTROY = "destroy"


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What retention reads of one snapshot (one `zfs list -t snapshot -H -p -o name,guid,createtxg,creation,
    zfsapi:policy` row, its holds and whether a clone has it as origin)."""

    name: str  # the short name (after '@')
    guid: int
    creation: int  # UTC epoch seconds
    policy: str | None = None  # the `zfsapi:policy` property; None when unset
    holds: tuple[str, ...] = ()
    clone_origin: bool = False
    createtxg: int = 0  # orders snapshots created in the same second


@dataclass(frozen=True, slots=True)
class TargetBase:
    """The snapshot a replication target needs as its next incremental base: by guid (the identity), else
    by name. None of both: the target has no known base yet."""

    guid: int | None = None
    name: str | None = None

    def matches(self, snap: SnapshotInfo) -> bool:
        if self.guid is not None:
            return snap.guid == self.guid
        return self.name is not None and snap.name == self.name


@dataclass(frozen=True, slots=True)
class Decision:
    snapshot: SnapshotInfo
    action: Action
    reasons: tuple[str, ...]
    release: tuple[str, ...] = ()  # holds of this policy to release before the destroy


def _day(creation: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + creation // 86400)


def _iso_week(creation: int) -> tuple[int, int]:
    iso = _day(creation).isocalendar()
    return iso.year, iso.week


def _month(creation: int) -> tuple[int, int]:
    d = _day(creation)
    return d.year, d.month


#: rule -> (the unit's word, bucket key of a creation time); every key grows with time
PERIODS: dict[str, tuple[str, Callable[[int], object]]] = {
    "hourly": ("hour", lambda c: c // 3600),
    "daily": ("day", lambda c: c // 86400),
    "weekly": ("week", _iso_week),
    "monthly": ("month", _month),
    "yearly": ("year", lambda c: _day(c).year),
}


def _order(snap: SnapshotInfo) -> tuple[int, int, str]:
    return snap.creation, snap.createtxg, snap.name


def _keep_last(owned: Sequence[tuple[int, SnapshotInfo]], n: int, keep: list[list[str]],
               miss: list[list[str]]) -> None:
    for rank, (i, _) in enumerate(reversed(owned), start=1):
        if rank <= n:
            keep[i].append(f"keep_last {rank}/{n}")
        else:
            miss[i].append(f"keep_last: not among the newest {n}")


def _periodic(owned: Sequence[tuple[int, SnapshotInfo]], rule: str, n: int, keep: list[list[str]],
              miss: list[list[str]]) -> None:
    unit, key = PERIODS[rule]
    keys: list[object] = []  # one per bucket, oldest bucket first
    first: list[int] = []  # the index of each bucket's oldest snapshot
    bucket_of: list[int] = []
    for i, snap in owned:  # oldest first: the first snapshot of a bucket is its oldest
        k = key(snap.creation)
        if not keys or keys[-1] != k:
            keys.append(k)
            first.append(i)
        bucket_of.append(len(keys) - 1)
    total = len(keys)
    for (i, _), bucket in zip(owned, bucket_of):
        rank = total - bucket  # 1: the newest bucket
        if rank > n:
            miss[i].append(f"{rule}: its {unit} is not among the newest {n}")
        elif first[bucket] == i:
            keep[i].append(f"{rule} {rank}/{n}")
        else:
            miss[i].append(f"{rule}: not the oldest of its {unit}")


def _protections(snap: SnapshotInfo, policy: str, bases: Mapping[str, TargetBase | None]) -> list[str]:
    reasons = []
    for target, base in bases.items():
        if (base is not None and base.matches(snap)) or f"zfsapi:{policy}:{target}" in snap.holds:
            reasons.append(f"replication base for {target}")
    reasons += [f"user hold {tag}" for tag in snap.holds if not is_own_hold(tag, policy)]
    if snap.clone_origin:
        reasons.append("clone origin")
    return reasons


def decide(snapshots: Sequence[SnapshotInfo], *, policy: str, counts: RetentionCounts,
           bases: Mapping[str, TargetBase | None], at: int) -> list[Decision]:
    """Keep or destroy, with every reason, for each snapshot of ONE dataset at `at` (UTC epoch seconds).

    `bases` has one entry per current replication target of the policy: the base it needs, or None when
    unknown (its own hold still protects it). Returns the decisions oldest first (by creation, createtxg,
    name); pure, nothing is destroyed.
    """
    ordered = sorted(snapshots, key=_order)
    owned = [(i, s) for i, s in enumerate(ordered) if s.policy == policy and s.creation <= at]
    keep: list[list[str]] = [[] for _ in ordered]
    miss: list[list[str]] = [[] for _ in ordered]
    if counts.keep_last:
        _keep_last(owned, counts.keep_last, keep, miss)
    for rule in PERIODS:
        n: int = getattr(counts, rule)
        if n:
            _periodic(owned, rule, n, keep, miss)
    targets = set(bases)
    out = []
    for i, snap in enumerate(ordered):
        reasons = [] if snap.policy == policy else ["not owned"]
        if snap.policy == policy and snap.creation > at:
            reasons.append("created after at")
        reasons += keep[i] + _protections(snap, policy, bases)
        if reasons:
            out.append(Decision(snap, Action.KEEP, tuple(reasons)))
            continue
        stale = tuple(t for t in snap.holds if is_own_hold(t, policy) and t.split(":", 2)[2] not in targets)
        why = tuple(miss[i]) or ("no retention count is set",)
        out.append(Decision(snap, Action.DESTROY, why, stale))
    return out


def destroy_arguments(dataset: DatasetName, shorts: Sequence[str], max_arg_bytes: int = MAX_ARG_BYTES) -> list[str]:
    """`dataset@a,b,c` arguments of `zfs destroy`, each at most `max_arg_bytes` bytes (one argv string), in
    the order given: one zfs child per argument. A name never holds ',' (ZFS forbids it in names)."""
    head = f"{dataset.value}@"
    if len(head.encode()) + 256 > max_arg_bytes:
        raise ValueError(f"max_arg_bytes {max_arg_bytes} cannot hold one snapshot of {dataset}")
    out: list[str] = []
    current: list[str] = []
    size = len(head.encode())
    for short in shorts:
        cost = len(short.encode()) + (1 if current else 0)
        if current and size + cost > max_arg_bytes:
            out.append(head + ",".join(current))
            current, size, cost = [], len(head.encode()), len(short.encode())
        current.append(short)
        size += cost
    if current:
        out.append(head + ",".join(current))
    return out


@dataclass(frozen=True, slots=True)
class DestroyPlan:
    """What a prune runs: `release` (tag -> full snapshot names) before `destroy` (`zfs destroy` arguments)."""

    destroy: tuple[str, ...]
    release: Mapping[str, tuple[str, ...]]


def plan_prune(decisions: Mapping[DatasetName, Sequence[Decision]],
               max_arg_bytes: int = MAX_ARG_BYTES) -> DestroyPlan:
    """The batches for the destroy decisions of several datasets: one `zfs destroy ds@a,b,c` per dataset (more
    only when its names exceed `max_arg_bytes`), so 10,000 snapshots over 100 datasets is 100 children."""
    destroy: list[str] = []
    release: dict[str, list[str]] = {}
    for dataset, items in decisions.items():
        doomed = [d for d in items if d.action is Action.DESTROY]
        destroy += destroy_arguments(dataset, [d.snapshot.name for d in doomed], max_arg_bytes)
        for d in doomed:
            for tag in d.release:
                release.setdefault(tag, []).append(f"{dataset.value}@{d.snapshot.name}")
    return DestroyPlan(tuple(destroy), {tag: tuple(names) for tag, names in release.items()})
