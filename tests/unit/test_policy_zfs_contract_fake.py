"""The PolicyZfs contract (tests/policy_zfs_contract.py) over FakePolicyOps: the fake the policy engine's unit
tests use answers like ZfsPolicyOps on real ZFS, with as many zfs children (the same cases run on real ZFS in
tests/integration/test_policy_engine.py)."""

from __future__ import annotations

import pytest

from tests.fakes import FakePolicyOps, FakeZfs
from tests.policy_zfs_contract import PolicySubject, PolicyZfsContract
from zfsapi.domain.names import DatasetName


class TestFakePolicyOps(PolicyZfsContract):
    @pytest.fixture
    def p(self) -> PolicySubject:
        zfs = FakeZfs(pools=["tank"])
        ops = FakePolicyOps(zfs)
        return PolicySubject(ops, zfs, DatasetName.parse("tank/policy x"),
                             lambda dataset, size: zfs.write_bytes(dataset.value, size), ops.children.copy)
