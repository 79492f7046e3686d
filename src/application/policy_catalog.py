"""The policies this server runs: those declared in the configuration (read-only here, swapped in on reload) and
those created over the API (kept in the PolicyStore), by name.

Rights: policies are for admins only; every other role is refused. An admin with a dataset scope sees, runs,
creates, changes and deletes only the policies whose every include dataset lies in its scope and whose every
replication target is "local" with its destination in its scope: a scoped admin may not name a remote (a remote
reaches beyond any dataset scope), so a policy replicating to one is an unrestricted admin's.

A stored policy is parsed again on every read; one this version no longer reads is left out of every listing
(with a warning in the log, once per read) and fails as a whole where it is named (StateConflict), never
half-applied; it can still be deleted (by an unrestricted admin) or replaced by an update."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Collection, Literal, Mapping, Sequence

from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import InvalidArgument, NotFound, PermissionDenied, StateConflict
from zfsapi.domain.jobs import JobOwner, Origin
from zfsapi.domain.policies import LOCAL, Policy, check_policy_name, parse_policy

from .policy_state import PolicyLedger, PolicyStore, StoredPolicy
from .ports import Clock

log = logging.getLogger("zfsapi.policies")

Source = Literal["config", "api"]


def config_owner(name: str) -> JobOwner:
    """Who a config policy's scheduled runs run as: an unrestricted admin in no user configuration (the
    configuration file is the authority), kept as given when its jobs start."""
    return JobOwner(f"policy:{name}", Role.ADMIN.value, (), "embedded")


@dataclass(frozen=True, slots=True)
class PolicyEntry:
    """One policy as this server runs it: where it is declared, and who its scheduled runs run as (config: the
    policy itself as an unrestricted admin; api: the admin who last created or updated it). `revision`: the
    store's (0 for a config policy)."""

    policy: Policy
    source: Source
    owner: JobOwner
    revision: int = 0


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """A policy with its ledger notes (see PolicyLedger.note) and the time they were read at."""

    entry: PolicyEntry
    notes: dict[str, dict[str, Any]]
    now: float


def within_scope(who: Principal, policy: Policy) -> str | None:
    """None when `who` may manage `policy`, else the dataset (or target) that is outside its scope."""
    if who.unrestricted:
        return None
    for rule in policy.datasets.rules:
        if not rule.exclude and not who.covers(rule.dataset.value):
            return rule.dataset.value
    for target in policy.replicate:
        if target.remote != LOCAL:
            return f"replicate.{target.name}.remote"
        if not who.covers(target.destination.value):
            return target.destination.value
    return None


def _admin(who: Principal, method: str) -> None:
    if who.role is not Role.ADMIN:
        raise PermissionDenied(method, None, f"policies are for admins; {who.name} is {who.role.value}")


def _check_scope(who: Principal, policy: Policy, method: str) -> None:
    outside = within_scope(who, policy)
    if outside is not None:
        reason = ("a scoped admin may only replicate to \"local\" destinations in its scope"
                  if outside.startswith("replicate.") else "outside the datasets this user may touch")
        raise PermissionDenied(method, outside, reason)


class PolicyCatalog:
    """Every policy by name: `configured()` gives the config's now (reloaded), `remotes()` the replication.remotes
    names a new or changed policy may use; the API's are in `store`, their status notes in `ledger`."""

    def __init__(self, store: PolicyStore, ledger: PolicyLedger, configured: Callable[[], Sequence[Policy]],
                 remotes: Callable[[], Collection[str]], clock: Clock) -> None:
        self._store, self._ledger = store, ledger
        self._configured, self._remotes, self._clock = configured, remotes, clock

    def _config(self) -> dict[str, Policy]:
        return {p.name: p for p in self._configured()}

    def now(self) -> float:
        return self._clock.now().timestamp()

    # ---- without a rights check (the scheduler, the job kinds) ----

    async def entries(self) -> list[PolicyEntry]:
        """Every policy, in name order. A stored policy named like a config one, or one that no longer parses,
        is left out (logged)."""
        config = self._config()
        found = [PolicyEntry(p, "config", config_owner(p.name)) for p in config.values()]
        for stored in await self._store.all():
            if stored.name in config:
                log.warning("stored policy hidden by the config policy of its name", extra={"policy": stored.name})
                continue
            try:
                found.append(_entry(stored))
            except StateConflict as exc:
                log.warning("stored policy left out", extra={"policy": stored.name, "reason": exc.reason})
        return sorted(found, key=lambda e: e.policy.name)

    async def entry(self, name: str) -> PolicyEntry:
        """The policy of that name. Raises NotFound("policy", name); StateConflict for a stored policy this
        version no longer reads."""
        config = self._config().get(name)
        if config is not None:
            return PolicyEntry(config, "config", config_owner(name))
        stored = await self._store.get(name)
        if stored is None:
            raise NotFound("policy", name)
        return _entry(stored)

    # ---- the caller's (admins only, within their scope) ----

    async def visible(self, who: Principal) -> list[PolicyEntry]:
        _admin(who, "policy_list")
        return [e for e in await self.entries() if within_scope(who, e.policy) is None]

    async def find(self, who: Principal, name: str, method: str = "policy_get") -> PolicyEntry:
        """The policy `who` may see. Raises PermissionDenied (not an admin), NotFound (none of that name, or
        outside the caller's scope)."""
        _admin(who, method)
        check_policy_name(name)
        entry = await self.entry(name)
        if within_scope(who, entry.policy) is not None:
            raise NotFound("policy", name)
        return entry

    async def status(self, who: Principal, name: str) -> PolicyStatus:
        entry = await self.find(who, name)
        return PolicyStatus(entry, await self._ledger.notes(name), self.now())

    async def create(self, who: Principal, raw: Mapping[str, Any], *, origin: Origin | None = None) -> PolicyEntry:
        """Store a new policy, owned by `who`. Raises InvalidArgument (`policy.<key path>`; `policy.name` for a
        config policy's name), PermissionDenied, AlreadyExists("policy", name)."""
        _admin(who, "policy_create")
        policy = parse_policy(raw, "policy", remotes=self._remotes())
        if policy.name in self._config():
            raise InvalidArgument("policy.name", f"{policy.name!r} is declared in the configuration (read-only "
                                                 "here): choose another name")
        _check_scope(who, policy, "policy_create")
        now = self.now()
        stored = StoredPolicy(policy.name, policy.to_dict(), JobOwner.of(who, origin), now, now)
        await self._store.add(stored)
        return PolicyEntry(policy, "api", stored.owner, stored.revision)

    async def update(self, who: Principal, name: str, raw: Mapping[str, Any], *,
                     origin: Origin | None = None) -> PolicyEntry:
        """Replace a stored policy (its name stays; `raw` may leave `name` out); `who` becomes its owner.
        Raises InvalidArgument (`name` for a config policy, `policy.<key path>`), NotFound, PermissionDenied,
        StateConflict (changed by another update meanwhile: read it again)."""
        _admin(who, "policy_update")
        stored = await self._stored(who, name, "policy_update")
        raw = {**raw, "name": raw.get("name", name)}
        if raw["name"] != name:
            raise InvalidArgument("policy.name", f"must be {name!r}: a policy is not renamed (create another)")
        policy = parse_policy(raw, "policy", remotes=self._remotes())
        _check_scope(who, policy, "policy_update")
        new = StoredPolicy(name, policy.to_dict(), JobOwner.of(who, origin), stored.created_at, self.now())
        done = await self._store.replace(new, revision=stored.revision)
        if done is None:
            raise StateConflict(f"policy {name} was changed or deleted meanwhile: read it again", policy=name)
        return PolicyEntry(policy, "api", done.owner, done.revision)

    async def delete(self, who: Principal, name: str) -> None:
        """Delete a stored policy and its status notes; its snapshots, holds and bookmarks stay. Raises
        InvalidArgument (`name`: a config policy), NotFound, PermissionDenied."""
        _admin(who, "policy_delete")
        await self._stored(who, name, "policy_delete")
        if not await self._store.remove(name):
            raise NotFound("policy", name)
        await self._ledger.forget(name)

    async def _stored(self, who: Principal, name: str, method: str) -> StoredPolicy:
        """The stored policy `who` may change: in its scope (one that no longer parses: unrestricted admins)."""
        check_policy_name(name)
        if name in self._config():
            raise InvalidArgument("name", f"{name!r} is declared in the configuration: change it there (read-only "
                                          "over the API)")
        stored = await self._store.get(name)
        if stored is None:
            raise NotFound("policy", name)
        try:
            current = _entry(stored).policy
        except StateConflict:
            if not who.unrestricted:
                raise NotFound("policy", name) from None
            return stored
        if within_scope(who, current) is not None:
            raise NotFound("policy", name)
        return stored


def _entry(stored: StoredPolicy) -> PolicyEntry:
    """A stored policy as it reads now (its remotes as stored: one since removed from the configuration fails
    where it is used). Raises StateConflict when this version no longer reads it."""
    try:
        policy = parse_policy(stored.definition, "policy")
    except InvalidArgument as exc:
        raise StateConflict(f"policy {stored.name} as stored no longer reads: {exc.message}",
                            policy=stored.name) from None
    return PolicyEntry(policy, "api", stored.owner, stored.revision)
