"""PolicyCatalog: config policies (read-only, swapped whole), API policies in the store (owner, CAS revision),
admins only, a scoped admin inside its scope with local targets only, a stored policy that no longer reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from tests.fakes import FixedClock
from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.application.policy_catalog import PolicyCatalog, config_owner
from zfsapi.application.policy_state import StoredPolicy
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, StateConflict
from zfsapi.domain.jobs import JobOwner
from zfsapi.domain.policies import Policy, parse_policy

ROOT = Principal("root", Role.ADMIN)
SCOPED = Principal("alice", Role.ADMIN, ("tank/a",))
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def raw(name: str = "home", **over: Any) -> dict[str, Any]:
    return {"name": name, "datasets": ["tank/a"], "retention": {"daily": 3}, **over}


class Config:
    def __init__(self, *policies: Policy) -> None:
        self.policies = tuple(policies)
        self.remotes = ("nas2",)


@pytest.fixture
def world():
    store, config = MemoryPolicyStore(), Config(parse_policy(raw("fromconfig", datasets=["tank/c"])))
    catalog = PolicyCatalog(store, store, lambda: config.policies, lambda: config.remotes, FixedClock(NOW))
    return catalog, store, config


async def test_config_and_api_policies_are_listed_in_name_order_with_their_source_and_owner(world):
    catalog, store, _ = world
    created = await catalog.create(ROOT, raw("api1"), origin="embedded")
    assert created.owner == JobOwner("root", "admin", (), "embedded") and created.revision == 1
    listed = await catalog.entries()
    assert [(e.policy.name, e.source) for e in listed] == [("api1", "api"), ("fromconfig", "config")]
    assert listed[1].owner == config_owner("fromconfig") == JobOwner("policy:fromconfig", "admin", (), "embedded")
    stored = await store.get("api1")
    assert stored is not None and stored.definition == parse_policy(raw("api1")).to_dict()
    assert stored.created_at == stored.updated_at == NOW.timestamp()


async def test_config_policies_change_when_the_configuration_is_swapped(world):
    catalog, _, config = world
    config.policies = (parse_policy(raw("other")),)
    assert [e.policy.name for e in await catalog.entries()] == ["other"]
    with pytest.raises(NotFound):
        await catalog.entry("fromconfig")


@pytest.mark.parametrize("op", ["update", "delete"])
async def test_a_config_policy_is_read_only_naming_name(world, op):
    catalog, _, _ = world
    with pytest.raises(InvalidArgument) as caught:
        if op == "update":
            await catalog.update(ROOT, "fromconfig", raw("fromconfig"))
        else:
            await catalog.delete(ROOT, "fromconfig")
    assert caught.value.param == "name" and "configuration" in caught.value.reason


async def test_creating_a_config_name_or_an_existing_name_is_refused(world):
    catalog, _, _ = world
    with pytest.raises(InvalidArgument) as caught:
        await catalog.create(ROOT, raw("fromconfig"))
    assert caught.value.param == "policy.name"
    await catalog.create(ROOT, raw("x"))
    with pytest.raises(AlreadyExists):
        await catalog.create(ROOT, raw("x"))


async def test_a_bad_definition_names_its_key_path_and_remotes_must_be_configured(world):
    catalog, _, _ = world
    with pytest.raises(InvalidArgument) as caught:
        await catalog.create(ROOT, raw(retention={"daily": -1}))
    assert caught.value.param == "policy.retention.daily"
    with pytest.raises(InvalidArgument) as caught:
        await catalog.create(ROOT, raw(replicate={"t": {"remote": "nas9", "destination": "b/x"}}))
    assert caught.value.param == "policy.replicate.t.remote"
    await catalog.create(ROOT, raw(replicate={"t": {"remote": "nas2", "destination": "b/x"}}))


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.READONLY])
async def test_only_admins_may_use_policies(world, role):
    catalog, _, _ = world
    who = Principal("bob", role)
    for call in (catalog.visible(who), catalog.find(who, "fromconfig"), catalog.create(who, raw("n")),
                 catalog.update(who, "n", raw("n")), catalog.delete(who, "n")):
        with pytest.raises(PermissionDenied):
            await call


async def test_a_scoped_admin_sees_and_manages_only_policies_inside_its_scope_with_local_targets(world):
    catalog, _, _ = world
    await catalog.create(ROOT, raw("outside", datasets=["tank/b"]))
    await catalog.create(ROOT, raw("remote", replicate={"t": {"remote": "nas2", "destination": "tank/a/r"}}))
    mine = await catalog.create(SCOPED, raw("mine", replicate={"t": {"remote": "local", "destination": "tank/a/r"}}))
    assert mine.owner.prefixes == ("tank/a",)
    assert [e.policy.name for e in await catalog.visible(SCOPED)] == ["mine"]
    for name in ("outside", "remote", "fromconfig"):
        with pytest.raises(NotFound):
            await catalog.find(SCOPED, name)
    with pytest.raises(NotFound):
        await catalog.delete(SCOPED, "outside")
    with pytest.raises(PermissionDenied) as caught:
        await catalog.create(SCOPED, raw("wide", datasets=["tank/a", "tank/b"]))
    assert caught.value.dataset == "tank/b"
    with pytest.raises(PermissionDenied) as caught:
        await catalog.create(SCOPED, raw("far", replicate={"t": {"remote": "nas2", "destination": "tank/a/x"}}))
    assert caught.value.dataset == "replicate.t.remote" and "local" in caught.value.reason
    with pytest.raises(PermissionDenied):
        await catalog.update(SCOPED, "mine", raw("mine", replicate={"t": {"remote": "local", "destination": "b/r"}}))
    await catalog.delete(SCOPED, "mine")


async def test_update_keeps_the_name_moves_the_revision_and_makes_the_caller_owner(world):
    catalog, store, _ = world
    await catalog.create(ROOT, raw("x"))
    updated = await catalog.update(SCOPED, "x", {"datasets": ["tank/a/y"]})
    assert (updated.revision, updated.owner.name, updated.policy.retention) == (2, "alice", None)
    with pytest.raises(InvalidArgument) as caught:
        await catalog.update(ROOT, "x", raw("renamed"))
    assert caught.value.param == "policy.name"
    with pytest.raises(NotFound):
        await catalog.update(ROOT, "missing", raw("missing"))


class RacingStore(MemoryPolicyStore):
    """Another update lands between the catalog's read and its compare-and-set."""

    async def replace(self, stored: StoredPolicy, *, revision: int) -> StoredPolicy | None:
        current = await self.get(stored.name)
        assert current is not None
        await super().replace(replace(current), revision=current.revision)
        return await super().replace(stored, revision=revision)


async def test_a_concurrent_update_loses_with_a_conflict():
    store = RacingStore()
    catalog = PolicyCatalog(store, store, lambda: (), lambda: (), FixedClock(NOW))
    await catalog.create(ROOT, raw("x"))
    with pytest.raises(StateConflict) as caught:
        await catalog.update(ROOT, "x", raw("x", datasets=["tank/z"]))
    assert "meanwhile" in caught.value.reason
    assert (await catalog.entry("x")).policy.datasets == parse_policy(raw("x")).datasets


async def test_delete_forgets_the_ledger_and_a_new_policy_starts_afresh(world):
    catalog, store, _ = world
    await catalog.create(ROOT, raw("x"))
    await store.note("x", "last:snapshot", {"job_id": "j"})
    await store.claim_slot("x:snapshot", "20261206T120000Z")
    await catalog.delete(ROOT, "x")
    assert await store.notes("x") == {} and await store.last_slot("x:snapshot") is None
    with pytest.raises(NotFound):
        await catalog.delete(ROOT, "x")


async def test_a_stored_policy_that_no_longer_reads_is_left_out_of_lists_and_can_be_deleted(world, caplog):
    catalog, store, _ = world
    await store.add(StoredPolicy("old", {"name": "old", "datasets": ["tank/a"], "future_key": 1},
                                 JobOwner.of(ROOT), 0.0, 0.0))
    await catalog.create(ROOT, raw("good"))
    assert [e.policy.name for e in await catalog.visible(ROOT)] == ["fromconfig", "good"]
    assert "stored policy left out" in caplog.text
    with pytest.raises(StateConflict) as caught:
        await catalog.entry("old")
    assert "no longer reads" in caught.value.reason and "future_key" in caught.value.reason
    with pytest.raises(NotFound):
        await catalog.delete(SCOPED, "old")  # whose scope it was in cannot be told: unrestricted admins only
    await catalog.delete(ROOT, "old")
    assert await store.get("old") is None


async def test_a_stored_policy_shadowed_by_a_config_one_of_its_name_is_hidden(world):
    catalog, store, config = world
    await catalog.create(ROOT, raw("x", datasets=["tank/x"]))
    config.policies = (*config.policies, parse_policy(raw("x")))
    found = [e for e in await catalog.entries() if e.policy.name == "x"]
    assert [(e.source, e.policy.datasets) for e in found] == [("config", parse_policy(raw("x")).datasets)]
