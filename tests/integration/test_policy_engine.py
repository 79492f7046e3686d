"""The policy engine on real OpenZFS: the PolicyZfs contract (tests/policy_zfs_contract.py) over ZfsPolicyOps,
counting the zfs children it runs, and one policy run end to end (snapshots taken at several clock times, a
preview at a later time, the prune) in which a snapshot made by hand, another policy's, a foreign hold and a
clone's origin survive. One pool for the session (the `pool` fixture), tiny datasets."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Iterator

import pytest

from tests.integration.conftest import mountpoint, zfs
from tests.policy_zfs_contract import PolicySubject, PolicyZfsContract
from zfsapi.adapters.outbound.zfs.executor import Completed, ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.policy_ops import ZfsPolicyOps
from zfsapi.domain.names import DatasetName


class CountingExecutor(ZfsExecutor):
    """Counts the zfs children it runs, by verb (reads that share a child count once)."""

    def __init__(self) -> None:
        super().__init__()
        self.children: Counter[str] = Counter()

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        self.children[argv[1]] += 1
        return await super().run(argv, timeout=timeout)


def write_bytes(dataset: DatasetName, size: int) -> None:
    with open(os.path.join(mountpoint(dataset.value), f"data-{uuid.uuid4().hex[:6]}"), "wb") as f:
        f.write(os.urandom(size))
    zfs("zpool", "sync", dataset.pool.value)


@pytest.fixture
def root(pool: str) -> Iterator[DatasetName]:
    name = f"{pool}/policy {uuid.uuid4().hex[:6]}"
    yield DatasetName.parse(name)
    held = zfs("zfs", "holds", "-H", "-r", *zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", name,
                                                 check=False).stdout.split("\n")[:-1], check=False).stdout
    for line in held.splitlines():
        snapshot, tag, _ = line.split("\t")
        zfs("zfs", "release", tag, snapshot, check=False)
    zfs("zfs", "destroy", "-R", name, check=False)


class TestRealZfs(PolicyZfsContract):
    @pytest.fixture
    def p(self, root: DatasetName) -> PolicySubject:
        executor = CountingExecutor()
        return PolicySubject(ZfsPolicyOps(executor), ZfsCliGateway(ZfsExecutor()), root, write_bytes,
                             executor.children.copy)
