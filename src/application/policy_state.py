"""What policies keep beside jobs: the policies created over the API (`PolicyStore`), and the ledger the
scheduler and policy_get read (`PolicyLedger`): the last slot claimed per schedule, and status notes per policy
(its last runs, each target's last success, base and failures). One store of each backend implements both: in
this process (tests, embedding), in a SQLite file under state_dir (the default), or in Redis (shared by every
worker and server using it, so that each (policy, slot) runs once across them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from zfsapi.domain.jobs import JobOwner


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """A policy created over the API: its definition (`Policy.to_dict()`, parsed again on every read, so a
    definition this version no longer reads is refused where it is used, never half-applied), its creator
    (scheduled runs run as the creator, with the rights the creator has when each runs), when it was created and
    last changed, and its revision (1 on create, one more on every update)."""

    name: str
    definition: Mapping[str, Any]
    owner: JobOwner
    created_at: float
    updated_at: float
    revision: int = 1


class PolicyStore(Protocol):
    """The policies created over the API. Raises ServiceUnavailable when the store cannot be reached."""

    async def all(self) -> list[StoredPolicy]:
        """Every stored policy, in name order."""
        ...

    async def get(self, name: str) -> StoredPolicy | None: ...

    async def add(self, stored: StoredPolicy) -> None:
        """Store a new policy (its revision as given, normally 1).

        Raises:
            AlreadyExists: ("policy", name) a policy of that name is stored (checked atomically)."""
        ...

    async def replace(self, stored: StoredPolicy, *, revision: int) -> StoredPolicy | None:
        """Store `stored` (with revision `revision + 1`) in place of the policy of its name, only while the
        stored one's revision is `revision` (compare and set: two updates at once, one wins). The policy as
        stored; None when there is no such policy or its revision has moved."""
        ...

    async def remove(self, name: str) -> bool:
        """Delete a stored policy; False when there was none."""
        ...


class PolicyLedger(Protocol):
    """The scheduler's slots and the policies' status notes. Raises ServiceUnavailable when unreachable."""

    async def claim_slot(self, key: str, slot: str) -> bool:
        """Record `slot` (a `schedules.slot_id`: sortable) as the last slot of `key` (e.g. "home:snapshot",
        "home:replicate:nas2") when it is later than the one recorded, or none is: atomically, so that of several
        servers on one store exactly one gets True for a slot."""
        ...

    async def last_slot(self, key: str) -> str | None:
        """The last slot claimed for `key`, or None."""
        ...

    async def note(self, policy: str, field: str, value: Mapping[str, Any]) -> None:
        """Set one status field of a policy (e.g. "last:snapshot" -> {job_id, state, finished_at},
        "target:nas2" -> {last_success, base_snapshot, failures, ...}), replacing what the field held."""
        ...

    async def notes(self, policy: str) -> dict[str, dict[str, Any]]:
        """Every status field of a policy (empty when none)."""
        ...

    async def forget(self, policy: str) -> None:
        """Drop a policy's notes and slots (the policy was deleted; a policy created again starts afresh)."""
        ...
