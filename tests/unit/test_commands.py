"""argv golden tests: exact command lines, machine-readable output flags, no shell."""

from __future__ import annotations

from zfsapi.adapters.outbound.zfs import commands as c
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import (
    BookmarkName,
    DatasetName,
    HoldTag,
    PoolName,
    PropertyName,
    PropertyValue,
    SnapshotName,
)
from zfsapi.domain.planning import DestroyFlags

DS = DatasetName.parse("tank/a b")
SNAP = SnapshotName.parse("tank/a b@s 1")
PROPS = {PropertyName.parse("compression"): PropertyValue.parse("lz4"),
         PropertyName.parse("com.x:note"): PropertyValue.parse("-r hello")}


def test_create():
    assert c.create(DS, PROPS, True) == ["zfs", "create", "-p", "-o", "compression=lz4", "-o",
                                         "com.x:note=-r hello", "tank/a b"]
    assert c.create(DS, {}, False) == ["zfs", "create", "tank/a b"]


def test_volume_and_clone():
    assert c.create_volume(DS, 16384, {}, True) == ["zfs", "create", "-s", "-V", "16384", "tank/a b"]
    assert c.clone(SNAP, DatasetName.parse("tank/c"), {}) == ["zfs", "clone", "tank/a b@s 1", "tank/c"]


def test_destroy_flags():
    assert c.destroy(DS, DestroyFlags(False, False)) == ["zfs", "destroy", "tank/a b"]
    assert c.destroy(DS, DestroyFlags(True, False)) == ["zfs", "destroy", "-r", "tank/a b"]
    assert c.destroy(DS, DestroyFlags(True, True)) == ["zfs", "destroy", "-R", "tank/a b"]
    assert c.destroy(BookmarkName.parse("tank/a#b")) == ["zfs", "destroy", "tank/a#b"]


def test_listings_are_parsable():
    assert c.list_datasets(DS, True, [DatasetType.FILESYSTEM, DatasetType.VOLUME], ["name", "used"]) == [
        "zfs", "list", "-H", "-p", "-o", "name,used", "-t", "filesystem,volume", "-r", "tank/a b"]
    assert c.list_datasets(None, False, [DatasetType.VOLUME], ["name"]) == [
        "zfs", "list", "-H", "-p", "-o", "name", "-t", "volume", "-d", "0"]
    assert c.list_snapshots(DS, False) == [
        "zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,guid,createtxg,creation,used,referenced,userrefs",
        "-s", "createtxg", "-d", "1", "tank/a b"]
    assert c.get(DS, None) == ["zfs", "get", "-H", "-p", "-o", "property,value,source", "all", "tank/a b"]
    assert c.space(DS) == ["zfs", "list", "-H", "-p", "-o", "name,avail,used,usedsnap,usedds,usedrefreserv,usedchild",
                           "tank/a b"]
    assert c.pool_list() == ["zpool", "list", "-H", "-p", "-o", "name,size,alloc,free,cap,health,frag"]
    assert c.pool_get(PoolName.parse("tank"), PropertyName.parse("size")) == [
        "zpool", "get", "-H", "-p", "-o", "property,value,source", "size", "tank"]


def test_snapshot_listing_without_details_stays_on_the_fast_columns():
    assert c.list_snapshots(DS, True, False) == [
        "zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,guid,createtxg", "-s", "createtxg", "-r", "tank/a b"]


def test_snapshot_verbs():
    assert c.snapshot(SNAP, True, {}) == ["zfs", "snapshot", "-r", "tank/a b@s 1"]
    assert c.rollback(SNAP, True) == ["zfs", "rollback", "-r", "tank/a b@s 1"]
    tag = HoldTag.parse("keep")
    assert c.hold(SNAP, tag, False) == ["zfs", "hold", "keep", "tank/a b@s 1"]
    assert c.release(SNAP, tag, True) == ["zfs", "release", "-r", "keep", "tank/a b@s 1"]
    assert c.holds(SNAP, False, True) == ["zfs", "holds", "-H", "-p", "tank/a b@s 1"]
    assert c.holds(SNAP, True, False) == ["zfs", "holds", "-H", "-r", "tank/a b@s 1"]
    assert c.diff(SNAP, DS) == ["zfs", "diff", "-F", "-H", "tank/a b@s 1", "tank/a b"]
    assert c.bookmark(SNAP, BookmarkName.parse("tank/a b#m")) == ["zfs", "bookmark", "tank/a b@s 1", "tank/a b#m"]


def test_pool_verbs():
    assert c.scrub(PoolName.parse("tank"), True) == ["zpool", "scrub", "-s", "tank"]
    assert c.pool_status(PoolName.parse("tank")) == ["zpool", "status", "-p", "-v", "tank"]
