"""The ZFS port contract (tests/zfs_contract.py) over the real gateway on real OpenZFS: one pool for the session
(the `pool` fixture), a fresh root dataset per case. FakeZfs runs the same cases in
tests/unit/test_port_contract_fake.py, so the fake is held to what ZFS really does."""

from __future__ import annotations

import time
import uuid
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.integration.conftest import zfs
from tests.zfs_contract import Subject, ZfsPortContract
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.domain.names import DatasetName, PoolName

SUSPEND = Path("/sys/module/zfs/parameters/zfs_scan_suspend_progress")


def scrubs_last(pool: str) -> Callable[[], AbstractContextManager[None]]:
    @contextmanager
    def held() -> Iterator[None]:
        """Once no scan runs on the pool, scans make no progress (a test tunable of OpenZFS) until the end of
        the block: a scrub of the small test pool would otherwise be over before it could be stopped."""
        start = time.monotonic()
        deadline = start + 120  # generous: the guest is emulated and the machine may be busy
        while "scan: scrub in progress" in zfs("zpool", "status", pool).stdout:
            assert time.monotonic() < deadline, "a scrub of the test pool was still running after 120 s"
            time.sleep(0.5)
        print(f"pool idle after {time.monotonic() - start:.1f} s")
        saved = SUSPEND.read_text().strip()
        SUSPEND.write_text("1")
        try:
            yield
        finally:
            SUSPEND.write_text(saved)

    return held


class TestRealZfs(ZfsPortContract):
    @pytest.fixture
    def z(self, pool: str) -> Iterator[Subject]:
        root = f"{pool}/contract {uuid.uuid4().hex[:6]}"
        yield Subject(ZfsCliGateway(ZfsExecutor()), PoolName(pool), DatasetName.parse(root), scrubs_last(pool))
        zfs("zfs", "destroy", "-R", root, check=False)
