"""Use cases through the real container, FakeZfs at the port boundary: end state and error fields."""

from __future__ import annotations

import pytest

from zfsapi.adapters.inbound.jsonrpc.methods import CORE
from zfsapi.domain.errors import HasDependents, InvalidArgument, StateConflict
from zfsapi.domain.models import ChangeKind, DiffEntry
from zfsapi.domain.names import DatasetName, SnapshotName


async def test_create_list_destroy(rpc, fake_zfs):
    assert await rpc("dataset_create", dataset="tank/a b/c:d", parents=True) == {"dataset": "tank/a b/c:d",
                                                                                  "created": True}
    assert "tank/a b" in fake_zfs.datasets
    listing = await rpc("dataset_list", dataset="tank", properties=["com.x:y"])
    assert listing["datasets"] == ["tank", "tank/a b", "tank/a b/c:d"]
    assert listing["properties"]["tank/a b"] == {"com.x:y": "-"}
    error = await rpc("dataset_destroy", error=True, dataset="tank/a b")
    assert error["code"] == -32012 and error["data"]["dependents"] == ["tank/a b/c:d"]
    assert await rpc("dataset_destroy", dataset="tank/a b", recursive=True) == {"dataset": "tank/a b",
                                                                                 "destroyed": True}
    assert set(fake_zfs.datasets) == {"tank"}


async def test_pool_root_cannot_be_destroyed(rpc):
    error = await rpc("dataset_destroy", error=True, dataset="tank", recursive=True)
    assert error["code"] == -32602 and error["data"]["param"] == "dataset"


async def test_errors_carry_kind_and_name(rpc):
    error = await rpc("dataset_get_space", error=True, dataset="tank/missing")
    assert error == {"code": -32010, "message": "Dataset not found: tank/missing",
                     "data": {"kind": "dataset", "name": "tank/missing"}}
    await rpc("dataset_create", dataset="tank/a")
    error = await rpc("dataset_create", error=True, dataset="tank/a")
    assert error["code"] == -32011 and error["data"] == {"kind": "dataset", "name": "tank/a"}


async def test_snapshots_rollback_and_holds(rpc, fake_zfs):
    await rpc("dataset_create", dataset="tank/a")
    for name in ["s1", "s2", "s3"]:
        await rpc("snapshot_create", dataset="tank/a", name=name)
    result = await rpc("snapshot_list", dataset="tank/a")
    assert result["snapshots"] == ["s1", "s2", "s3"]
    assert [d["name"] for d in result["details"]] == ["tank/a@s1", "tank/a@s2", "tank/a@s3"]
    error = await rpc("snapshot_rollback", error=True, dataset="tank/a", snapshot="s1")
    assert error["code"] == -32015 and error["data"]["newer"] == ["tank/a@s2", "tank/a@s3"]
    assert set(fake_zfs.snapshots) == {"tank/a@s1", "tank/a@s2", "tank/a@s3"}  # nothing lost
    await rpc("snapshot_hold", dataset="tank/a", snapshot="s2", tag="keep")
    holds = await rpc("snapshot_holds_list", dataset="tank/a", snapshot="s2")
    assert holds["holds"] == ["keep"] and holds["details"][0]["tag"] == "keep"
    error = await rpc("snapshot_destroy", error=True, dataset="tank/a", snapshot="s2")
    assert error["code"] == -32012
    await rpc("snapshot_release", dataset="tank/a", snapshot="s2", tag="keep")
    result = await rpc("snapshot_rollback", dataset="tank/a", snapshot="s1", destroy_newer=True)
    assert result == {"dataset": "tank/a", "snapshot": "s1", "rolled_back": True,
                      "destroyed": ["tank/a@s2", "tank/a@s3"]}
    assert set(fake_zfs.snapshots) == {"tank/a@s1"}


async def test_snapshot_list_without_details(rpc):
    await rpc("snapshot_create", dataset="tank", name="a")
    full = await rpc("snapshot_list", dataset="tank")
    fast = await rpc("snapshot_list", dataset="tank", details=False)
    assert fast["snapshots"] == full["snapshots"] == ["a"]
    assert fast["details"] == [{k: full["details"][0][k] for k in ("name", "guid", "createtxg")}]


async def test_auto_snapshot_names(rpc):
    await rpc("dataset_create", dataset="tank/a")
    first = await rpc("snapshot_create_auto", dataset="tank/a", tag="daily")
    second = await rpc("snapshot_create_auto", dataset="tank/a", tag="daily")
    third = await rpc("snapshot_create_auto", dataset="tank/a", tag="daily", tag1="db")
    assert first["snapshot"] == "daily_2026-11-24-12-30"
    assert second["snapshot"] == "daily_2026-11-24-12-30-15"
    assert third["snapshot"] == "daily_db_2026-11-24-12-30"
    error = await rpc("snapshot_create_auto", error=True, dataset="tank/a", tag="bad/tag")
    assert error["data"]["param"] == "tag"


async def test_clone_blocks_destroy_until_dependents_allowed(rpc, fake_zfs):
    await rpc("dataset_create", dataset="tank/a")
    await rpc("snapshot_create", dataset="tank/a", name="s")
    assert await rpc("clone_create", source="tank/a@s", target="tank/c") == {"source": "tank/a@s",
                                                                               "clone": "tank/c", "created": True}
    error = await rpc("dataset_destroy", error=True, dataset="tank/a", recursive=True)
    assert error["code"] == -32012 and error["data"]["dependents"] == ["tank/c"]
    await rpc("dataset_destroy", dataset="tank/a", recursive_dependents=True)
    assert "tank/c" not in fake_zfs.datasets


async def test_volumes_and_bookmarks(rpc):
    r = await rpc("volume_create", dataset="tank/v", size_bytes=1000)
    assert r == {"volume": "tank/v", "created": True, "size_bytes": 16384}
    assert (await rpc("volume_list"))["volumes"] == ["tank/v"]
    error = await rpc("volume_create", error=True, dataset="tank/w")
    assert error["code"] == -32602
    error = await rpc("volume_create", error=True, dataset="tank/w", size_gb=1, size_bytes=5)
    assert error["code"] == -32602
    error = await rpc("volume_create", error=True, dataset="tank/w", size_gb=1, volblocksize="3K")
    assert error["data"]["param"] == "volblocksize"
    await rpc("snapshot_create", dataset="tank", name="s")
    assert (await rpc("bookmark_create", snapshot="tank@s", bookmark="tank#b"))["bookmark"] == "tank#b"
    assert (await rpc("bookmark_list", dataset="tank"))["bookmarks"] == ["tank#b"]
    error = await rpc("bookmark_create", error=True, snapshot="tank@s", bookmark="other#b")
    assert error["code"] == -32602
    assert await rpc("bookmark_destroy", bookmark="tank#b") == {"bookmark": "tank#b", "destroyed": True}
    assert (await rpc("bookmark_destroy", error=True, bookmark="tank#b"))["code"] == -32010


async def test_mount_reports_already(rpc):
    await rpc("dataset_create", dataset="tank/m")
    assert await rpc("dataset_mount", dataset="tank/m") == {"dataset": "tank/m", "mounted": True,
                                                           "already_mounted": True}
    assert await rpc("dataset_unmount", dataset="tank/m") == {"dataset": "tank/m", "unmounted": True}
    assert await rpc("dataset_mount", dataset="tank/m") == {"dataset": "tank/m", "mounted": True}


async def test_rename_rules(rpc):
    await rpc("dataset_create", dataset="tank/a")
    assert (await rpc("dataset_rename", error=True, dataset="tank/a", new_name="other/a"))["data"]["param"] == \
        "new_name"
    assert (await rpc("dataset_rename", error=True, dataset="tank/a", new_name="tank/a/b"))["code"] == -32602
    assert await rpc("dataset_rename", dataset="tank/a", new_name="tank/b") == {
        "old_name": "tank/a", "new_name": "tank/b", "renamed": True}


async def test_scrub_and_status(rpc):
    assert await rpc("pool_scrub_start", pool="tank") == {"pool": "tank", "scrub": "started"}
    assert (await rpc("pool_scrub_start", error=True, pool="tank"))["code"] == -32012
    assert (await rpc("pool_status", pool="tank"))["scan"]["state"] == "scanning"
    assert await rpc("pool_scrub_stop", pool="tank") == {"pool": "tank", "scrub": "stopped"}
    assert (await rpc("pool_scrub_stop", error=True, pool="tank"))["code"] == -32015
    assert (await rpc("pool_status", error=True, pool="nope"))["data"] == {"kind": "pool", "name": "nope"}


async def test_properties_get_set(rpc):
    await rpc("dataset_set_property", dataset="tank", property="com.x:note", value="hello world")
    props = await rpc("dataset_get_properties", dataset="tank", property="com.x:note", detailed=True)
    assert props["properties"] == {"com.x:note": {"value": "hello world", "source": "local"}}
    assert (await rpc("dataset_get_properties", error=True, dataset="tank", property="nosuch"))["code"] == -32602


async def test_diff_shape(rpc, fake_zfs):
    await rpc("snapshot_create", dataset="tank", name="s")
    fake_zfs.write("tank", DiffEntry(ChangeKind.MODIFIED, "/tank/", "directory"))
    r = await rpc("snapshot_diff", snapshot1="tank@s")
    assert r["snapshot2"] == "current" and r["summary"]["total_changes"] == 1
    assert r["changes"]["modified"] == [{"path": "/tank/", "type": "directory"}]
    error = await rpc("snapshot_diff", error=True, snapshot1="tank@s", snapshot2="tank/x@s")
    assert error["data"]["param"] == "snapshot2"


async def test_use_cases_embedded_without_http(use_cases, fake_zfs):
    await use_cases.dataset_create.execute(dataset=DatasetName.parse("tank/e"), properties={})
    await use_cases.snapshot_create.execute(snapshot=SnapshotName.parse("tank/e@1"), properties={})
    assert [s.short for s in await use_cases.snapshot_list.execute(dataset=DatasetName.parse("tank/e"))] == ["1"]
    with pytest.raises(HasDependents):
        await use_cases.dataset_destroy.execute(dataset=DatasetName.parse("tank/e"))
    await use_cases.snapshot_create.execute(snapshot=SnapshotName.parse("tank/e@2"), properties={})
    with pytest.raises(StateConflict):
        await use_cases.snapshot_rollback.execute(snapshot=SnapshotName.parse("tank/e@1"), destroy_newer=False)
    with pytest.raises(InvalidArgument):
        await use_cases.dataset_rename.execute(dataset=DatasetName("tank/e"), new_name=DatasetName("x/e"))


# The wire contract's result keys (README's method table), optional keys given separately.
CONTRACT = {
    "dataset_create": "dataset created", "dataset_destroy": "dataset destroyed",
    "dataset_list": "datasets", "dataset_get_properties": "dataset properties",
    "dataset_set_property": "dataset property value", "dataset_get_space": "dataset space",
    "dataset_mount": "dataset mounted", "dataset_unmount": "dataset unmounted",
    "dataset_rename": "old_name new_name renamed", "snapshot_create": "dataset snapshot created",
    "snapshot_create_auto": "dataset snapshot created", "snapshot_list": "dataset snapshots details",
    "snapshot_destroy": "snapshot destroyed", "snapshot_rollback": "dataset snapshot rolled_back destroyed",
    "snapshot_hold": "dataset snapshot hold", "snapshot_release": "dataset snapshot released",
    "snapshot_holds_list": "dataset snapshot holds details", "snapshot_diff": "snapshot1 snapshot2 changes summary",
    "pool_list": "pools details", "pool_get_properties": "pool properties", "pool_scrub_start": "pool scrub",
    "pool_scrub_stop": "pool scrub", "pool_status": "pool status state scan vdevs errors",
    "clone_create": "source clone created", "volume_create": "volume created size_bytes", "volume_list": "volumes",
    "bookmark_create": "snapshot bookmark created", "bookmark_list": "dataset bookmarks",
    "bookmark_destroy": "bookmark destroyed",
}


async def test_every_core_method_answers_exactly_the_contract_keys(rpc, fake_zfs):
    seen = set()

    async def call(method, extra="", **params):
        result = await rpc(method, **params)
        assert list(result) == CONTRACT[method].split() + extra.split(), (method, result)
        seen.add(method)
        return result

    await call("dataset_create", dataset="tank/a b", properties={"com.x:y": "1"})
    await call("dataset_list")
    await call("dataset_list", "properties", properties=["used"])
    await call("dataset_get_properties", dataset="tank/a b")
    await call("dataset_set_property", dataset="tank/a b", property="com.x:y", value="2")
    space = await call("dataset_get_space", dataset="tank/a b")
    assert list(space["space"]) == ["name", "avail", "used", "usedsnap", "useddss", "usedrefreserv", "usedchild"]
    await call("dataset_mount", "already_mounted", dataset="tank/a b")
    await call("dataset_unmount", dataset="tank/a b")
    await call("dataset_unmount", "already_unmounted", dataset="tank/a b")
    await call("dataset_mount", dataset="tank/a b")
    await call("dataset_rename", dataset="tank/a b", new_name="tank/a.b")
    await call("snapshot_create", dataset="tank/a.b", name="s1")
    await call("snapshot_create_auto", dataset="tank/a.b", tag="daily")
    listing = await call("snapshot_list", dataset="tank/a.b")
    assert list(listing["details"][0]) == ["name", "guid", "createtxg", "creation", "used", "referenced", "userrefs"]
    fast = await call("snapshot_list", dataset="tank/a.b", details=False)
    assert list(fast["details"][0]) == ["name", "guid", "createtxg"]
    await call("snapshot_hold", dataset="tank/a.b", snapshot="s1", tag="keep")
    holds = await call("snapshot_holds_list", dataset="tank/a.b", snapshot="s1")
    assert list(holds["details"][0]) == ["tag", "timestamp", "snapshot"]
    await call("snapshot_release", dataset="tank/a.b", snapshot="s1", tag="keep")
    fake_zfs.write("tank/a.b", DiffEntry(ChangeKind.MODIFIED, "/tank/a.b/", "directory"))
    diff = await call("snapshot_diff", snapshot1="tank/a.b@s1")
    assert list(diff["changes"]) == ["new", "modified", "deleted", "renamed"]
    assert list(diff["changes"]["modified"][0]) == ["path", "type"]
    assert list(diff["summary"]) == ["new_count", "modified_count", "deleted_count", "renamed_count", "total_changes"]
    await call("clone_create", source="tank/a.b@s1", target="tank/c")
    await call("volume_create", dataset="tank/v", size_bytes=4096)
    await call("volume_list")
    await call("bookmark_create", snapshot="tank/a.b@s1", bookmark="m")
    await call("bookmark_list", dataset="tank/a.b")
    await call("bookmark_destroy", bookmark="tank/a.b#m")
    await call("dataset_destroy", dataset="tank/c")
    await call("snapshot_rollback", dataset="tank/a.b", snapshot="s1", destroy_newer=True)
    await call("snapshot_destroy", dataset="tank/a.b", snapshot="s1")
    pools = await call("pool_list")
    assert list(pools["details"][0]) == ["name", "size", "allocated", "free", "capacity", "health", "fragmentation"]
    await call("pool_get_properties", pool="tank")
    await call("pool_scrub_start", pool="tank")
    status = await call("pool_status", pool="tank")
    assert list(status["scan"]) == ["function", "state", "percent", "examined", "total", "errors"]
    assert list(status["vdevs"][0]) == ["name", "state", "read", "write", "checksum", "children"]
    await call("pool_scrub_stop", pool="tank")
    assert seen == {row.name for row in CORE} == set(CONTRACT)
