"""The PolicyStore and PolicyLedger ports' contract (application/policy_state.py): every call answered the same
way by the memory store (the reference), the embedded SQLite store and the Redis store, including the races that
servers sharing one store must win (one update of a revision, one claim of a slot).

`PolicyStoreContract` holds the cases; a subclass provides the `stores` fixture (a Stores). tests/unit runs them
over the memory and embedded stores, tests/integration/service over Redis."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

import pytest

from zfsapi.application.policy_state import PolicyLedger, PolicyStore, StoredPolicy
from zfsapi.domain.errors import AlreadyExists
from zfsapi.domain.jobs import JobOwner

T0 = 1_764_650_000.123456789  # no float of 14 digits: a store that rounds loses it
OWNER = JobOwner("ops: night shift", "admin", ("tank/a b", "tank/x.y:z"), "token")
DEFINITION: dict[str, Any] = {
    "name": "home", "datasets": ["tank/home", "!tank/home/tmp"],
    "snapshot": {"schedule": "0 * * * *", "timezone": "Europe/Berlin", "prefix": "auto", "recursive_atomic": True,
                 "min_written": 0},
    "retention": {"keep_last": 3, "hourly": 24, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 2},
    "replicate": {"nas2": {"remote": "nas2", "destination": "backup/home", "schedule": "after_snapshot",
                           "retention": "same_as_source", "limit": 1 / 3, "compression": None}},
    "enabled": True,
}
NOTE: dict[str, Any] = {"last_success": T0 + 1 / 7, "base_snapshot": "auto-20261206T040000Z", "failures": 0,
                        "last_error": None, "datasets": ["tank/home", "tank/home/ü"]}


class Store(PolicyStore, PolicyLedger, Protocol):
    """What every backend is: both ports in one."""


@dataclass
class Stores:
    store: Store
    other: Store  # another server's view of the same records (another process); memory: the same store
    reopen: Callable[[], Store] | None  # a new instance on the same records (a restart); None: none survive


def make(name: str = "home", *, revision: int = 1, owner: JobOwner = OWNER, **changes: Any) -> StoredPolicy:
    return StoredPolicy(name, {**copy.deepcopy(DEFINITION), "name": name, **changes}, owner, T0, T0 + 1 / 3,
                        revision)


class PolicyStoreContract:
    """The cases; a subclass provides the `stores` fixture."""

    async def test_add_get_and_remove_keep_every_field_exactly(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        stored = make(revision=4, owner=JobOwner("local bob", "operator", (), None))
        await s.add(stored)
        assert await s.get("home") == stored
        assert await o.get("home") == stored
        assert await s.get("homes") is None
        assert await o.remove("home") is True
        assert await s.get("home") is None
        assert await s.remove("home") is False
        assert await s.all() == []
        await o.add(make())  # the name is free again
        assert await s.get("home") == make()

    async def test_adding_a_name_that_is_stored_is_already_exists(self, stores: Stores) -> None:
        await stores.store.add(make())
        with pytest.raises(AlreadyExists) as exists:
            await stores.other.add(make(enabled=False, revision=7))
        assert (exists.value.kind, exists.value.name) == ("policy", "home")
        assert await stores.store.get("home") == make()

    async def test_concurrent_adds_of_one_name_one_wins(self, stores: Stores) -> None:
        tries = [(stores.store if n % 2 else stores.other).add(make(datasets=[f"tank/{n}"])) for n in range(10)]
        outcomes = await asyncio.gather(*tries, return_exceptions=True)
        assert [type(x) for x in outcomes].count(AlreadyExists) == 9
        won = outcomes.index(None)
        assert await stores.store.get("home") == make(datasets=[f"tank/{won}"])

    async def test_all_is_in_name_order(self, stores: Stores) -> None:
        for name in ("b", "a-b", "ab", "a", "a_b", "c0", "c"):
            await stores.store.add(make(name))
        found = await stores.other.all()
        assert [p.name for p in found] == ["a", "a-b", "a_b", "ab", "b", "c", "c0"]
        assert found == [make(p.name) for p in found]

    async def test_replace_is_a_compare_and_set_on_the_revision(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        await s.add(make())
        changed = make(enabled=False, revision=99)  # the revision given is not the one stored
        second = replace(changed, updated_at=T0 + 2 / 3)
        assert await o.replace(changed, revision=1) == replace(changed, revision=2)
        assert await s.get("home") == replace(changed, revision=2)
        assert await s.replace(second, revision=1) is None  # moved on
        assert await s.get("home") == replace(changed, revision=2)
        assert await s.replace(second, revision=2) == replace(second, revision=3)
        assert await o.get("home") == replace(second, revision=3)
        assert await s.replace(make("other"), revision=1) is None  # no such policy
        assert await s.get("other") is None
        assert [p.name for p in await s.all()] == ["home"]

    async def test_two_replaces_of_one_revision_one_wins(self, stores: Stores) -> None:
        await stores.store.add(make())
        tries = [(stores.store if n % 2 else stores.other).replace(make(datasets=[f"tank/{n}"]), revision=1)
                 for n in range(20)]
        outcomes = await asyncio.gather(*tries)
        won = [x for x in outcomes if x is not None]
        assert len(won) == 1
        assert won[0].revision == 2
        assert await stores.store.get("home") == won[0]

    async def test_definitions_are_copies(self, stores: Stores) -> None:
        """Changing a definition given, or one read back, changes nothing stored."""
        s = stores.store
        given = make()
        await s.add(given)
        given.definition["snapshot"]["prefix"] = "changed"
        read = await s.get("home")
        assert read is not None and read.definition["snapshot"]["prefix"] == "auto"
        read.definition["replicate"]["nas2"]["limit"] = 5
        read.definition["enabled"] = False  # type: ignore[index]
        (listed,) = await s.all()
        listed.definition["datasets"].append("tank/x")
        assert await s.get("home") == make()
        replaced = await s.replace(make(), revision=1)
        assert replaced is not None
        replaced.definition["retention"]["hourly"] = 0
        assert await s.get("home") == make(revision=2)

    async def test_claim_slot_records_only_a_later_slot(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        key = "home:snapshot"
        assert await s.last_slot(key) is None
        assert await s.claim_slot(key, "2026-12-06T04:00:00Z") is True
        assert await o.claim_slot(key, "2026-12-06T04:00:00Z") is False  # the same slot: taken
        assert await o.claim_slot(key, "2026-12-06T03:00:00Z") is False  # older
        assert await o.last_slot(key) == "2026-12-06T04:00:00Z"
        assert await o.claim_slot(key, "2026-12-06T05:00:00Z") is True  # newer
        assert await s.last_slot(key) == "2026-12-06T05:00:00Z"
        assert await s.claim_slot("home:replicate:nas2", "2026-12-06T04:00:00Z") is True  # keys apart
        assert await s.last_slot("home:replicate:nas2") == "2026-12-06T04:00:00Z"
        assert await s.last_slot(key) == "2026-12-06T05:00:00Z"
        assert await s.last_slot("home:replicate") is None

    async def test_concurrent_claims_of_one_slot_one_wins(self, stores: Stores) -> None:
        for slot in ("2026-12-06T04:00:00Z", "2026-12-06T05:00:00Z"):
            claims = [(stores.store if n % 2 else stores.other).claim_slot("home:snapshot", slot)
                      for n in range(20)]
            assert sorted(await asyncio.gather(*claims)) == [False] * 19 + [True]
        assert await stores.other.last_slot("home:snapshot") == "2026-12-06T05:00:00Z"

    async def test_note_replaces_one_field_and_notes_reads_them_all(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        assert await s.notes("home") == {}
        await s.note("home", "target:nas2", NOTE)
        await o.note("home", "last:snapshot", {"job_id": "j1", "state": "succeeded", "finished_at": T0})
        assert await o.notes("home") == {"target:nas2": NOTE,
                                          "last:snapshot": {"job_id": "j1", "state": "succeeded", "finished_at": T0}}
        await o.note("home", "last:snapshot", {"job_id": "j2", "state": "running"})  # replaced, not merged
        assert await s.notes("home") == {"target:nas2": NOTE, "last:snapshot": {"job_id": "j2", "state": "running"}}
        assert await s.notes("homes") == {}
        assert await s.notes("hom") == {}

    async def test_notes_are_copies(self, stores: Stores) -> None:
        s = stores.store
        given = copy.deepcopy(NOTE)
        await s.note("home", "target:nas2", given)
        given["datasets"].append("tank/x")
        read = await s.notes("home")
        assert read == {"target:nas2": NOTE}
        read["target:nas2"]["failures"] = 3
        read["other"] = {}
        assert await s.notes("home") == {"target:nas2": NOTE}

    async def test_forget_drops_the_notes_and_slots_of_that_policy_only(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        policies = ("a", "ab", "a-b", "a_b", "b")
        for p in policies:
            await s.add(make(p))
            await s.note(p, "last:snapshot", {"job_id": p})
            for key in (p, p + ":snapshot", p + ":replicate:nas2"):
                assert await s.claim_slot(key, "2026-12-06T04:00:00Z") is True
        await o.forget("a")
        await o.forget("nothing")
        assert await s.notes("a") == {}
        for key in ("a", "a:snapshot", "a:replicate:nas2"):
            assert await s.last_slot(key) is None
        for p in policies[1:]:
            assert await s.notes(p) == {"last:snapshot": {"job_id": p}}
            for key in (p, p + ":snapshot", p + ":replicate:nas2"):
                assert await s.last_slot(key) == "2026-12-06T04:00:00Z"
        assert await s.get("a") == make("a")  # the ledger only: removing the policy is remove()'s
        assert await s.claim_slot("a:snapshot", "2026-12-06T03:00:00Z") is True  # afresh
        await s.note("a", "last:prune", {"job_id": "p"})
        assert await o.notes("a") == {"last:prune": {"job_id": "p"}}

    async def test_everything_survives_a_restart(self, stores: Stores) -> None:
        if stores.reopen is None:
            pytest.skip("the memory store keeps nothing past its process")
        s = stores.store
        await s.add(make("b"))
        await s.add(make("a"))
        updated = await s.replace(make("a", enabled=False), revision=1)
        assert await s.claim_slot("a:snapshot", "2026-12-06T04:00:00Z") is True
        await s.note("a", "target:nas2", NOTE)
        restarted = stores.reopen()
        assert await restarted.all() == [updated, make("b")]
        assert await restarted.last_slot("a:snapshot") == "2026-12-06T04:00:00Z"
        assert await restarted.claim_slot("a:snapshot", "2026-12-06T04:00:00Z") is False
        assert await restarted.notes("a") == {"target:nas2": NOTE}
        with pytest.raises(AlreadyExists):
            await restarted.add(make("b"))
        assert await restarted.replace(make("a"), revision=1) is None
