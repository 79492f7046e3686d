"""policy_* over HTTP in-process, on the fakes: the contract's shapes, errors naming their param, admins only,
config policies read-only and swapped on reload, a run as a job visible in job_list."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from dependency_injector import providers

from tests.conftest import Rpc, http_client
from tests.fakes import FakePolicyOps, FakeZfs, FixedClock
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.service import Reloader
from zfsapi.bootstrap.settings import SettingsError
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import DatasetName

NOW = datetime(2026, 12, 6, 10, 30, tzinfo=timezone.utc)
READONLY, OPERATOR, SCOPED = 61001, 61002, 61003
CONFIG_POLICY = {"name": "cfg", "datasets": ["tank/c"], "snapshot": {"schedule": "0 * * * *", "prefix": "auto"},
                 "retention": {"hourly": 24},
                 "replicate": {"nas": {"remote": "nas2", "destination": "backup/c", "schedule": "after_snapshot"},
                               "nightly": {"remote": "local", "destination": "usb/c", "schedule": "30 2 * * *"}}}


def settings(tmp_path, policies: list[Any] | None = None):
    return load_settings(environ={}, overrides={
        "state_dir": str(tmp_path),
        "policies": [CONFIG_POLICY] if policies is None else policies,
        "replication": {"remotes": {"nas2": {"ssh": "backup@nas2"}}},
        "auth": {"local_users": {"root": {"role": "admin"}, str(READONLY): {"role": "readonly"},
                                 str(OPERATOR): {"role": "operator"},
                                 str(SCOPED): {"role": "admin", "datasets": ["tank/a"]}}}})


@pytest.fixture
async def world(tmp_path):
    zfs = FakeZfs(pools=["tank"])
    for name in ("tank/a", "tank/c"):
        zfs._create([], DatasetName.parse(name), DatasetType.FILESYSTEM, {}, True)
    c = build_container(settings(tmp_path))
    clock = FixedClock(NOW)
    c.zfs.override(providers.Object(zfs))
    c.policy_zfs.override(providers.Object(FakePolicyOps(zfs, now=lambda: int(clock.when.timestamp()))))
    c.clock.override(providers.Object(clock))
    c.job_store.override(providers.Object(MemoryJobStore()))
    runner = c.job_runner()
    await runner.start()
    try:
        async with http_client(http_app(c)) as root:
            yield c, Rpc(root), zfs
    finally:
        await runner.stop()


def as_uid(c, uid: int) -> Rpc:
    return Rpc(http_client(http_app(c), uid=uid))


def mine(name: str = "mine", **over: Any) -> dict[str, Any]:
    return {"name": name, "datasets": ["tank/a"], "retention": {"keep_last": 2}, **over}


async def test_list_and_get_in_the_contracts_shape_with_next_runs(world):
    _, rpc, _ = world
    listed = (await rpc("policy_list"))["policies"]
    assert [p["name"] for p in listed] == ["cfg"]
    cfg = listed[0]
    assert list(cfg) == ["name", "source", "enabled", "datasets", "snapshot", "retention", "replicate", "next_runs"]
    assert (cfg["source"], cfg["enabled"], cfg["datasets"]) == ("config", True, ["tank/c"])
    assert cfg["snapshot"] == {"schedule": "0 * * * *", "timezone": "UTC", "prefix": "auto",
                               "recursive_atomic": True, "min_written": 0}
    assert cfg["retention"] == {"keep_last": 0, "hourly": 24, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}
    assert cfg["replicate"]["nas"] == {"remote": "nas2", "destination": "backup/c", "schedule": "after_snapshot",
                                       "retention": "same_as_source", "limit": None, "compression": None}
    assert cfg["next_runs"] == {"snapshot": "2026-12-06T11:00:00Z",
                                "replicate": {"nas": "2026-12-06T11:00:00Z", "nightly": "2026-12-07T02:30:00Z"}}
    got = await rpc("policy_get", name="cfg")
    assert {k: v for k, v in got.items() if k != "status"} == cfg
    assert got["status"] == {"last": {}, "targets": {
        t: {"last_success": None, "lag_seconds": None, "base_snapshot": None, "failures": 0, "last_error": None}
        for t in ("nas", "nightly")}}


async def test_create_update_delete_an_api_policy(world):
    _, rpc, _ = world
    created = await rpc("policy_create", policy=mine())
    assert (created["name"], created["source"], created["next_runs"]) == ("mine", "api",
                                                                         {"snapshot": None, "replicate": {}})
    assert [p["name"] for p in (await rpc("policy_list"))["policies"]] == ["cfg", "mine"]
    updated = await rpc("policy_update", name="mine", policy={"datasets": ["tank/a/x"], "enabled": False})
    assert (updated["datasets"], updated["enabled"], updated["retention"]) == (["tank/a/x"], False, None)
    assert await rpc("policy_delete", name="mine") == {"deleted": True}
    missing = await rpc("policy_get", error=True, name="mine")
    assert (missing["code"], missing["data"]) == (-32010, {"kind": "policy", "name": "mine"})


@pytest.mark.parametrize("method, params, code, param", [
    ("policy_update", {"name": "cfg", "policy": CONFIG_POLICY}, -32602, "name"),
    ("policy_delete", {"name": "cfg"}, -32602, "name"),
    ("policy_create", {"policy": CONFIG_POLICY}, -32602, "policy.name"),
    ("policy_create", {"policy": mine(retention={"daily": -1})}, -32602, "policy.retention.daily"),
    ("policy_create", {"policy": mine(replicate={"t": {"remote": "nas9", "destination": "b/x"}})}, -32602,
     "policy.replicate.t.remote"),
    ("policy_create", {"policy": "home"}, -32602, "policy"),
    ("policy_get", {"name": "Bad!"}, -32602, "name"),
    ("policy_preview", {"name": "cfg", "at": "yesterday"}, -32602, "at"),
    ("policy_preview", {"name": "cfg", "at": "2026-12-06T10:00:00"}, -32602, "at"),
    ("policy_run", {"name": "cfg", "step": "backup"}, -32602, "step"),
    ("policy_run", {"name": "cfg", "step": "snapshot", "target": "nas"}, -32602, "target"),
    ("policy_run", {"name": "cfg", "step": "replicate", "target": "nope"}, -32602, "target"),
])
async def test_errors_name_their_param(world, method, params, code, param):
    _, rpc, _ = world
    error = await rpc(method, error=True, **params)
    assert (error["code"], error["data"].get("param")) == (code, param), error


async def test_unknown_policies_and_duplicates(world):
    _, rpc, _ = world
    for method, params in (("policy_get", {}), ("policy_delete", {}), ("policy_preview", {}),
                           ("policy_run", {"step": "prune"}), ("policy_update", {"policy": mine("nope")})):
        error = await rpc(method, error=True, name="nope", **params)
        assert (error["code"], error["data"]) == (-32010, {"kind": "policy", "name": "nope"}), (method, error)
    await rpc("policy_create", policy=mine())
    assert (await rpc("policy_create", error=True, policy=mine()))["code"] == -32011


@pytest.mark.parametrize("uid", [READONLY, OPERATOR])
async def test_only_admins_may_use_policies(world, uid):
    c, _, _ = world
    async with as_uid(c, uid).client as client:
        rpc = Rpc(client)
        for method, params in (("policy_list", {}), ("policy_get", {"name": "cfg"}),
                               ("policy_create", {"policy": mine()}), ("policy_delete", {"name": "cfg"}),
                               ("policy_run", {"name": "cfg", "step": "snapshot"}),
                               ("policy_preview", {"name": "cfg"})):
            assert (await rpc(method, error=True, **params))["code"] == -32004, method


async def test_a_scoped_admin_sees_only_its_policies_and_only_local_targets(world):
    c, root, _ = world
    async with as_uid(c, SCOPED).client as client:
        rpc = Rpc(client)
        assert (await rpc("policy_list"))["policies"] == []
        assert (await rpc("policy_get", error=True, name="cfg"))["code"] == -32010
        created = await rpc("policy_create", policy=mine(
            replicate={"copy": {"remote": "local", "destination": "tank/a/copy"}}))
        assert created["replicate"]["copy"]["remote"] == "local"
        far = await rpc("policy_create", error=True, policy=mine("far", replicate={
            "t": {"remote": "nas2", "destination": "tank/a/copy"}}))
        assert far["code"] == -32004 and "local" in far["data"]["reason"]
        assert [p["name"] for p in (await rpc("policy_list"))["policies"]] == ["mine"]
    assert [p["name"] for p in (await root("policy_list"))["policies"]] == ["cfg", "mine"]


async def test_a_run_is_a_job_in_job_list_and_its_end_shows_in_policy_get(world):
    _, rpc, zfs = world
    started = await rpc("policy_run", name="cfg", step="snapshot")
    assert list(started) == ["job_id"]
    job = await rpc("job_wait", job_id=started["job_id"], timeout=30)
    assert (job["state"], job["kind"], job["owner"]) == ("succeeded", "policy_snapshot", "root"), job
    assert job["params"] == {"policy": "cfg", "target": None, "slot": None, "follow": False}
    assert job["result"]["taken"] == ["tank/c@auto-20261206T103000Z"] and job["progress"]["phase"] == "snapshot 1/1"
    listed = await rpc("job_list", kind="policy_snapshot")
    assert [j["job_id"] for j in listed["jobs"]] == [started["job_id"]]
    status = (await rpc("policy_get", name="cfg"))["status"]
    assert status["last"]["snapshot"]["job_id"] == started["job_id"]
    assert status["last"]["snapshot"]["state"] == "succeeded" and status["last"]["snapshot"]["finished_at"]
    assert "tank/c@auto-20261206T103000Z" in zfs.snapshots


async def test_preview_shows_each_snapshot_with_its_decision_and_destroys_nothing(world):
    _, rpc, zfs = world
    job = await rpc("policy_run", name="cfg", step="snapshot")
    assert (await rpc("job_wait", job_id=job["job_id"], timeout=30))["state"] == "succeeded"
    before = set(zfs.snapshots)
    preview = await rpc("policy_preview", name="cfg", at="2026-12-06T11:30:00+01:00")
    assert preview == {"datasets": [{"dataset": "tank/c", "snapshots": [
        {"snapshot": "auto-20261206T103000Z", "created": "2026-12-06T10:30:00Z", "action": "keep",
         "reasons": preview["datasets"][0]["snapshots"][0]["reasons"]}]}]}
    assert any(r.startswith("hourly") for r in preview["datasets"][0]["snapshots"][0]["reasons"]), preview
    assert set(zfs.snapshots) == before


async def test_config_policies_change_on_reload_and_a_bad_one_is_refused(world, tmp_path):
    c, rpc, _ = world
    other = {"name": "other", "datasets": ["tank/a"]}
    assert Reloader(c, lambda: settings(tmp_path, [other]))()  # what SIGHUP does
    assert [(p["name"], p["source"]) for p in (await rpc("policy_list"))["policies"]] == [("other", "config")]
    bad = {"name": "bad", "datasets": ["tank/a"], "retention": {"daily": "x"}}
    assert not Reloader(c, lambda: settings(tmp_path, [bad]))()
    assert [p["name"] for p in (await rpc("policy_list"))["policies"]] == ["other"]


@pytest.mark.parametrize("policies, message", [
    ([{"name": "p", "datasets": ["tank/a"], "retention": {"daily": -1}}],
     "config key policies[0].retention.daily: must be an integer"),
    ([{"name": "p", "datasets": ["tank/a"], "replicate": {"t": {"remote": "nas9", "destination": "b/x"}}}],
     "config key policies[0].replicate.t.remote: 'nas9' is not a replication.remotes name"),
    ("home", "config key policies"),
])
def test_a_bad_config_policy_is_a_settings_error_naming_its_key(tmp_path, policies, message):
    with pytest.raises(SettingsError) as caught:
        settings(tmp_path, policies)
    assert str(caught.value).startswith(message), caught.value


async def test_the_policy_param_is_described_as_an_object(world):
    _, rpc, _ = world
    doc = await rpc("rpc.discover")
    create = next(m for m in doc["methods"] if m["name"] == "policy_create")
    param = create["params"][0]
    assert param["schema"]["type"] == "object" and "additionalProperties" not in param["schema"], param
    assert "retention: {keep_last, hourly" in param["description"]


async def test_a_targets_status_shows_its_last_success_base_and_lag(world):
    c, rpc, _ = world
    store = c.policy_store()
    success = NOW.timestamp() - 600
    await store.note("cfg", "target:nas", {"last_success": success, "base_snapshot": "auto-20261206T100000Z",
                                           "failures": 0, "last_failure": None, "last_error": None})
    await store.note("cfg", "target:nightly", {"last_success": success, "base_snapshot": "made-by-hand",
                                               "failures": 2, "last_failure": success + 60, "last_error": "cut"})
    await store.note("cfg", "last:replicate", {"job_id": "j1", "state": "failed", "finished_at": success + 60})
    status = (await rpc("policy_get", name="cfg"))["status"]
    assert status["last"] == {"replicate": {"job_id": "j1", "state": "failed", "finished_at": "2026-12-06T10:21:00Z"}}
    assert status["targets"]["nas"] == {"last_success": "2026-12-06T10:20:00Z", "lag_seconds": 1800.0,
                                        "base_snapshot": "auto-20261206T100000Z", "failures": 0, "last_error": None}
    assert status["targets"]["nightly"] == {"last_success": "2026-12-06T10:20:00Z", "lag_seconds": 600.0,
                                            "base_snapshot": "made-by-hand", "failures": 2, "last_error": "cut"}
