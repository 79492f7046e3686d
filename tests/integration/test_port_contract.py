"""One suite over both implementations of the ZFS ports: FakeZfs (used by the unit tests) and the real
CLI gateway, so the fake is held to real behaviour."""

from __future__ import annotations

import uuid

import pytest

from tests.fakes import FakeZfs
from tests.integration.conftest import zfs
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.domain.models import DatasetType
from zfsapi.domain.errors import AlreadyExists, HasDependents, NotFound, StateConflict
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, PoolName, SnapshotName
from zfsapi.domain.planning import DestroyFlags


@pytest.fixture(params=["fake", "real"])
def port_and_root(request, pool):
    root = f"{pool}/contract {uuid.uuid4().hex[:6]}"
    if request.param == "fake":
        port = FakeZfs(pools=[pool])
    else:
        port = ZfsCliGateway(ZfsExecutor())
    yield port, DatasetName.parse(root)
    if request.param == "real":
        zfs("zfs", "destroy", "-R", root, check=False)


async def test_create_exists_missing(port_and_root):
    port, root = port_and_root
    await port.create_dataset(root, properties={}, parents=False)
    with pytest.raises(AlreadyExists) as exc:
        await port.create_dataset(root, properties={}, parents=False)
    assert (exc.value.kind, exc.value.name) == ("dataset", root.value)
    with pytest.raises(NotFound) as exc:
        await port.create_dataset(DatasetName.parse(f"{root}/a/b"), properties={}, parents=False)
    assert exc.value.name == f"{root}/a"
    await port.create_dataset(DatasetName.parse(f"{root}/a/b"), properties={}, parents=True)
    rows = await port.list_datasets(root, recursive=True, types=[DatasetType.FILESYSTEM], properties=[])
    assert [name for name, _ in rows] == [root.value, f"{root}/a", f"{root}/a/b"]
    rows = await port.list_datasets(root, recursive=True, types=[DatasetType.VOLUME], properties=[])
    assert rows == []
    with pytest.raises(NotFound):
        await port.get_space(DatasetName.parse(f"{root}/zz"))


async def test_destroy_dependents_and_snapshot_order(port_and_root):
    port, root = port_and_root
    await port.create_dataset(DatasetName.parse(f"{root}/kid"), properties={}, parents=True)
    for s in ["z", "a", "m"]:
        await port.create_snapshot(SnapshotName.parse(f"{root}@{s}"), recursive=False, properties={})
    full = await port.list_snapshots(root, recursive=False)
    assert [s.short for s in full] == ["z", "a", "m"]
    fast = await port.list_snapshots(root, recursive=False, details=False)
    assert [(s.name, s.guid, s.createtxg) for s in fast] == [(s.name, s.guid, s.createtxg) for s in full]
    assert fast[0].used is None and full[0].used is not None
    with pytest.raises(HasDependents) as exc:
        await port.destroy_dataset(root, flags=DestroyFlags(False, False))
    assert sorted(exc.value.dependents) == sorted([f"{root}/kid", f"{root}@z", f"{root}@a", f"{root}@m"])
    with pytest.raises(StateConflict):
        await port.rollback(SnapshotName.parse(f"{root}@z"), destroy_newer=False)


async def test_holds_clones_bookmarks(port_and_root):
    port, root = port_and_root
    await port.create_dataset(root, properties={}, parents=True)
    snap = SnapshotName.parse(f"{root}@s")
    await port.create_snapshot(snap, recursive=False, properties={})
    await port.hold(snap, HoldTag.parse("keep"), recursive=False)
    with pytest.raises(AlreadyExists):
        await port.hold(snap, HoldTag.parse("keep"), recursive=False)
    with pytest.raises(HasDependents):
        await port.destroy_snapshot(snap, recursive=False)
    with pytest.raises(NotFound):
        await port.release(snap, HoldTag.parse("other"), recursive=False)
    await port.release(snap, HoldTag.parse("keep"), recursive=False)
    clone = DatasetName.parse(f"{root}/clone")
    await port.create_clone(snap, clone, properties={})
    with pytest.raises(HasDependents) as exc:
        await port.destroy_snapshot(snap, recursive=False)
    assert exc.value.dependents == [clone.value]
    bm = BookmarkName.parse(f"{root}#b")
    await port.create_bookmark(snap, bm)
    with pytest.raises(AlreadyExists):
        await port.create_bookmark(snap, bm)
    assert await port.list_bookmarks(root) == [bm.value]
    await port.destroy_bookmark(bm)
    with pytest.raises(NotFound):
        await port.destroy_bookmark(bm)


async def test_pool_errors(port_and_root):
    port, _ = port_and_root
    with pytest.raises(NotFound) as exc:
        await port.pool_status(PoolName.parse("nosuchpool"))
    assert exc.value.kind == "pool"
    with pytest.raises(NotFound):
        await port.list_snapshots(DatasetName.parse("nosuchpool/x"), recursive=False)
