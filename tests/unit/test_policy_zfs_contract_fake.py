"""The PolicyZfs contract (tests/policy_zfs_contract.py) over SimulatedPolicyOps: the simulated policy ops (`serve
--simulate`, and FakePolicyOps of the policy engine's unit tests) answer like ZfsPolicyOps on real ZFS, with as many
zfs children (the same cases run on real ZFS in tests/integration/test_policy_engine.py)."""

from __future__ import annotations

import pytest

from tests.policy_zfs_contract import PolicySubject, PolicyZfsContract
from zfsapi.adapters.outbound.simulated.policy_ops import SimulatedPolicyOps
from zfsapi.adapters.outbound.simulated.zfs import SimulatedZfs
from zfsapi.domain.names import DatasetName


class TestSimulatedPolicyOps(PolicyZfsContract):
    @pytest.fixture
    def p(self) -> PolicySubject:
        zfs = SimulatedZfs(pools=["tank"])
        ops = SimulatedPolicyOps(zfs)
        return PolicySubject(ops, zfs, DatasetName.parse("tank/policy x"),
                             lambda dataset, size: zfs.write_bytes(dataset.value, size), ops.children.copy)
