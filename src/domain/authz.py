"""Who may do what: roles, dataset scopes and the one decision function every method goes through.

Roles
- admin: everything.
- operator: no destroy, rollback, forced receive, and no setting of mountpoint/sharenfs/sharesmb (on create
  either: a property given to dataset_create or clone_create is a property change too).
- readonly: list/get/status/estimate only.

A principal may also be confined to dataset prefixes: "tank/backups" covers tank/backups, everything below it,
and their snapshots and bookmarks. Lists are filtered to what is covered; a listing may start at an ancestor
of a prefix (listing "tank" shows the covered part of it). Pool-wide actions (scrub) need the whole pool.
A job's scope is every name it touches, pools included: a job on a pool (a scrub of "tank") is seen, followed,
waited on and cancelled only by callers whose scope holds the whole pool (the prefix "tank"); "tank/backups"
does not cover it. A job runs with its owner's role and scope as they are when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Mapping

from .errors import PermissionDenied

PROTECTED_PROPERTIES = frozenset({"mountpoint", "sharenfs", "sharesmb"})


class Role(Enum):
    ADMIN = "admin"
    OPERATOR = "operator"
    READONLY = "readonly"


class Action(Enum):
    """What a method does, as far as permissions go."""

    LIST = "list"  # read, may name an ancestor of the caller's scope; results are filtered
    READ = "read"  # get/status/estimate
    CHANGE = "change"  # create, set, mount, snapshot, hold, send, receive, scrub...
    DESTROY = "destroy"  # destroy, rollback: admin only
    SELF = "self"  # acts on the caller's own session (auth_logout)


def dataset_of(name: str) -> str:
    """'tank/a@s' / 'tank/a#b' / 'tank/a' -> 'tank/a'."""
    return name.split("@", 1)[0].split("#", 1)[0]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `prefixes` empty means every dataset."""

    name: str
    role: Role
    prefixes: tuple[str, ...] = ()
    token_id: str | None = None  # the presented token's jti (None for passwordless localhost)
    token_expires: float | None = None

    @property
    def unrestricted(self) -> bool:
        return not self.prefixes

    @property
    def unrestricted_admin(self) -> bool:
        """An admin without a dataset scope: trusted with what reaches beyond datasets (mounts, all files)."""
        return self.role is Role.ADMIN and not self.prefixes

    def covers(self, name: str) -> bool:
        """May act on this dataset, snapshot or bookmark."""
        if not self.prefixes:
            return True
        ds = dataset_of(name)
        return any(_within(ds, p) for p in self.prefixes)

    def may_list_under(self, name: str) -> bool:
        """May start a listing at `name`: it is covered, or an ancestor of a covered prefix."""
        if self.covers(name):
            return True
        ds = dataset_of(name)
        return any(_within(p, ds) for p in self.prefixes)

    def sees_pool(self, pool: str) -> bool:
        return not self.prefixes or any(p.split("/", 1)[0] == pool for p in self.prefixes)

    def owns_pool(self, pool: str) -> bool:
        return not self.prefixes or pool in self.prefixes

    def visible(self, names: Iterable[str]) -> list[str]:
        return list(names) if not self.prefixes else [n for n in names if self.covers(n)]


LOCALHOST = Principal("localhost", Role.ADMIN)


class Carries(Enum):
    """What a method's parameter carries, as far as permissions go (each method declares its own)."""

    DATASET = "dataset"  # a dataset, snapshot or bookmark named in full
    SNAPSHOT = "snapshot"  # a snapshot or bookmark: short (of the call's dataset) unless it holds '@' or '#'
    POOL = "pool"
    PROPERTY = "property"  # the name of a property the call sets
    PROPERTIES = "properties"  # a {property: value} map the call sets
    FORCE = "force"  # a flag: true lets a receive roll back and destroy (zfs receive -F)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One call, as far as permissions go: see `access_request`."""

    method: str
    action: Action
    datasets: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()  # properties the call sets
    force: bool = False  # a receive that may roll back / destroy (zfs receive -F)


def access_request(method: str, action: Action, carried: Iterable[tuple[Carries, object]]) -> AccessRequest:
    """The AccessRequest of a call, from the values of the parameters its method declares, with what each
    carries. Absent values (None) carry nothing; a short snapshot name is covered by the call's dataset."""
    datasets: list[str] = []
    pools: list[str] = []
    setting: list[str] = []
    force = False
    for kind, value in carried:
        if isinstance(value, str):
            if kind is Carries.DATASET or (kind is Carries.SNAPSHOT and ("@" in value or "#" in value)):
                datasets.append(value)
            elif kind is Carries.POOL:
                pools.append(value)
            elif kind is Carries.PROPERTY:
                setting.append(value)
        elif kind is Carries.PROPERTIES and isinstance(value, Mapping):
            setting.extend(value)
        elif kind is Carries.FORCE:
            force = force or value is True
    return AccessRequest(method, action, tuple(datasets), tuple(pools), tuple(setting), force)


def authorize(who: Principal, req: AccessRequest) -> None:
    """Raise PermissionDenied naming the method and what was refused; return when allowed."""
    first = req.datasets[0] if req.datasets else (req.pools[0] if req.pools else None)
    if who.role is Role.READONLY and req.action not in (Action.LIST, Action.READ, Action.SELF):
        raise PermissionDenied(req.method, first, "the readonly role may only list, get, check status and estimate")
    if who.role is Role.OPERATOR:
        if req.action is Action.DESTROY:
            raise PermissionDenied(req.method, first, "the operator role may not destroy or roll back")
        if req.force:
            raise PermissionDenied(req.method, first, "the operator role may not force a receive")
        protected = sorted(PROTECTED_PROPERTIES.intersection(req.properties))
        if protected:
            raise PermissionDenied(req.method, first, f"the operator role may not set {', '.join(protected)}")
    if who.unrestricted:
        return
    for name in req.datasets:
        allowed = who.may_list_under(name) if req.action is Action.LIST else who.covers(name)
        if not allowed:
            raise PermissionDenied(req.method, name, "outside the datasets this user may touch")
    for pool in req.pools:
        allowed = who.sees_pool(pool) if req.action in (Action.LIST, Action.READ) else who.owns_pool(pool)
        if not allowed:
            raise PermissionDenied(req.method, pool, "outside the pools this user may touch")
