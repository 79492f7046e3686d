"""migration_* over the wire, on the fakes: a migration is a job running Replicate; the old server's words for
its states; bad params refused before any job exists."""

from __future__ import annotations

import pytest
from dependency_injector import providers

from tests.conftest import Rpc, http_client
from tests.unit.test_replication import World
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import LOCALHOST
from zfsapi.domain.names import DatasetName


@pytest.fixture
async def world_rpc(tmp_path):
    world = World()
    await world.zfs.create_dataset(DatasetName.parse("tank/a"), properties={},
                                   parents=False)
    await world.snapshot("tank/a@s1")
    c = build_container(load_settings(environ={}, overrides={"state_dir": str(tmp_path)}))
    c.zfs.override(providers.Object(world.zfs))
    c.replicate.override(providers.Object(world.use_case))
    runner = c.job_runner()
    await runner.start()
    try:
        async with http_client(http_app(c)) as client:
            world.container = c
            yield world, Rpc(client)
    finally:
        await runner.stop()


async def test_a_migration_is_a_job_that_replicates(world_rpc):
    world, rpc = world_rpc
    created = await rpc("migration_create", source="tank/a@s1", destination="backup/x")
    assert list(created) == ["task_id", "job_id", "status", "params"]
    assert created["status"] == "created" and created["task_id"] == created["job_id"]
    assert created["params"] == {"source": "tank/a@s1", "destination": "backup/x", "remote": None, "limit": None,
                                 "compression": None, "recursive": False, "sync": True, "background": False}
    job = await rpc("job_wait", job_id=created["job_id"], timeout=30)
    assert job["state"] == "succeeded" and job["kind"] == "migration_create", job
    assert job["result"]["mode"] == "full" and job["result"]["destination"] == "backup/x"
    assert world.guid("backup/x@s1") == world.guid("tank/a@s1")
    task = await rpc("migration_get", task_id=created["task_id"])
    assert task["status"] == "completed" and task["completed_at"] is not None and task["error"] is None
    progress = await rpc("migration_progress", task_id=created["task_id"])
    assert list(progress) == ["task_id", "status", "progress", "error"] and progress["status"] == "completed"
    listed = await rpc("migration_list", status="completed")
    assert listed["total"] == 1 and listed["tasks"][0]["task_id"] == created["task_id"]
    assert (await rpc("migration_list", status="running"))["total"] == 0
    assert await rpc("migration_cancel", task_id=created["task_id"]) == {"task_id": created["task_id"],
                                                                        "cancelled": True}
    assert (await rpc("migration_get", task_id=created["task_id"]))["status"] == "completed"  # finished: kept


async def test_a_diverged_destination_fails_the_task_with_the_snapshots_named(world_rpc):
    world, rpc = world_rpc
    await world.zfs.create_dataset(DatasetName.parse("backup/x"), properties={},
                                   parents=False)
    await world.snapshot("backup/x@other")
    created = await rpc("migration_create", source="tank/a@s1", destination="backup/x")
    job = await rpc("job_wait", job_id=created["job_id"], timeout=30)
    task = await rpc("migration_progress", task_id=created["task_id"])
    assert job["state"] == "failed" and task["status"] == "failed"
    assert task["error"]["code"] == -32015 and "backup/x@other" in task["error"]["data"]["reason"], task


@pytest.mark.parametrize("params, param", [
    ({"limit": -1}, "limit"),
    ({"remote": "-oProxyCommand=x"}, "remote"),
    ({"remote": "http://user:pw@h:1"}, "remote"),
    ({"source": "tank/a@bad name!"}, "source"),
    ({"destination": "tank/a/inside"}, "destination"),
    ({"compression": "brotli"}, "compression"),
    ({"remote": "nas3"}, "remote"),  # not listed (an unrestricted admin: unlisted remotes are off)
    ({"remote": "fe80::1%$(id)"}, "remote"),
    ({"remote": "nas\n"}, "remote"),
])
async def test_bad_params_are_refused_before_any_job_exists(world_rpc, params, param):
    _, rpc = world_rpc
    error = await rpc("migration_create", error=True, **{"source": "tank/a@s1", "destination": "backup/x", **params})
    assert (error["code"], error["data"]["param"]) == (-32602, param), error
    assert (await rpc("job_list"))["total"] == 0


@pytest.mark.parametrize("task_id", ["abc\n", "abc\r", "a b", "", "x" * 65])
async def test_a_task_id_is_matched_whole(world_rpc, task_id):
    _, rpc = world_rpc
    for method in ("migration_get", "migration_progress", "migration_cancel"):
        error = await rpc(method, error=True, task_id=task_id)
        assert (error["code"], error["data"]["param"]) == (-32602, "task_id"), error


async def test_other_jobs_are_not_tasks(world_rpc):
    world, rpc = world_rpc
    other = await world.container.jobs().submit("pool_scrub_start", LOCALHOST, {"pool": "tank"}, ())
    await world.container.jobs().cancel(LOCALHOST, other.job_id)
    for method in ("migration_get", "migration_progress", "migration_cancel"):
        missing = await rpc(method, error=True, task_id=other.job_id)
        assert (missing["code"], missing["data"]) == (-32010, {"kind": "task", "name": other.job_id})
    assert (await rpc("migration_list"))["total"] == 0
