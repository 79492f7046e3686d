"""Policies and their ledger in this process (tests and embedders that need no persistence): the reference the
other stores are held to (tests/policy_store_contract.py)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Mapping

from zfsapi.application.policy_state import PolicyLedger, PolicyStore, StoredPolicy
from zfsapi.domain.errors import AlreadyExists


class MemoryPolicyStore(PolicyStore, PolicyLedger):
    def __init__(self) -> None:
        self._policies: dict[str, StoredPolicy] = {}
        self._slots: dict[str, str] = {}
        self._notes: dict[str, dict[str, dict[str, Any]]] = {}

    # ---- policies ----
    async def all(self) -> list[StoredPolicy]:
        return [_frozen(self._policies[name]) for name in sorted(self._policies)]

    async def get(self, name: str) -> StoredPolicy | None:
        found = self._policies.get(name)
        return None if found is None else _frozen(found)

    async def add(self, stored: StoredPolicy) -> None:
        if stored.name in self._policies:
            raise AlreadyExists("policy", stored.name)
        self._policies[stored.name] = _frozen(stored)

    async def replace(self, stored: StoredPolicy, *, revision: int) -> StoredPolicy | None:
        current = self._policies.get(stored.name)
        if current is None or current.revision != revision:
            return None
        new = _frozen(replace(stored, revision=revision + 1))
        self._policies[stored.name] = new
        return _frozen(new)

    async def remove(self, name: str) -> bool:
        return self._policies.pop(name, None) is not None

    # ---- ledger ----
    async def claim_slot(self, key: str, slot: str) -> bool:
        last = self._slots.get(key)
        if last is not None and last >= slot:
            return False
        self._slots[key] = slot
        return True

    async def last_slot(self, key: str) -> str | None:
        return self._slots.get(key)

    async def note(self, policy: str, field: str, value: Mapping[str, Any]) -> None:
        self._notes.setdefault(policy, {})[field] = copy.deepcopy(dict(value))

    async def notes(self, policy: str) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self._notes.get(policy, {}))

    async def forget(self, policy: str) -> None:
        self._notes.pop(policy, None)
        for key in [k for k in self._slots if k == policy or k.startswith(policy + ":")]:
            del self._slots[key]


def _frozen(stored: StoredPolicy) -> StoredPolicy:
    """A copy whose definition is its own: changing what was stored, or what was read, changes nothing else."""
    return replace(stored, definition=copy.deepcopy(dict(stored.definition)))
