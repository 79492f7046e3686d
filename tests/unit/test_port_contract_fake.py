"""The ZFS port contract (tests/zfs_contract.py) over SimulatedZfs: the simulated ZFS (`serve --simulate`, and
FakeZfs of the unit tests) answers like real ZFS (the same cases run over the real gateway in
tests/integration/test_port_contract.py)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from tests.zfs_contract import Subject, ZfsPortContract
from zfsapi.adapters.outbound.simulated.zfs import SimulatedZfs
from zfsapi.domain.names import DatasetName, PoolName


class TestSimulatedZfs(ZfsPortContract):
    @pytest.fixture
    def z(self) -> Subject:
        # a scrub of the fake runs until it is stopped, like one of a large pool
        return Subject(SimulatedZfs(pools=["tank"]), PoolName("tank"), DatasetName.parse("tank/contract x"), nullcontext)
