"""The ZFS port contract (tests/zfs_contract.py) over FakeZfs: the fake the unit tests use answers like real ZFS
(the same cases run over the real gateway in tests/integration/test_port_contract.py)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from tests.fakes import FakeZfs
from tests.zfs_contract import Subject, ZfsPortContract
from zfsapi.domain.names import DatasetName, PoolName


class TestFakeZfs(ZfsPortContract):
    @pytest.fixture
    def z(self) -> Subject:
        # a scrub of the fake runs until it is stopped, like one of a large pool
        return Subject(FakeZfs(pools=["tank"]), PoolName("tank"), DatasetName.parse("tank/contract x"), nullcontext)
