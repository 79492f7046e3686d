"""The use cases embedded in another program, without HTTP, on real ZFS (the README's example)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import zfs
from zfsapi.bootstrap import open_api
from zfsapi.domain.errors import NotFound
from zfsapi.domain.names import DatasetName, SnapshotName


async def test_open_api_runs_use_cases_on_real_zfs(pool, dataset):
    api = open_api(zfs={"timeout": 120})
    assert pool in [p.name for p in await api.pool_list.execute()]
    await api.snapshot_create.execute(snapshot=SnapshotName.parse(f"{dataset}@embedded"), properties={})
    snaps = await api.snapshot_list.execute(dataset=DatasetName.parse(dataset))
    guid = zfs("zfs", "get", "-Hp", "-o", "value", "guid", f"{dataset}@embedded").stdout.strip()
    assert [(s.short, s.guid) for s in snaps] == [("embedded", int(guid))]
    with pytest.raises(NotFound) as exc:
        await api.snapshot_list.execute(dataset=DatasetName.parse(f"{dataset}/missing"))
    assert exc.value.name == f"{dataset}/missing"
