"""The test doubles at the ZFS ports: the simulated ZFS (zfsapi.adapters.outbound.simulated, which `zfsapi serve
--simulate` also serves) under the names the tests use, held to real OpenZFS by the contract suites
(tests/zfs_contract.py, tests/policy_zfs_contract.py); and a clock that stands still.

FakeZfs: the Datasets, Snapshots, Bookmarks and Pools ports; FakeStreams: the Transfers and Pipelines ports over
a FakeZfs (FakePipe its sends, FakeReceivePipe its receives); FakePolicyOps: the PolicyZfs port over a FakeZfs."""

from __future__ import annotations

from datetime import datetime

from zfsapi.adapters.outbound.simulated.policy_ops import SimulatedPolicyOps as FakePolicyOps
from zfsapi.adapters.outbound.simulated.streams import CHUNK
from zfsapi.adapters.outbound.simulated.streams import SimulatedReceivePipe as FakeReceivePipe
from zfsapi.adapters.outbound.simulated.streams import SimulatedSendPipe as FakePipe
from zfsapi.adapters.outbound.simulated.streams import SimulatedStreams as FakeStreams
from zfsapi.adapters.outbound.simulated.zfs import DatasetRecord as _Dataset
from zfsapi.adapters.outbound.simulated.zfs import SimulatedZfs as FakeZfs

__all__ = ["CHUNK", "FakePipe", "FakeReceivePipe", "FakePolicyOps", "FakeStreams", "FakeZfs", "FixedClock", "_Dataset"]


class FixedClock:
    def __init__(self, when: datetime) -> None:
        self.when = when

    def now(self) -> datetime:
        return self.when
