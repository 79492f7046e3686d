"""Policies as value objects: which datasets, when to snapshot, how many to keep, where to replicate.

The shape is the contract's (shared/api-contract.md, Policies); `parse_policies` reads a `policies:` list (from
the config file or the API) and `parse_policy` one policy, and every error is an InvalidArgument whose `param`
is the exact key path, e.g. `policies[2].replicate.nas2.schedule`. Every key but `name` and `datasets` is
optional. Where the contract is silent:

- `datasets`: entries are dataset names, an entry starting with "!" excludes. An entry matches a dataset and
  all its descendants; the LAST matching entry decides (as in .gitignore), so `["tank", "!tank/tmp",
  "tank/tmp/keep"]` covers tank/tmp/keep but not tank/tmp. At least one entry must include.
- `snapshot`: `schedule` null (the default) snapshots only when run; `timezone` "UTC"; `prefix` "zfsapi";
  `recursive_atomic` true (sanoid's `recursive = zfs`: one atomic `zfs snapshot` per pool; false is sanoid's
  `recursive = yes`, one call per dataset, so one dataset's failure does not stop the others);
  `min_written` 0 bytes (a dataset whose `written` is below it is skipped).
- `retention` absent: the policy never prunes. Present, a missing count is 0, but a retention whose counts are
  all 0 (it would destroy every owned snapshot) is refused: write `retention` out to keep everything.
- `replicate` target names are `[a-z0-9_]` (no "-"), so the bookmark `ds#zfsapi-<policy>-<target>` names one
  (policy, target) only: "a-b" + "c" and "a" + "b-c" cannot collide. `remote` is "local" or a
  `replication.remotes` name; `schedule` null (run only when asked), "after_snapshot" or a cron expression in
  the policy's `snapshot.timezone`; `retention` "same_as_source" (the default), counts, or "none" (never
  prune the target).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Collection, Iterable, Mapping, Sequence

from .errors import InvalidArgument
from .names import BookmarkName, DatasetName, HoldTag, PoolName, SnapshotName
from .schedules import Schedule, check_timezone

_POLICY_NAME = re.compile(r"[a-z0-9_-]{1,64}")
_TARGET_NAME = re.compile(r"[a-z0-9_]{1,64}")
_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_STAMP = "%Y%m%dT%H%M%SZ"
_STAMP_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
LOCAL = "local"
SAME_AS_SOURCE = "same_as_source"
NO_RETENTION = "none"
AFTER_SNAPSHOT = "after_snapshot"
COMPRESSIONS = ("lz4", "zstd", "gzip")
DEFAULT_PREFIX = "zfsapi"
MAX_COUNT = 100_000
MAX_DATASET_ENTRIES = 10_000
#: the user property that marks a snapshot as taken by a policy: `zfsapi:policy=<name>`
OWNER_PROPERTY = "zfsapi:policy"
HOLD_PREFIX = "zfsapi:"
#: Linux's MAX_ARG_STRLEN (one argv string, including its NUL) is 131072; stay under it
MAX_ARG_BYTES = 131_000
#: total argv of one child: ARG_MAX is 2 MiB by default (a quarter of the stack limit), shared with the
#: environment; each string also costs its pointer
MAX_ARGV_BYTES = 1_000_000


# ---- names ----

def check_policy_name(name: object, param: str = "name") -> str:
    if not isinstance(name, str) or not _POLICY_NAME.fullmatch(name):
        raise InvalidArgument(param, "a policy name is 1-64 of a-z 0-9 _ -")
    return name


def check_target_name(name: object, param: str = "target") -> str:
    if not isinstance(name, str) or not _TARGET_NAME.fullmatch(name):
        raise InvalidArgument(param, "a target name is 1-64 of a-z 0-9 _ (no '-': it separates the bookmark's "
                                     "policy and target)")
    return name


def hold_tag(policy: str, target: str) -> HoldTag:
    """`zfsapi:<policy>:<target>`: the hold one target of one policy keeps on its base."""
    return HoldTag.parse(f"{HOLD_PREFIX}{check_policy_name(policy, 'policy')}:{check_target_name(target)}")


def bookmark_name(dataset: DatasetName, policy: str, target: str) -> BookmarkName:
    """`ds#zfsapi-<policy>-<target>`. Raises InvalidArgument (`bookmark`) when the name would be too long."""
    short = f"zfsapi-{check_policy_name(policy, 'policy')}-{check_target_name(target)}"
    return dataset.bookmark(short)


def is_own_hold(tag: str, policy: str) -> bool:
    """True for a hold this policy places (`zfsapi:<policy>:<target>`)."""
    return tag.startswith(f"{HOLD_PREFIX}{policy}:")


def snapshot_short_name(prefix: str, when: datetime) -> str:
    """`<prefix>-YYYYMMDDTHHMMSSZ`, `when` (aware) in UTC."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidArgument("when", "must be a timezone-aware datetime")
    return f"{check_prefix(prefix)}-{when.astimezone(timezone.utc).strftime(_STAMP)}"


def parse_snapshot_time(short: str, prefix: str) -> datetime | None:
    """The UTC time in a name made by `snapshot_short_name(prefix, ...)`, or None when it is not one. Only for
    display and matching: retention reads a snapshot's age from its `creation`, never from its name."""
    head = f"{prefix}-"
    if not short.startswith(head) or not _STAMP_RE.fullmatch(short[len(head):]):
        return None
    try:
        return datetime.strptime(short[len(head):], _STAMP).replace(tzinfo=timezone.utc)
    except ValueError:  # 20260230T000000Z
        return None


def check_prefix(prefix: object, param: str = "prefix") -> str:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InvalidArgument(param, "a prefix is 1-64 of letters, digits and _ . : -, starting with a letter "
                                     "or digit")
    return prefix


# ---- value objects ----

@dataclass(frozen=True, slots=True)
class DatasetRule:
    dataset: DatasetName
    exclude: bool

    def __str__(self) -> str:
        return f"!{self.dataset}" if self.exclude else str(self.dataset)


@dataclass(frozen=True, slots=True)
class Selection:
    """What one snapshot run covers, in name order: `recursive` are roots whose whole listed subtree is
    covered (`zfs snapshot -r root@x`); `explicit` are covered datasets under no such root (their subtree has
    an exclude or a skipped dataset), which must be named one by one."""

    covered: tuple[DatasetName, ...]
    recursive: tuple[DatasetName, ...]
    explicit: tuple[DatasetName, ...]


@dataclass(frozen=True, slots=True)
class DatasetSelector:
    """Include/exclude entries; the last entry that matches a dataset (itself or an ancestor) decides."""

    rules: tuple[DatasetRule, ...]

    def covers(self, dataset: DatasetName) -> bool:
        decision = False
        for rule in self.rules:
            if dataset.is_within(rule.dataset):
                decision = not rule.exclude
        return decision

    def select(self, tree: Iterable[DatasetName], skip: Collection[DatasetName] = ()) -> Selection:
        """The datasets of a listed `tree` (e.g. `zfs list -r` of the roots) this covers, less `skip` (those
        below `min_written`), split into recursive roots and explicit names."""
        names = sorted(set(tree), key=lambda d: d.value)
        skipped = set(skip)
        covered = {d for d in names if d not in skipped and self.covers(d)}
        children: dict[DatasetName, list[DatasetName]] = {}
        for d in names:
            parent = d.parent
            if parent is not None:
                children.setdefault(parent, []).append(d)
        whole: set[DatasetName] = set()
        for d in sorted(names, key=lambda d: -d.depth):  # children before parents
            if d in covered and all(c in whole for c in children.get(d, ())):
                whole.add(d)
        # every descendant of a whole dataset is whole: the roots are the whole datasets under no whole parent
        roots = [d for d in names if d in whole and (d.parent is None or d.parent not in whole)]
        explicit = [d for d in names if d in covered and d not in whole]
        return Selection(tuple(d for d in names if d in covered), tuple(roots), tuple(explicit))


@dataclass(frozen=True, slots=True)
class SnapshotCall:
    """One `zfs snapshot [-r] a@x b@x ...` (all in one pool: ZFS takes them in one transaction group)."""

    recursive: bool
    snapshots: tuple[SnapshotName, ...]


def _argv_batches(items: Sequence[SnapshotName], limit: int) -> list[tuple[SnapshotName, ...]]:
    batches: list[tuple[SnapshotName, ...]] = []
    current: list[SnapshotName] = []
    size = 0
    for item in items:
        cost = len(item.value.encode()) + 9  # the string, its NUL and its pointer
        if current and size + cost > limit:
            batches.append(tuple(current))
            current, size = [], 0
        current.append(item)
        size += cost
    if current:
        batches.append(tuple(current))
    return batches


def plan_snapshot_calls(selection: Selection, short: str, *, atomic: bool,
                        max_argv_bytes: int = MAX_ARGV_BYTES) -> list[SnapshotCall]:
    """The `zfs snapshot` calls that take `short` of every covered dataset.

    atomic: per pool, one `zfs snapshot -r` of the roots when no covered dataset needs naming, else one call
    naming every covered dataset of the pool (atomic too: one call is one transaction group); split only
    when the names exceed `max_argv_bytes`. Not atomic: one call per dataset.
    """
    if not atomic:
        return [SnapshotCall(False, (d.snapshot(short),)) for d in selection.covered]
    pools: dict[PoolName, list[DatasetName]] = {}
    for d in selection.covered:
        pools.setdefault(d.pool, []).append(d)
    calls: list[SnapshotCall] = []
    for pool, covered in pools.items():
        explicit = any(d.pool == pool for d in selection.explicit)
        chosen = covered if explicit else [d for d in selection.recursive if d.pool == pool]
        names = [d.snapshot(short) for d in chosen]
        calls += [SnapshotCall(not explicit, batch) for batch in _argv_batches(names, max_argv_bytes)]
    return calls


@dataclass(frozen=True, slots=True)
class SnapshotSettings:
    schedule: Schedule | None = None
    timezone: str = "UTC"
    prefix: str = DEFAULT_PREFIX
    recursive_atomic: bool = True
    min_written: int = 0


@dataclass(frozen=True, slots=True)
class RetentionCounts:
    """How many to keep: the `keep_last` newest, and the oldest of each of the newest N hours, days, ISO weeks,
    months and years (see retention.py)."""

    keep_last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    FIELDS = ("keep_last", "hourly", "daily", "weekly", "monthly", "yearly")

    @property
    def keeps_nothing(self) -> bool:
        return not any(getattr(self, name) for name in self.FIELDS)

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True, slots=True)
class ReplicationTarget:
    name: str
    remote: str  # LOCAL or a replication.remotes name
    destination: DatasetName
    schedule: Schedule | None = None  # None: only when run (or after_snapshot)
    after_snapshot: bool = False
    retention: RetentionCounts | str = SAME_AS_SOURCE  # counts, SAME_AS_SOURCE or NO_RETENTION
    limit: float | None = None  # MB/s
    compression: str | None = None
    max_lag: float | None = None  # seconds: the RPO the health check holds the target to (None: twice its interval)


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy. `retention` None never prunes; `replicate` keeps the order the targets were given in."""

    name: str
    datasets: DatasetSelector
    snapshot: SnapshotSettings = field(default_factory=SnapshotSettings)
    retention: RetentionCounts | None = None
    replicate: tuple[ReplicationTarget, ...] = ()
    enabled: bool = True

    def target(self, name: str) -> ReplicationTarget | None:
        return next((t for t in self.replicate if t.name == name), None)

    def target_retention(self, name: str) -> RetentionCounts | None:
        """The counts a target prunes by, None when it is never pruned."""
        target = self.target(name)
        if target is None or target.retention == NO_RETENTION:
            return None
        if target.retention == SAME_AS_SOURCE:
            return self.retention
        return target.retention if isinstance(target.retention, RetentionCounts) else None

    def hold_tag(self, target: str) -> HoldTag:
        return hold_tag(self.name, target)

    def bookmark(self, dataset: DatasetName, target: str) -> BookmarkName:
        return bookmark_name(dataset, self.name, target)

    def to_dict(self) -> dict[str, Any]:
        """The contract's shape (what parse_policy reads back into an equal Policy)."""
        return _policy_dict(self)


def _policy_dict(p: Policy) -> dict[str, Any]:
    snap = p.snapshot
    return {
        "name": p.name,
        "datasets": [str(r) for r in p.datasets.rules],
        "snapshot": {"schedule": snap.schedule.expression if snap.schedule else None, "timezone": snap.timezone,
                     "prefix": snap.prefix, "recursive_atomic": snap.recursive_atomic,
                     "min_written": snap.min_written},
        "retention": p.retention.to_dict() if p.retention is not None else None,
        "replicate": {t.name: {
            "remote": t.remote, "destination": str(t.destination),
            "schedule": AFTER_SNAPSHOT if t.after_snapshot else (t.schedule.expression if t.schedule else None),
            "retention": t.retention.to_dict() if isinstance(t.retention, RetentionCounts) else t.retention,
            "limit": t.limit, "compression": t.compression,
            **({"max_lag": t.max_lag} if t.max_lag is not None else {})} for t in p.replicate},
        "enabled": p.enabled,
    }


# ---- parsing ----

def _mapping(raw: object, path: str, allowed: Collection[str]) -> Mapping[str, object]:
    if not isinstance(raw, Mapping):
        raise InvalidArgument(path, "must be an object (a mapping of keys)")
    for key in raw:
        if not isinstance(key, str) or key not in allowed:
            raise InvalidArgument(f"{path}.{key}", f"unknown key; expected one of {', '.join(allowed)}")
    return raw


def _bool(raw: object, path: str) -> bool:
    if not isinstance(raw, bool):
        raise InvalidArgument(path, "must be true or false")
    return raw


def _count(raw: object, path: str, maximum: int = MAX_COUNT) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= maximum:
        raise InvalidArgument(path, f"must be an integer from 0 to {maximum}")
    return raw


def _dataset(raw: object, path: str) -> DatasetName:
    try:
        return DatasetName.parse(raw)  # type: ignore[arg-type]  # parse checks the type itself
    except InvalidArgument as exc:
        raise exc.for_param(path) from None


def parse_datasets(raw: object, path: str) -> DatasetSelector:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(path, "must be a non-empty list of dataset names ('!' before a name excludes it)")
    if len(raw) > MAX_DATASET_ENTRIES:
        raise InvalidArgument(path, f"more than {MAX_DATASET_ENTRIES} entries")
    rules = []
    for i, entry in enumerate(raw):
        exclude = isinstance(entry, str) and entry.startswith("!")
        text = entry[1:] if exclude and isinstance(entry, str) else entry
        rules.append(DatasetRule(_dataset(text, f"{path}[{i}]"), exclude))
    if all(r.exclude for r in rules):
        raise InvalidArgument(path, "only excludes: name at least one dataset to include")
    return DatasetSelector(tuple(rules))


def parse_retention(raw: object, path: str) -> RetentionCounts:
    m = _mapping(raw, path, RetentionCounts.FIELDS)
    return RetentionCounts(**{k: _count(v, f"{path}.{k}") for k, v in m.items()})


def _snapshot_settings(raw: object, path: str) -> SnapshotSettings:
    if raw is None:
        return SnapshotSettings()
    m = _mapping(raw, path, ("schedule", "timezone", "prefix", "recursive_atomic", "min_written"))
    tz = check_timezone(m.get("timezone", "UTC"), f"{path}.timezone")  # a target's cron uses it too
    schedule = None
    if m.get("schedule") is not None:
        schedule = Schedule.parse(m["schedule"], tz, param=f"{path}.schedule", timezone_param=f"{path}.timezone")
    return SnapshotSettings(
        schedule=schedule,
        timezone=tz,
        prefix=check_prefix(m.get("prefix", DEFAULT_PREFIX), f"{path}.prefix"),
        recursive_atomic=_bool(m.get("recursive_atomic", True), f"{path}.recursive_atomic"),
        min_written=_count(m.get("min_written", 0), f"{path}.min_written", maximum=2**63 - 1),
    )


def _target_retention(raw: object, path: str) -> RetentionCounts | str:
    if raw in (SAME_AS_SOURCE, NO_RETENTION):
        return str(raw)
    if isinstance(raw, str):
        raise InvalidArgument(path, f"must be {SAME_AS_SOURCE!r}, {NO_RETENTION!r} or counts")
    counts = parse_retention(raw, path)
    if counts.keeps_nothing:
        raise InvalidArgument(path, f"keeps nothing: set a count, or {NO_RETENTION!r} to never prune")
    return counts


def _limit(raw: object, path: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < math.inf:
        raise InvalidArgument(path, "must be a positive number of MB/s, or null for no limit")
    return float(raw)


def _target(name: str, raw: object, path: str, tz: str, remotes: Collection[str] | None) -> ReplicationTarget:
    m = _mapping(raw, path, ("remote", "destination", "schedule", "retention", "limit", "compression", "max_lag"))
    for required in ("remote", "destination"):
        if required not in m:
            raise InvalidArgument(f"{path}.{required}", "missing (required)")
    remote = m["remote"]
    if not isinstance(remote, str) or not (remote == LOCAL or _REMOTE_NAME.fullmatch(remote)):
        raise InvalidArgument(f"{path}.remote", f"must be {LOCAL!r} or the name of a replication.remotes entry")
    if remotes is not None and remote != LOCAL and remote not in remotes:
        raise InvalidArgument(f"{path}.remote", f"{remote!r} is not a replication.remotes name")
    raw_schedule = m.get("schedule")
    after = raw_schedule == AFTER_SNAPSHOT
    schedule = None
    if raw_schedule is not None and not after:
        schedule = Schedule.parse(raw_schedule, tz, param=f"{path}.schedule")
    compression = m.get("compression")
    if compression is not None and compression not in COMPRESSIONS:
        raise InvalidArgument(f"{path}.compression", f"must be one of {', '.join(COMPRESSIONS)}, or null")
    return ReplicationTarget(
        name=name, remote=remote, destination=_dataset(m["destination"], f"{path}.destination"),
        schedule=schedule, after_snapshot=after,
        retention=_target_retention(m.get("retention", SAME_AS_SOURCE), f"{path}.retention"),
        limit=_limit(m.get("limit"), f"{path}.limit"), compression=compression if compression is None else
        str(compression), max_lag=_max_lag(m.get("max_lag"), f"{path}.max_lag"))


def _max_lag(raw: object, path: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < math.inf:
        raise InvalidArgument(path, "must be a positive number of seconds, or null")
    return float(raw)


_POLICY_KEYS = ("name", "datasets", "snapshot", "retention", "replicate", "enabled")


def parse_policy(raw: object, path: str = "policy", *, remotes: Collection[str] | None = None) -> Policy:
    """One policy in the contract's shape. `remotes`, when given, are the replication.remotes names a target
    may use. Raises InvalidArgument whose `param` is the key path under `path`."""
    m = _mapping(raw, path, _POLICY_KEYS)
    for required in ("name", "datasets"):
        if required not in m:
            raise InvalidArgument(f"{path}.{required}", "missing (required)")
    name = check_policy_name(m["name"], f"{path}.name")
    datasets = parse_datasets(m["datasets"], f"{path}.datasets")
    snapshot = _snapshot_settings(m.get("snapshot"), f"{path}.snapshot")
    retention = None
    if m.get("retention") is not None:
        retention = parse_retention(m["retention"], f"{path}.retention")
        if retention.keeps_nothing:
            raise InvalidArgument(f"{path}.retention", "keeps nothing (every count is 0): it would destroy "
                                                       "every snapshot the policy owns; leave retention out to "
                                                       "never prune")
    targets = []
    replicate = m.get("replicate") or {}
    if not isinstance(replicate, Mapping):
        raise InvalidArgument(f"{path}.replicate", "must be an object of targets by name")
    for target_name, target_raw in replicate.items():
        tpath = f"{path}.replicate.{target_name}"
        check_target_name(target_name, tpath)
        targets.append(_target(target_name, target_raw, tpath, snapshot.timezone, remotes))
    enabled = _bool(m.get("enabled", True), f"{path}.enabled")
    return Policy(name, datasets, snapshot, retention, tuple(targets), enabled)


def parse_policies(raw: object, path: str = "policies", *,
                   remotes: Collection[str] | None = None) -> tuple[Policy, ...]:
    """A `policies:` list (None: no policies). Names must be unique; errors name `policies[i]....`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidArgument(path, "must be a list of policies")
    seen: dict[str, int] = {}
    out = []
    for i, item in enumerate(raw):
        policy = parse_policy(item, f"{path}[{i}]", remotes=remotes)
        if policy.name in seen:
            raise InvalidArgument(f"{path}[{i}].name", f"{policy.name!r} is also policies[{seen[policy.name]}]")
        seen[policy.name] = i
        out.append(policy)
    return tuple(out)
