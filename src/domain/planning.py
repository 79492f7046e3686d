"""Pure decisions: what a rollback would remove, how a destroy is flagged, auto-snapshot names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from .errors import InvalidArgument, NotFound, StateConflict
from .models import Snapshot
from .names import SnapshotName


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    target: SnapshotName
    destroys: list[str]  # full names of the newer snapshots that `zfs rollback -r` removes

    @property
    def needs_recursive(self) -> bool:
        return bool(self.destroys)


def plan_rollback(target: SnapshotName, snapshots: Sequence[Snapshot], destroy_newer: bool) -> RollbackPlan:
    """Decide a rollback to `target` given the dataset's snapshots (any order).

    Raises:
        NotFound: `target` is not among `snapshots`.
        StateConflict: newer snapshots exist and `destroy_newer` is false (`details.newer` lists them).
    """
    by_name = {s.name: s for s in snapshots}
    chosen = by_name.get(target.value)
    if chosen is None:
        raise NotFound("snapshot", target.value)
    newer = sorted((s for s in snapshots if s.createtxg > chosen.createtxg), key=lambda s: s.createtxg)
    names = [s.name for s in newer]
    if names and not destroy_newer:
        raise StateConflict(
            f"rollback to {target} would destroy {len(names)} newer snapshot(s); pass destroy_newer=true",
            newer=names,
        )
    return RollbackPlan(target, names)


@dataclass(frozen=True, slots=True)
class DestroyFlags:
    recursive: bool  # -r: children and snapshots
    dependents: bool  # -R: also clones elsewhere in the pool


def plan_destroy(recursive: bool, recursive_dependents: bool) -> DestroyFlags:
    """`recursive` maps to -r; clones of other datasets go only with `recursive_dependents` (-R)."""
    return DestroyFlags(recursive=recursive or recursive_dependents, dependents=recursive_dependents)


def auto_snapshot_name(tag: str, tag1: str | None, now: datetime, existing: Iterable[str]) -> str:
    """`tag[_tag1]_YYYY-MM-DD-HH-MM` in UTC; `-SS` then a counter are added when the name is taken."""
    if tag == "":
        raise InvalidArgument("tag", "must not be empty")
    if tag1 == "":
        raise InvalidArgument("tag1", "must not be empty when given")
    taken = set(existing)
    utc = now.astimezone(timezone.utc)
    prefix = f"{tag}_{tag1}" if tag1 else tag
    base = f"{prefix}_{utc:%Y-%m-%d-%H-%M}"
    if base not in taken:
        return base
    with_seconds = f"{base}-{utc:%S}"
    if with_seconds not in taken:
        return with_seconds
    counter = 2
    while f"{with_seconds}-{counter}" in taken:
        counter += 1
    return f"{with_seconds}-{counter}"
