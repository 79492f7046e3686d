"""The ZFS ports' contract: every method of Datasets, Snapshots, Bookmarks and Pools (application/ports.py), the
same calls answered the same way (return values, shapes, domain errors) by FakeZfs and by the real gateway.

`ZfsPortContract` holds the cases; tests/unit/test_port_contract_fake.py runs them over FakeZfs on any machine,
tests/integration/test_port_contract.py over ZfsCliGateway on real OpenZFS (one pool for the session). Each case
works under its own fresh root dataset (`z.root`, not yet created)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Protocol

import pytest

from zfsapi.application.ports import Bookmarks, Datasets, Pools, Snapshots
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    StateConflict,
    ZfsCommandFailed,
)
from zfsapi.domain.models import Bookmark, DatasetType, PropertyEntry, Snapshot
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, PoolName, PropertyName, PropertyValue, SnapshotName
from zfsapi.domain.planning import DestroyFlags

FS, VOL = DatasetType.FILESYSTEM, DatasetType.VOLUME
KEEP = HoldTag("keep")
NO_FLAGS, RECURSIVE, DEPENDENTS = DestroyFlags(False, False), DestroyFlags(True, False), DestroyFlags(True, True)


def zfs_set_exit_code(version: str) -> int:
    """How `zfs set` exits when it refuses a value: 255 from OpenZFS 2.2 on, 1 before (2.1)."""
    major, minor = (int(x) for x in version.split(".")[:2])
    return 255 if (major, minor) >= (2, 2) else 1


class ZfsPorts(Datasets, Snapshots, Bookmarks, Pools, Protocol):
    """Everything FakeZfs and ZfsCliGateway both implement (the Transfers port has its own tests)."""


@dataclass
class Subject:
    port: ZfsPorts
    pool: PoolName
    root: DatasetName  # unique to the test, not created yet
    scrubs_last: Callable[[], AbstractContextManager[None]]  # while inside: a scrub runs until stopped

    def ds(self, rel: str = "") -> DatasetName:
        return DatasetName.parse(f"{self.root}/{rel}" if rel else self.root.value)

    def snap(self, rel: str) -> SnapshotName:
        """`rel` is `short` (of the root) or `child@short`."""
        return SnapshotName.parse(f"{self.root}/{rel}" if "@" in rel else f"{self.root}@{rel}")

    def bm(self, rel: str) -> BookmarkName:
        return BookmarkName.parse(f"{self.root}/{rel}" if "#" in rel else f"{self.root}#{rel}")

    async def tree(self, *children: str, properties: dict[str, str] | None = None) -> None:
        """Create the root (with `properties`) and the children, in order."""
        props = {PropertyName(k): PropertyValue(v) for k, v in (properties or {}).items()}
        await self.port.create_dataset(self.root, properties=props, parents=False)
        for child in children:
            await self.port.create_dataset(self.ds(child), properties={}, parents=False)

    async def snapshots(self, *rels: str) -> None:
        for rel in rels:
            await self.port.create_snapshot(self.snap(rel), recursive=False, properties={})

    async def names(self, root: DatasetName | None = None, *, recursive: bool = True,
                    types: tuple[DatasetType, ...] = (FS, VOL)) -> list[str]:
        rows = await self.port.list_datasets(root or self.root, recursive=recursive, types=types, properties=[])
        return [name for name, _ in rows]

    async def prop(self, name: DatasetName | SnapshotName, prop: str) -> PropertyEntry:
        return (await self.port.get_properties(name, property=PropertyName(prop)))[prop]


NOTE = "com.example:note"


class ZfsPortContract:
    """The cases; a subclass provides the `z` fixture (a Subject)."""

    # ---- Datasets ----

    async def test_create_dataset(self, z: Subject) -> None:
        await z.port.create_dataset(z.root, properties={PropertyName(NOTE): PropertyValue("a b: ü")}, parents=False)
        with pytest.raises(AlreadyExists) as exists:
            await z.port.create_dataset(z.root, properties={}, parents=False)
        assert (exists.value.kind, exists.value.name) == ("dataset", z.root.value)
        with pytest.raises(NotFound) as missing:
            await z.port.create_dataset(z.ds("a/b"), properties={}, parents=False)
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/a")
        await z.port.create_dataset(z.ds("a/b"), properties={}, parents=True)
        await z.port.create_dataset(z.ds("a/b"), properties={}, parents=True)  # -p: existing is fine
        assert await z.names() == [z.root.value, f"{z.root}/a", f"{z.root}/a/b"]
        assert await z.prop(z.root, NOTE) == PropertyEntry("a b: ü", "local")
        with pytest.raises(NotFound) as no_pool:
            await z.port.create_dataset(DatasetName.parse("nosuchpool/x"), properties={}, parents=True)
        assert (no_pool.value.kind, no_pool.value.name) == ("pool", "nosuchpool")

    async def test_create_with_bad_properties(self, z: Subject) -> None:
        await z.tree()
        bad_name = z.ds("bad name")
        with pytest.raises(InvalidArgument) as unknown:
            await z.port.create_dataset(bad_name, properties={PropertyName("bogus"): PropertyValue("1")},
                                        parents=False)
        assert (unknown.value.param, unknown.value.reason) == (
            "property", f"cannot create '{bad_name}': invalid property 'bogus'")
        with pytest.raises(ZfsCommandFailed) as bad_value:
            await z.port.create_dataset(bad_name, properties={PropertyName("compression"): PropertyValue("bogus")},
                                        parents=False)
        assert type(bad_value.value) is ZfsCommandFailed and bad_value.value.exit_code == 1
        assert bad_value.value.stderr.startswith(f"cannot create '{bad_name}': 'compression' must be one of ")
        with pytest.raises(ZfsCommandFailed) as read_only:
            await z.port.create_dataset(bad_name, properties={PropertyName("used"): PropertyValue("1")},
                                        parents=False)
        assert read_only.value.stderr.startswith(f"cannot create '{bad_name}': 'used' is readonly")
        assert await z.names() == [z.root.value]

    async def test_list_datasets(self, z: Subject) -> None:
        await z.tree("a", "a b", "a/x", "a.b", properties={NOTE: "hi"})
        assert await z.names() == [z.root.value, f"{z.root}/a", f"{z.root}/a b", f"{z.root}/a.b", f"{z.root}/a/x"]
        assert await z.names(recursive=False) == [z.root.value, f"{z.root}/a", f"{z.root}/a b", f"{z.root}/a.b"]
        assert await z.names(types=(VOL,)) == []
        columns = [PropertyName(p) for p in ("used", NOTE, "com.example:unset", "mountpoint", "type", "origin")]
        rows = dict(await z.port.list_datasets(z.ds("a"), recursive=False, types=[FS], properties=columns))
        assert list(rows) == [f"{z.root}/a", f"{z.root}/a/x"]
        for name, row in rows.items():
            assert list(row) == [p.value for p in columns]
            assert isinstance(row["used"], int) and row["used"] > 0
            assert (row[NOTE], row["com.example:unset"], row["type"], row["origin"]) == ("hi", "-", "filesystem", "-")
            assert isinstance(row["mountpoint"], str) and row["mountpoint"].endswith("/" + name)
        tops = [name for name, _ in await z.port.list_datasets(None, recursive=False, types=[FS], properties=[])]
        assert z.pool.value in tops and all("/" not in n for n in tops)
        with pytest.raises(NotFound) as missing:
            await z.names(z.ds("zz"))
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")

    async def test_get_and_set_properties(self, z: Subject) -> None:
        await z.tree("kid", properties={NOTE: "hi"})
        everything = await z.port.get_properties(z.root, property=None)
        for key in ("used", "available", "referenced", "creation", "guid", "createtxg"):
            assert isinstance(everything[key].value, int) and everything[key].source == "-", key
        assert everything["type"] == PropertyEntry("filesystem", "-")
        assert everything["mounted"] == PropertyEntry("yes", "-")
        assert everything["readonly"] == PropertyEntry("off", "default")
        assert everything[NOTE] == PropertyEntry("hi", "local")
        assert everything["mountpoint"].source == "default"
        assert str(everything["mountpoint"].value).endswith("/" + z.root.value)
        kid = z.ds("kid")
        assert await z.prop(kid, NOTE) == PropertyEntry("hi", f"inherited from {z.root}")
        assert await z.prop(kid, "com.example:unset") == PropertyEntry("-", "-")
        await z.port.set_property(z.root, PropertyName("compression"), PropertyValue("lz4"))
        await z.port.set_property(kid, PropertyName(NOTE), PropertyValue("mine"))
        await z.port.set_property(kid, PropertyName("quota"), PropertyValue("100M"))
        got = await z.port.get_properties(kid, property=None)
        assert (got["compression"], got[NOTE], got["quota"]) == (
            PropertyEntry("lz4", f"inherited from {z.root}"), PropertyEntry("mine", "local"),
            PropertyEntry(100 << 20, "local"))
        with pytest.raises(InvalidArgument) as typo:
            await z.port.get_properties(kid, property=PropertyName("compresion"))
        assert (typo.value.param, typo.value.reason) == ("property", "bad property list: invalid property 'compresion'")
        with pytest.raises(InvalidArgument) as unknown:
            await z.port.set_property(kid, PropertyName("bogus"), PropertyValue("1"))
        assert (unknown.value.param, unknown.value.reason) == (
            "property", f"cannot set property for '{kid}': invalid property 'bogus'")
        for prop, value, says in (("compression", "bogus", "'compression' must be one of "),
                                  ("used", "1", "'used' is readonly")):
            with pytest.raises(ZfsCommandFailed) as refused:
                await z.port.set_property(kid, PropertyName(prop), PropertyValue(value))
            assert type(refused.value) is ZfsCommandFailed
            assert refused.value.exit_code == zfs_set_exit_code(await z.port.version())
            assert refused.value.stderr.startswith(f"cannot set property for '{kid}': {says}"), prop
        for call in (z.port.get_properties(z.ds("zz"), property=None),
                     z.port.set_property(z.ds("zz"), PropertyName(NOTE), PropertyValue("x"))):
            with pytest.raises(NotFound) as missing:
                await call
            assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")

    async def test_space_and_mounts(self, z: Subject) -> None:
        await z.tree("kid")
        space = await z.port.get_space(z.root)
        assert space.name == z.root.value and space.avail > 0 and space.used > 0 and space.usedchild > 0
        assert space.used == space.usedsnap + space.useddss + space.usedrefreserv + space.usedchild
        kid = z.ds("kid")
        assert await z.port.mount(kid) is False  # mounted when created
        assert await z.port.unmount(kid) is True
        assert await z.port.unmount(kid) is False
        assert await z.prop(kid, "mounted") == PropertyEntry("no", "-")
        assert await z.port.mount(kid) is True
        assert await z.prop(kid, "mounted") == PropertyEntry("yes", "-")
        for call in (z.port.get_space(z.ds("zz")), z.port.mount(z.ds("zz")), z.port.unmount(z.ds("zz"))):
            with pytest.raises(NotFound) as missing:
                await call
            assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")

    async def test_space_of_several_at_once(self, z: Subject) -> None:
        """Concurrent get_space calls (one zfs list child on ZFS) still answer each name on its own."""
        await z.tree("kid")
        names = [z.root, z.ds("kid"), z.ds("zz"), z.root]
        got = await asyncio.gather(*(z.port.get_space(n) for n in names), return_exceptions=True)
        assert [type(g).__name__ for g in got] == ["SpaceUsage", "SpaceUsage", "NotFound", "SpaceUsage"]
        assert [g.name for g in got] == [z.root.value, f"{z.root}/kid", f"{z.root}/zz", z.root.value]
        assert isinstance(got[2], NotFound) and (got[2].kind, got[2].name) == ("dataset", f"{z.root}/zz")

    async def test_properties_of_several_at_once(self, z: Subject) -> None:
        """Concurrent get_properties calls (one zfs get child per property asked, on ZFS) answer each name exactly
        as a single call does: the same entries, a missing one its own NotFound while the rest succeed."""
        await z.tree("kid")
        await z.snapshots("kid@s")
        names: list[DatasetName | SnapshotName] = [z.root, z.ds("kid"), z.snap("kid@s"), z.ds("zz"), z.ds("kid")]
        for prop in (PropertyName("compression"), PropertyName("volsize"), PropertyName(NOTE), None):
            single = []
            for name in names:
                try:
                    single.append(await z.port.get_properties(name, property=prop))
                except NotFound as exc:
                    single.append(exc)
            got = await asyncio.gather(*(z.port.get_properties(n, property=prop) for n in names),
                                       return_exceptions=True)
            assert [type(g).__name__ for g in got] == [type(s).__name__ for s in single]
            assert got[:3] + got[4:] == single[:3] + single[4:], prop
            assert isinstance(got[3], NotFound) and (got[3].kind, got[3].name) == ("dataset", f"{z.root}/zz")

    async def test_own_snapshots_of_several_at_once(self, z: Subject) -> None:
        """Concurrent list_snapshots calls (one `zfs list -t snapshot -d 1` child for all, on ZFS: a replication's
        two sides) answer each dataset exactly as a single call does: oldest first, none for a dataset without
        snapshots, a missing one its own NotFound while the rest succeed."""
        await z.tree("kid", "bare")
        await z.snapshots("kid@s1", "kid@s2", "kid@s3")
        names = [z.ds("kid"), z.ds("bare"), z.ds("zz"), z.root]
        for details in (False, True):
            single: list[object] = []
            for name in names:
                try:
                    single.append(await z.port.list_snapshots(name, recursive=False, details=details))
                except NotFound as exc:
                    single.append(exc)
            got = await asyncio.gather(*(z.port.list_snapshots(n, recursive=False, details=details) for n in names),
                                       return_exceptions=True)
            assert [type(g).__name__ for g in got] == [type(s).__name__ for s in single]
            assert [got[0], got[1], got[3]] == [single[0], single[1], single[3]], details
            assert [s.short for s in got[0]] == ["s1", "s2", "s3"] and got[1] == []  # type: ignore[union-attr]
            assert isinstance(got[2], NotFound) and got[2].name == f"{z.root}/zz"

    async def test_volumes(self, z: Subject) -> None:
        await z.tree()
        await z.port.create_volume(z.ds("vol"), size_bytes=1_000_000, properties={}, sparse=False)
        await z.port.create_volume(z.ds("sparse"), size_bytes=1_000_000,
                                   properties={PropertyName(NOTE): PropertyValue("v")}, sparse=True)
        vol = await z.port.get_properties(z.ds("vol"), property=None)
        block = vol["volblocksize"].value
        assert isinstance(block, int) and block > 0
        assert vol["volsize"] == PropertyEntry(math.ceil(1_000_000 / block) * block, "local")
        assert vol["type"] == PropertyEntry("volume", "-")
        assert "mounted" not in vol and "mountpoint" not in vol
        assert isinstance(vol["refreservation"].value, int) and vol["refreservation"].value > 1_000_000
        sparse = await z.port.get_properties(z.ds("sparse"), property=None)
        assert sparse["refreservation"] == PropertyEntry(0, "default")
        assert sparse[NOTE] == PropertyEntry("v", "local")
        assert await z.names(types=(VOL,)) == [f"{z.root}/sparse", f"{z.root}/vol"]
        assert await z.names(types=(FS,)) == [z.root.value]
        with pytest.raises(AlreadyExists) as exists:
            await z.port.create_volume(z.ds("vol"), size_bytes=4096, properties={}, sparse=True)
        assert (exists.value.kind, exists.value.name) == ("dataset", f"{z.root}/vol")
        with pytest.raises(NotFound) as no_parent:
            await z.port.create_volume(z.ds("no/vol"), size_bytes=4096, properties={}, sparse=True)
        assert (no_parent.value.kind, no_parent.value.name) == ("dataset", f"{z.root}/no")
        with pytest.raises(ZfsCommandFailed) as under_volume:
            await z.port.create_dataset(z.ds("vol/x"), properties={}, parents=False)
        assert type(under_volume.value) is ZfsCommandFailed
        assert under_volume.value.stderr.startswith(f"cannot create '{z.root}/vol/x': parent is not a filesystem")
        for call in (z.port.mount(z.ds("vol")), z.port.unmount(z.ds("vol"))):
            with pytest.raises(ZfsCommandFailed) as not_mountable:
                await call
            assert not_mountable.value.stderr.startswith(
                f"cannot open '{z.root}/vol': operation not applicable to datasets of this type")

    async def test_rename(self, z: Subject) -> None:
        await z.tree("a", "a/kid", "taken")
        await z.snapshots("a@s")
        await z.port.create_bookmark(z.snap("a@s"), z.bm("a#b"))
        await z.port.create_clone(z.snap("a@s"), z.ds("clone"), properties={})
        await z.port.rename(z.ds("a"), z.ds("moved"))
        assert await z.names() == [z.root.value, f"{z.root}/clone", f"{z.root}/moved", f"{z.root}/moved/kid",
                                   f"{z.root}/taken"]
        assert await z.prop(z.ds("clone"), "origin") == PropertyEntry(f"{z.root}/moved@s", "-")
        assert [s.name for s in await z.port.list_snapshots(z.ds("moved"), recursive=True)] == [f"{z.root}/moved@s"]
        assert await z.port.list_bookmarks(z.ds("moved")) == [f"{z.root}/moved#b"]
        with pytest.raises(AlreadyExists) as exists:
            await z.port.rename(z.ds("moved"), z.ds("taken"))
        assert (exists.value.kind, exists.value.name) == ("dataset", f"{z.root}/taken")
        with pytest.raises(NotFound) as missing:
            await z.port.rename(z.ds("zz"), z.ds("yy"))
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")
        with pytest.raises(NotFound) as no_parent:
            await z.port.rename(z.ds("moved"), z.ds("no/x"))
        assert (no_parent.value.kind, no_parent.value.name) == ("dataset", f"{z.root}/no")
        with pytest.raises(NotFound) as no_pool:
            await z.port.rename(z.ds("moved"), DatasetName.parse("nosuchpool/x"))
        assert (no_pool.value.kind, no_pool.value.name) == ("pool", "nosuchpool")
        with pytest.raises(ZfsCommandFailed) as into_itself:
            await z.port.rename(z.ds("moved"), z.ds("moved/kid/x"))
        assert into_itself.value.stderr.startswith(
            f"cannot rename to '{z.root}/moved/kid/x': New dataset name cannot be a descendant of current dataset name")

    # ---- Snapshots ----

    async def test_snapshots_listed_oldest_first(self, z: Subject) -> None:
        await z.tree("kid", properties={"com.example:up": "u"})
        before = int(time.time())
        await z.snapshots("z", "a", "m")
        await z.port.create_snapshot(z.snap("kid@p"), recursive=False,
                                     properties={PropertyName(NOTE): PropertyValue("s")})
        after = math.ceil(time.time())
        full = await z.port.list_snapshots(z.root, recursive=False)
        assert [s.name for s in full] == [f"{z.root}@z", f"{z.root}@a", f"{z.root}@m"]
        assert all(before <= (s.creation or 0) <= after and s.userrefs == 0 for s in full)
        assert all(isinstance(s.used, int) and isinstance(s.referenced, int) and s.referenced > 0 for s in full)
        assert [s.createtxg for s in full] == sorted(s.createtxg for s in full)
        assert len({s.guid for s in full}) == 3
        fast = await z.port.list_snapshots(z.root, recursive=False, details=False)
        assert fast == [Snapshot(s.name, s.guid, s.createtxg) for s in full]
        deep = await z.port.list_snapshots(z.root, recursive=True, details=False)
        assert [s.name for s in deep] == [*(s.name for s in full), f"{z.root}/kid@p"]
        snap = await z.port.get_properties(z.snap("kid@p"), property=None)
        assert snap["type"] == PropertyEntry("snapshot", "-") and snap[NOTE] == PropertyEntry("s", "local")
        assert snap["com.example:up"] == PropertyEntry("u", f"inherited from {z.root}")
        assert "compression" not in snap and "mounted" not in snap
        assert await z.prop(z.snap("kid@p"), "compression") == PropertyEntry("-", "-")
        assert (snap["guid"].value, snap["createtxg"].value) == (deep[3].guid, deep[3].createtxg)
        assert snap["userrefs"] == PropertyEntry(0, "-")
        with pytest.raises(NotFound) as missing:
            await z.port.list_snapshots(z.ds("zz"), recursive=False)
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")
        with pytest.raises(NotFound) as missing:
            await z.port.get_properties(z.snap("nope"), property=None)
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}@nope")

    async def test_create_and_destroy_snapshots(self, z: Subject) -> None:
        await z.tree("kid")
        await z.snapshots("kid@r")
        with pytest.raises(AlreadyExists) as exists:
            await z.port.create_snapshot(z.snap("kid@r"), recursive=False, properties={})
        assert (exists.value.kind, exists.value.name) == ("snapshot", f"{z.root}/kid@r")
        with pytest.raises(AlreadyExists) as exists:
            await z.port.create_snapshot(z.snap("r"), recursive=True, properties={})
        assert (exists.value.kind, exists.value.name) == ("snapshot", f"{z.root}/kid@r")
        with pytest.raises(NotFound) as missing:
            await z.port.create_snapshot(z.snap("zz@r"), recursive=False, properties={})
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")
        await z.port.create_snapshot(z.snap("both"), recursive=True, properties={})
        listed = await z.port.list_snapshots(z.root, recursive=True, details=False)
        assert [s.name for s in listed] == [f"{z.root}/kid@r", f"{z.root}@both", f"{z.root}/kid@both"]
        assert listed[1].createtxg == listed[2].createtxg
        await z.port.destroy_snapshot(z.snap("both"), recursive=True)
        await z.port.destroy_snapshot(z.snap("r"), recursive=True)  # only the child has one: that one goes
        assert await z.port.list_snapshots(z.root, recursive=True) == []
        with pytest.raises(NotFound) as missing:
            await z.port.destroy_snapshot(z.snap("kid@r"), recursive=False)
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}/kid@r")
        with pytest.raises(NotFound) as missing:
            await z.port.destroy_snapshot(z.snap("zz@r"), recursive=False)
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")

    async def test_rollback(self, z: Subject) -> None:
        await z.tree()
        await z.snapshots("z", "a", "m")
        await z.port.create_bookmark(z.snap("z"), z.bm("same"))
        await z.port.create_bookmark(z.snap("a"), z.bm("later"))
        with pytest.raises(StateConflict) as conflict:
            await z.port.rollback(z.snap("z"), destroy_newer=False)
        assert conflict.value.reason == "more recent snapshots or bookmarks exist"
        # the order of the list is ZFS's iteration order, which varies with the names (and between releases)
        assert list(conflict.value.details) == ["newer"]
        assert sorted(conflict.value.details["newer"]) == sorted([f"{z.root}@a", f"{z.root}@m", f"{z.root}#later"])
        await z.port.rollback(z.snap("m"), destroy_newer=False)
        with pytest.raises(NotFound) as missing:
            await z.port.rollback(z.snap("nope"), destroy_newer=False)
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}@nope")
        await z.port.rollback(z.snap("z"), destroy_newer=True)
        assert [s.short for s in await z.port.list_snapshots(z.root, recursive=False)] == ["z"]
        assert await z.port.list_bookmarks(z.root) == [f"{z.root}#same"]

    async def test_holds(self, z: Subject) -> None:
        await z.tree("kid")
        await z.port.create_snapshot(z.snap("s"), recursive=True, properties={})
        before = int(time.time()) // 60 * 60  # OpenZFS 2.1 prints hold times to the minute
        await z.port.hold(z.snap("s"), KEEP, recursive=False)
        await z.port.hold(z.snap("s"), HoldTag("deep"), recursive=True)
        after = math.ceil(time.time())
        with pytest.raises(AlreadyExists) as exists:
            await z.port.hold(z.snap("s"), KEEP, recursive=False)
        assert (exists.value.kind, exists.value.name) == ("hold", f"{z.root}@s")
        with pytest.raises(NotFound) as missing:
            await z.port.hold(z.snap("nope"), KEEP, recursive=False)
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}@nope")
        holds = await z.port.list_holds(z.snap("s"), recursive=False)
        assert sorted((name, h.tag) for name, h in holds) == [(f"{z.root}@s", "deep"), (f"{z.root}@s", "keep")]
        assert all(before <= h.timestamp <= after for _, h in holds)
        deep = await z.port.list_holds(z.snap("s"), recursive=True)
        assert sorted((name, h.tag) for name, h in deep) == [
            (f"{z.root}/kid@s", "deep"), (f"{z.root}@s", "deep"), (f"{z.root}@s", "keep")]
        assert [s.userrefs for s in await z.port.list_snapshots(z.root, recursive=True)] == [2, 1]
        with pytest.raises(HasDependents) as held:
            await z.port.destroy_snapshot(z.snap("s"), recursive=False)
        assert (held.value.name, held.value.dependents) == (f"{z.root}@s", [])
        with pytest.raises(NotFound) as no_tag:
            await z.port.release(z.snap("s"), HoldTag("other"), recursive=False)
        assert (no_tag.value.kind, no_tag.value.name) == ("hold", f"{z.root}@s")
        await z.port.release(z.snap("s"), HoldTag("deep"), recursive=True)
        await z.port.release(z.snap("s"), KEEP, recursive=False)
        assert await z.port.list_holds(z.snap("s"), recursive=True) == []
        with pytest.raises(NotFound) as missing:
            await z.port.list_holds(z.snap("nope"), recursive=False)
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}@nope")

    async def test_clones_and_destroy(self, z: Subject) -> None:
        await z.tree("a", "a/kid")
        await z.snapshots("a@s", "a/kid@k")
        clone = z.ds("clone")
        await z.port.create_clone(z.snap("a@s"), clone, properties={PropertyName(NOTE): PropertyValue("c")})
        assert await z.prop(clone, "origin") == PropertyEntry(f"{z.root}/a@s", "-")
        assert await z.prop(clone, NOTE) == PropertyEntry("c", "local")
        with pytest.raises(AlreadyExists) as exists:
            await z.port.create_clone(z.snap("a@s"), clone, properties={})
        assert (exists.value.kind, exists.value.name) == ("dataset", clone.value)
        with pytest.raises(NotFound) as missing:
            await z.port.create_clone(z.snap("a@nope"), z.ds("clone2"), properties={})
        assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}/a@nope")
        with pytest.raises(HasDependents) as has_clone:
            await z.port.destroy_snapshot(z.snap("a@s"), recursive=False)
        assert (has_clone.value.name, has_clone.value.reason, has_clone.value.dependents) == (
            f"{z.root}/a@s", "has dependent clones", [clone.value])
        with pytest.raises(HasDependents) as children:
            await z.port.destroy_dataset(z.ds("a"), flags=NO_FLAGS)
        assert (children.value.name, children.value.reason) == (f"{z.root}/a", "has children")
        assert children.value.dependents == [f"{z.root}/a/kid@k", f"{z.root}/a/kid", f"{z.root}/a@s"]
        with pytest.raises(HasDependents) as clones:
            await z.port.destroy_dataset(z.ds("a"), flags=RECURSIVE)
        assert (clones.value.name, clones.value.reason, clones.value.dependents) == (
            f"{z.root}/a", "has dependent clones", [clone.value])
        before = await z.names()
        doomed = await z.port.preview_destroy(z.ds("a"), flags=DEPENDENTS)  # a dry run, in no promised order
        assert sorted(doomed) == sorted([f"{z.root}/a", f"{z.root}/a/kid", f"{z.root}/a@s", f"{z.root}/a/kid@k",
                                         clone.value])
        assert await z.names() == before
        with pytest.raises(HasDependents) as previewed:
            await z.port.preview_destroy(z.ds("a"), flags=RECURSIVE)
        assert previewed.value.reason == "has dependent clones"
        with pytest.raises(NotFound):
            await z.port.preview_destroy(z.ds("nope"), flags=DEPENDENTS)
        await z.port.destroy_dataset(z.ds("a"), flags=DEPENDENTS)
        assert await z.names() == [z.root.value]
        with pytest.raises(NotFound) as gone:
            await z.port.destroy_dataset(z.ds("a"), flags=NO_FLAGS)
        assert (gone.value.kind, gone.value.name) == ("dataset", f"{z.root}/a")

    async def test_diff(self, z: Subject) -> None:
        await z.tree()
        await z.snapshots("a", "b")
        assert await z.port.diff(z.snap("a"), z.snap("b")) == []
        assert await z.port.diff(z.snap("a"), z.root) == []
        with pytest.raises(ZfsCommandFailed) as backwards:
            await z.port.diff(z.snap("b"), z.snap("a"))
        assert type(backwards.value) is ZfsCommandFailed
        assert "Not an earlier snapshot from the same fs" in backwards.value.stderr
        for older, newer in ((z.snap("nope"), z.root), (z.snap("nope"), z.snap("b")), (z.snap("a"), z.snap("nope"))):
            with pytest.raises(NotFound) as missing:
                await z.port.diff(older, newer)
            assert (missing.value.kind, missing.value.name) == ("snapshot", f"{z.root}@nope")

    # ---- Bookmarks ----

    async def test_bookmarks(self, z: Subject) -> None:
        await z.tree("other")
        await z.snapshots("s1", "s2")
        await z.port.create_bookmark(z.snap("s2"), z.bm("new"))
        await z.port.create_bookmark(z.snap("s1"), z.bm("old"))
        await z.port.create_bookmark(z.bm("old"), z.bm("copy"))
        assert await z.port.list_bookmarks(z.root) == [f"{z.root}#copy", f"{z.root}#old", f"{z.root}#new"]
        snaps = {s.short: s for s in await z.port.list_snapshots(z.root, recursive=False)}
        assert await z.port.list_bookmark_ids(z.root) == [  # a bookmark is its snapshot's guid and createtxg
            Bookmark(f"{z.root}#{b}", snaps[s].guid, snaps[s].createtxg) for b, s in
            (("copy", "s1"), ("old", "s1"), ("new", "s2"))]
        with pytest.raises(AlreadyExists) as exists:
            await z.port.create_bookmark(z.snap("s1"), z.bm("old"))
        assert (exists.value.kind, exists.value.name) == ("bookmark", f"{z.root}#old")
        with pytest.raises(NotFound) as no_snap:
            await z.port.create_bookmark(z.snap("nope"), z.bm("x"))
        assert (no_snap.value.kind, no_snap.value.name) == ("snapshot", f"{z.root}@nope")
        with pytest.raises(NotFound) as no_source:
            await z.port.create_bookmark(z.bm("nope"), z.bm("x"))
        assert (no_source.value.kind, no_source.value.name) == ("bookmark", f"{z.root}#nope")
        with pytest.raises(ZfsCommandFailed) as elsewhere:
            await z.port.create_bookmark(z.snap("s1"), z.bm("other#x"))
        assert elsewhere.value.stderr.startswith(
            f"cannot create bookmark '{z.root}/other#x': source is not an ancestor of the new bookmark's dataset")
        await z.port.destroy_snapshot(z.snap("s1"), recursive=False)  # bookmarks outlive their snapshot
        await z.port.destroy_bookmark(z.bm("copy"))
        assert await z.port.list_bookmarks(z.root) == [f"{z.root}#old", f"{z.root}#new"]
        assert await z.port.list_bookmarks(z.ds("other")) == []
        with pytest.raises(NotFound) as gone:
            await z.port.destroy_bookmark(z.bm("copy"))
        assert (gone.value.kind, gone.value.name) == ("bookmark", f"{z.root}#copy")
        with pytest.raises(NotFound) as missing:
            await z.port.list_bookmarks(z.ds("zz"))
        assert (missing.value.kind, missing.value.name) == ("dataset", f"{z.root}/zz")

    # ---- Pools ----

    async def test_pools(self, z: Subject) -> None:
        mine = next(p for p in await z.port.list_pools() if p.name == z.pool.value)
        assert mine.health == "ONLINE" and mine.size > 0 and mine.size == mine.allocated + mine.free
        assert mine.capacity == mine.allocated * 100 // mine.size
        assert isinstance(mine.fragmentation, int)
        everything = await z.port.pool_properties(z.pool, property=None)
        assert everything["health"] == PropertyEntry("ONLINE", "-")
        assert everything["size"] == PropertyEntry(mine.size, "-")
        for key in ("allocated", "free", "capacity", "guid"):
            assert isinstance(everything[key].value, int) and everything[key].source == "-", key
        assert await z.port.pool_properties(z.pool, property=PropertyName("health")) == {
            "health": PropertyEntry("ONLINE", "-")}
        with pytest.raises(InvalidArgument) as unknown:
            await z.port.pool_properties(z.pool, property=PropertyName("bogus"))
        assert (unknown.value.param, unknown.value.reason) == (
            "property", "bad property list: invalid property 'bogus'")
        status = await z.port.pool_status(z.pool)
        assert (status.pool, status.state, status.errors) == (z.pool.value, "ONLINE", "No known data errors")
        assert status.raw.lstrip().startswith(f"pool: {z.pool}\n")
        (top,) = status.vdevs
        assert (top.name, top.state, top.read, top.write, top.checksum) == (z.pool.value, "ONLINE", 0, 0, 0)
        assert [(leaf.state, leaf.children) for leaf in top.children] == [("ONLINE", [])]
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", await z.port.version())
        nope = PoolName("nosuchpool")
        for call in (z.port.pool_properties(nope, property=None), z.port.pool_status(nope),
                     z.port.scrub(nope, stop=False)):
            with pytest.raises(NotFound) as missing:
                await call
            assert (missing.value.kind, missing.value.name) == ("pool", "nosuchpool")

    async def test_scrub(self, z: Subject) -> None:
        with pytest.raises(StateConflict) as idle:
            await z.port.scrub(z.pool, stop=True)
        assert idle.value.reason == "there is no active scrub"
        with z.scrubs_last():
            await z.port.scrub(z.pool, stop=False)
            with pytest.raises(Busy) as busy:
                await z.port.scrub(z.pool, stop=False)
            assert (busy.value.name, busy.value.reason) == (z.pool.value, "a scrub or resilver is in progress")
            scan = (await z.port.pool_status(z.pool)).scan
            assert (scan.function, scan.state, scan.percent, scan.errors) == ("scrub", "scanning", 0.0, 0)
            await z.port.scrub(z.pool, stop=True)
        scan = (await z.port.pool_status(z.pool)).scan
        assert (scan.function, scan.state) == ("scrub", "canceled")
        with pytest.raises(StateConflict):
            await z.port.scrub(z.pool, stop=True)
