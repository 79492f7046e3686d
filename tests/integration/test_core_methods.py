"""Every core method over HTTP on real OpenZFS, with awkward names, missing objects and dependents.
The stderr classifications of parsers.py are pinned here."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from dependency_injector import providers

from tests.conftest import Rpc, http_client
from tests.fakes import FixedClock
from tests.integration.conftest import mountpoint, zfs, zfs_version
from tests.zfs_contract import zfs_set_exit_code
from zfsapi.bootstrap.lifecycle import http_app


async def test_dataset_lifecycle(rpc, dataset):
    child = f"{dataset}/a b/c:d"
    assert await rpc("dataset_create", dataset=child, parents=True,
                     properties={"compression": "lz4", "com.example:note": "hello world"}) == {
        "dataset": child, "created": True}
    listing = await rpc("dataset_list", dataset=dataset, properties=["compression", "com.example:note", "used"])
    assert listing["datasets"] == [dataset, f"{dataset}/a b", child]
    assert listing["properties"][child]["compression"] == "lz4"
    assert listing["properties"][child]["com.example:note"] == "hello world"
    assert isinstance(listing["properties"][child]["used"], int)
    shallow = await rpc("dataset_list", dataset=dataset, recursive=False)
    assert shallow["datasets"] == [dataset, f"{dataset}/a b"]
    assert (await rpc("dataset_list", dataset=dataset, type="volume"))["datasets"] == []

    err = await rpc("dataset_create", error=True, dataset=child)
    assert err["code"] == -32011 and err["data"] == {"kind": "dataset", "name": child}
    err = await rpc("dataset_create", error=True, dataset=f"{dataset}/no/such")
    assert err["code"] == -32010 and err["data"] == {"kind": "dataset", "name": f"{dataset}/no"}

    err = await rpc("dataset_destroy", error=True, dataset=f"{dataset}/a b")
    assert err["code"] == -32012 and err["data"]["dependents"] == [child]
    assert await rpc("dataset_destroy", dataset=f"{dataset}/a b", recursive=True) == {
        "dataset": f"{dataset}/a b", "destroyed": True}
    err = await rpc("dataset_destroy", error=True, dataset=f"{dataset}/a b")
    assert err["code"] == -32010


async def test_255_byte_name(rpc, pool):
    name = f"{pool}/" + "n" * (254 - len(pool))
    assert len(name.encode()) == 255
    assert (await rpc("dataset_create", dataset=name))["created"]
    assert (await rpc("dataset_list", dataset=name))["datasets"] == [name]
    await rpc("dataset_destroy", dataset=name)
    err = await rpc("dataset_create", error=True, dataset=name + "x")
    assert err["code"] == -32602 and err["data"]["param"] == "dataset"


async def test_properties(rpc, dataset):
    props = (await rpc("dataset_get_properties", dataset=dataset))["properties"]
    assert props["type"] == "filesystem" and isinstance(props["used"], int) and isinstance(props["guid"], int)
    one = await rpc("dataset_get_properties", dataset=dataset, property="compression", detailed=True)
    assert set(one["properties"]["compression"]) == {"value", "source"}
    assert await rpc("dataset_set_property", dataset=dataset, property="com.example:note", value="a b: ü") == {
        "dataset": dataset, "property": "com.example:note", "value": "a b: ü"}
    one = await rpc("dataset_get_properties", dataset=dataset, property="com.example:note", detailed=True)
    assert one["properties"]["com.example:note"] == {"value": "a b: ü", "source": "local"}
    err = await rpc("dataset_set_property", error=True, dataset=dataset, property="compression", value="bogus")
    assert err["code"] == -32013 and "compression" in err["data"]["stderr"]
    assert err["data"]["exit_code"] == zfs_set_exit_code(zfs_version())
    err = await rpc("dataset_get_properties", error=True, dataset=dataset, property="compresion")
    assert err["code"] == -32602 and err["data"]["param"] == "property"
    err = await rpc("dataset_get_properties", error=True, dataset=dataset + "/nope")
    assert err["code"] == -32010


async def test_space_mount_rename(rpc, dataset):
    space = await rpc("dataset_get_space", dataset=dataset)
    assert space["dataset"] == dataset and set(space["space"]) == {
        "name", "avail", "used", "usedsnap", "useddss", "usedrefreserv", "usedchild"}
    assert all(isinstance(v, int) for k, v in space["space"].items() if k != "name")
    assert await rpc("dataset_mount", dataset=dataset) == {"dataset": dataset, "mounted": True,
                                                          "already_mounted": True}
    assert await rpc("dataset_unmount", dataset=dataset) == {"dataset": dataset, "unmounted": True}
    assert (await rpc("dataset_unmount", dataset=dataset))["already_unmounted"] is True
    assert await rpc("dataset_mount", dataset=dataset) == {"dataset": dataset, "mounted": True}
    await rpc("dataset_create", dataset=f"{dataset}/old")
    await rpc("dataset_create", dataset=f"{dataset}/taken")
    err = await rpc("dataset_rename", error=True, dataset=f"{dataset}/old", new_name=f"{dataset}/taken")
    assert err["code"] == -32011
    assert await rpc("dataset_rename", dataset=f"{dataset}/old", new_name=f"{dataset}/new name") == {
        "old_name": f"{dataset}/old", "new_name": f"{dataset}/new name", "renamed": True}
    err = await rpc("dataset_rename", error=True, dataset=f"{dataset}/old", new_name=f"{dataset}/x")
    assert err["code"] == -32010


async def test_snapshots_and_rollback(rpc, dataset):
    for name in ["s1", "s 2", "s:3"]:
        assert await rpc("snapshot_create", dataset=dataset, name=name) == {
            "dataset": dataset, "snapshot": name, "created": True}
    err = await rpc("snapshot_create", error=True, dataset=dataset, name="s1")
    assert err["code"] == -32011 and err["data"] == {"kind": "snapshot", "name": f"{dataset}@s1"}
    err = await rpc("snapshot_create", error=True, dataset=dataset + "/nope", name="s1")
    assert err["code"] == -32010
    listing = await rpc("snapshot_list", dataset=dataset)
    assert listing["snapshots"] == ["s1", "s 2", "s:3"]
    d = listing["details"][0]
    guid, txg = zfs("zfs", "get", "-Hp", "-o", "value", "guid,createtxg", f"{dataset}@s1").stdout.split()
    assert (d["name"], d["guid"], d["createtxg"], d["userrefs"]) == (f"{dataset}@s1", int(guid), int(txg), 0)
    err = await rpc("snapshot_rollback", error=True, dataset=dataset, snapshot="s1")
    assert err["code"] == -32015 and err["data"]["newer"] == [f"{dataset}@s 2", f"{dataset}@s:3"]
    assert (await rpc("snapshot_list", dataset=dataset))["snapshots"] == ["s1", "s 2", "s:3"]
    r = await rpc("snapshot_rollback", dataset=dataset, snapshot="s1", destroy_newer=True)
    assert r == {"dataset": dataset, "snapshot": "s1", "rolled_back": True,
                 "destroyed": [f"{dataset}@s 2", f"{dataset}@s:3"]}
    assert (await rpc("snapshot_list", dataset=dataset))["snapshots"] == ["s1"]
    assert await rpc("snapshot_destroy", dataset=dataset, snapshot="s1") == {
        "snapshot": f"{dataset}@s1", "destroyed": True}
    err = await rpc("snapshot_destroy", error=True, dataset=dataset, snapshot="s1")
    assert err["code"] == -32010 and err["data"]["kind"] == "snapshot"


async def test_snapshot_list_without_details_has_the_same_identities(rpc, dataset):
    for name in ["b", "a", "c"]:
        await rpc("snapshot_create", dataset=dataset, name=name)
    full = await rpc("snapshot_list", dataset=dataset)
    fast = await rpc("snapshot_list", dataset=dataset, details=False)
    assert fast["snapshots"] == full["snapshots"] == ["b", "a", "c"]
    assert fast["details"] == [{k: d[k] for k in ("name", "guid", "createtxg")} for d in full["details"]]


async def test_recursive_snapshots(rpc, dataset):
    await rpc("dataset_create", dataset=f"{dataset}/kid")
    await rpc("snapshot_create", dataset=dataset, name="r", recursive=True)
    listing = await rpc("snapshot_list", dataset=dataset, recursive=True)
    assert listing["snapshots"] == ["r", f"{dataset}/kid@r"]
    await rpc("snapshot_destroy", dataset=dataset, snapshot="r", recursive=True)
    assert (await rpc("snapshot_list", dataset=dataset, recursive=True))["snapshots"] == []


async def test_auto_snapshots(real_container, dataset):
    # one fixed minute, so that the second name must differ from the first (a real clock may cross a minute)
    real_container.clock.override(providers.Object(FixedClock(datetime(2026, 11, 24, 12, 30, 15, tzinfo=timezone.utc))))
    async with http_client(http_app(real_container)) as client:
        await _auto_snapshots(Rpc(client), dataset)


async def _auto_snapshots(rpc, dataset):
    a = await rpc("snapshot_create_auto", dataset=dataset, tag="daily", tag1="db")
    b = await rpc("snapshot_create_auto", dataset=dataset, tag="daily", tag1="db")
    assert a["snapshot"] == "daily_db_2026-11-24-12-30" and b["snapshot"] == "daily_db_2026-11-24-12-30-15"
    assert b["snapshot"].startswith(a["snapshot"])
    assert (await rpc("snapshot_list", dataset=dataset))["snapshots"] == [a["snapshot"], b["snapshot"]]


async def test_holds(rpc, dataset):
    await rpc("snapshot_create", dataset=dataset, name="s1")
    assert await rpc("snapshot_hold", dataset=dataset, snapshot="s1", tag="keep") == {
        "dataset": dataset, "snapshot": "s1", "hold": "keep"}
    err = await rpc("snapshot_hold", error=True, dataset=dataset, snapshot="s1", tag="keep")
    assert err["code"] == -32011 and err["data"]["kind"] == "hold"
    err = await rpc("snapshot_hold", error=True, dataset=dataset, snapshot="nope", tag="keep")
    assert err["code"] == -32010 and err["data"] == {"kind": "snapshot", "name": f"{dataset}@nope"}
    holds = await rpc("snapshot_holds_list", dataset=dataset, snapshot="s1")
    assert holds["holds"] == ["keep"] and holds["details"][0]["timestamp"] > 1_700_000_000
    err = await rpc("snapshot_destroy", error=True, dataset=dataset, snapshot="s1")
    assert err["code"] == -32012 and err["data"]["name"] == f"{dataset}@s1"
    err = await rpc("dataset_destroy", error=True, dataset=dataset, recursive=True)
    assert err["code"] == -32012
    err = await rpc("snapshot_release", error=True, dataset=dataset, snapshot="s1", tag="other")
    assert err["code"] == -32010 and err["data"]["kind"] == "hold"
    assert await rpc("snapshot_release", dataset=dataset, snapshot="s1", tag="keep") == {
        "dataset": dataset, "snapshot": "s1", "released": "keep"}
    assert (await rpc("snapshot_holds_list", dataset=dataset, snapshot="s1"))["holds"] == []


async def test_diff_paths_come_back_exactly(rpc, dataset):
    root = mountpoint(dataset)
    with open(os.path.join(root, "f1"), "w") as f:
        f.write("x")
    await rpc("snapshot_create", dataset=dataset, name="a")
    odd = ["dir x/ümlaut é", "back\\slash", "new\nline", "tab\there"]
    os.mkdir(os.path.join(root, "dir x"))
    for rel in odd:
        with open(os.path.join(root, rel), "w") as f:
            f.write("y")
    os.rename(os.path.join(root, "f1"), os.path.join(root, "f 2"))
    await rpc("snapshot_create", dataset=dataset, name="b")
    r = await rpc("snapshot_diff", snapshot1=f"{dataset}@a", snapshot2="b")
    new = {(e["path"], e["type"]) for e in r["changes"]["new"]}
    assert new == {(os.path.join(root, "dir x"), "directory"), *((os.path.join(root, rel), "file") for rel in odd)}
    assert r["changes"]["renamed"] == [{"old_path": os.path.join(root, "f1"),
                                        "new_path": os.path.join(root, "f 2"), "type": "file"}]
    assert r["changes"]["deleted"] == [] and [e["type"] for e in r["changes"]["modified"]] == ["directory"]
    assert r["summary"] == {"new_count": 5, "modified_count": 1, "deleted_count": 0, "renamed_count": 1,
                            "total_changes": 7}
    live = await rpc("snapshot_diff", snapshot1=f"{dataset}@b")
    assert live["snapshot2"] == "current" and live["summary"]["total_changes"] == 0
    err = await rpc("snapshot_diff", error=True, snapshot1=f"{dataset}@zz")
    assert err["code"] == -32010 and err["data"] == {"kind": "snapshot", "name": f"{dataset}@zz"}
    err = await rpc("snapshot_diff", error=True, snapshot1=f"{dataset}@a", snapshot2="zz")
    assert err["code"] == -32010 and err["data"] == {"kind": "snapshot", "name": f"{dataset}@zz"}


async def test_clones_block_destroy(rpc, dataset, pool):
    await rpc("snapshot_create", dataset=dataset, name="s")
    clone = f"{pool}/clone of {dataset.split('/')[-1]}"
    assert await rpc("clone_create", source=f"{dataset}@s", target=clone,
                     properties={"com.example:c": "1"}) == {"source": f"{dataset}@s", "clone": clone,
                                                            "created": True}
    err = await rpc("clone_create", error=True, source=f"{dataset}@nope", target=clone + "2")
    assert err["code"] == -32010
    err = await rpc("snapshot_destroy", error=True, dataset=dataset, snapshot="s")
    assert err["code"] == -32012 and clone in err["data"]["dependents"]
    err = await rpc("dataset_destroy", error=True, dataset=dataset, recursive=True)
    assert err["code"] == -32012 and err["data"]["dependents"] == [clone]
    assert (await rpc("dataset_list", dataset=clone))["datasets"] == [clone]
    await rpc("dataset_destroy", dataset=dataset, recursive_dependents=True)
    assert (await rpc("dataset_list", error=True, dataset=clone))["code"] == -32010


async def test_volumes(rpc, dataset):
    r = await rpc("volume_create", dataset=f"{dataset}/vol", size_bytes=1_000_000)
    assert r == {"volume": f"{dataset}/vol", "created": True, "size_bytes": 1_015_808}
    props = (await rpc("dataset_get_properties", dataset=f"{dataset}/vol", property="volsize"))["properties"]
    assert props["volsize"] == 1_015_808
    r = await rpc("volume_create", dataset=f"{dataset}/vol2", size_gb=0.001, sparse=False, volblocksize="8K",
                  compression="zstd")
    assert r == {"volume": f"{dataset}/vol2", "created": True, "size_bytes": 1_081_344}  # 0.001 GiB up to the 8K block
    assert (await rpc("volume_list", dataset=dataset))["volumes"] == [f"{dataset}/vol", f"{dataset}/vol2"]
    assert f"{dataset}/vol" in (await rpc("volume_list"))["volumes"]
    assert (await rpc("volume_create", error=True, dataset=f"{dataset}/vol", size_bytes=4096))["code"] == -32011


async def test_bookmarks(rpc, dataset):
    await rpc("snapshot_create", dataset=dataset, name="s")
    assert await rpc("bookmark_create", snapshot=f"{dataset}@s", bookmark=f"{dataset}#b m") == {
        "snapshot": f"{dataset}@s", "bookmark": f"{dataset}#b m", "created": True}
    err = await rpc("bookmark_create", error=True, snapshot=f"{dataset}@s", bookmark=f"{dataset}#b m")
    assert err["code"] == -32011 and err["data"]["kind"] == "bookmark"
    err = await rpc("bookmark_create", error=True, snapshot=f"{dataset}@nope", bookmark=f"{dataset}#x")
    assert err["code"] == -32010
    assert (await rpc("bookmark_create", snapshot=f"{dataset}#b m", bookmark="copy"))["bookmark"] == f"{dataset}#copy"
    assert (await rpc("bookmark_list", dataset=dataset))["bookmarks"] == [f"{dataset}#b m", f"{dataset}#copy"]
    assert await rpc("bookmark_destroy", bookmark=f"{dataset}#b m") == {"bookmark": f"{dataset}#b m",
                                                                         "destroyed": True}
    err = await rpc("bookmark_destroy", error=True, bookmark=f"{dataset}#b m")
    assert err["code"] == -32010 and err["data"] == {"kind": "bookmark", "name": f"{dataset}#b m"}
    assert (await rpc("bookmark_list", error=True, dataset=dataset + "/nope"))["code"] == -32010


async def test_pools(rpc, pool):
    pools = await rpc("pool_list")
    assert pool in pools["pools"]
    mine = next(d for d in pools["details"] if d["name"] == pool)
    assert mine["size"] == int(zfs("zpool", "list", "-Hp", "-o", "size", pool).stdout)
    assert mine["health"] == "ONLINE" and mine["free"] > 0 and isinstance(mine["capacity"], int)
    props = (await rpc("pool_get_properties", pool=pool))["properties"]
    assert props["health"] == "ONLINE" and isinstance(props["size"], int)
    assert set((await rpc("pool_get_properties", pool=pool, property="size"))["properties"]) == {"size"}
    err = await rpc("pool_get_properties", error=True, pool="nosuchpool")
    assert err["code"] == -32010 and err["data"] == {"kind": "pool", "name": "nosuchpool"}
    err = await rpc("pool_scrub_stop", error=True, pool=pool)
    assert err["code"] == -32015
    assert await rpc("pool_scrub_start", pool=pool) == {"pool": pool, "scrub": "started"}
    status = await rpc("pool_status", pool=pool)
    assert status["state"] == "ONLINE" and status["scan"]["function"] == "scrub"
    assert status["vdevs"][0]["name"] == pool and status["vdevs"][0]["children"][0]["name"].endswith("pool.img")
    assert status["status"].lstrip().startswith("pool:") and status["errors"] == "No known data errors"
    assert (await rpc("pool_status", error=True, pool="nosuchpool"))["code"] == -32010


async def test_health_on_real_zfs(real_client, pool):
    body = (await real_client.get("/health")).json()
    userland = zfs("zfs", "version").stdout.split("\n")[0]  # e.g. zfs-2.3.2-2~bpo12+2
    assert body["status"] == "ok" and userland.startswith(f"zfs-{body['zfs']['version']}-")
    assert {"name": pool, "health": "ONLINE"} in body["pools"]


async def test_batch_on_real_zfs(real_client, dataset):
    batch = [{"jsonrpc": "2.0", "method": "snapshot_create", "params": {"dataset": dataset, "name": f"b{i}"},
              "id": i} for i in range(5)]
    r = (await real_client.post("/", json=batch)).json()
    assert sorted(r, key=lambda a: a["id"]) == [
        {"jsonrpc": "2.0", "result": {"dataset": dataset, "snapshot": f"b{i}", "created": True}, "id": i}
        for i in range(5)]
    assert len(zfs("zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", dataset).stdout.split("\n")) == 6
