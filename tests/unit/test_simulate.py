"""`zfsapi serve --simulate` in process: the real container with the simulated host at its ZFS ports (as serve
wires it) answers the API over HTTP (datasets, snapshots, a migration job between tank and backup, GET and POST
/stream, send files compressed by the real gzip/zstd), says so in /health and in its logs; without the flag
nothing changes."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from tests.conftest import Rpc, http_client
from zfsapi.adapters.inbound.http.services import HttpOptions
from zfsapi.adapters.outbound.simulated.host import SimulatedHost
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.cli import main
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.logs import JsonFormatter
from zfsapi.bootstrap.simulate import missing_binaries, simulate, simulated_overrides, warning


@pytest.fixture
async def sim(tmp_path):
    """(rpc, client, host, transfer directory) of a simulated server with its job runner running."""
    files = tmp_path / "files"
    files.mkdir()
    c = build_container(load_settings(environ={}, overrides={"state_dir": str(tmp_path / "state"),
                                                              "transfer": {"directories": [str(files)]}}))
    host = simulate(c)
    host.streams.pace = 0.001  # the served pace shows progress for seconds; here the walk is what counts
    runner = c.job_runner()
    await runner.start()
    try:
        async with http_client(http_app(c)) as client:
            yield Rpc(client), client, host, files
    finally:
        await runner.stop()


async def test_the_simulated_server_answers_with_its_seeded_pools_and_says_so_in_health(sim):
    rpc, client, _, _ = sim
    listed = (await rpc("dataset_list"))["datasets"]
    assert {"tank", "tank/home", "tank/home/alice", "tank/data", "tank/vol", "backup"} <= set(listed)
    assert (await rpc("snapshot_list", dataset="tank/data"))["snapshots"] == ["monday", "tuesday"]
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["simulated"] is True
    assert [p["name"] for p in health.json()["pools"]] == ["backup", "tank"]


async def test_a_snapshot_made_on_the_simulated_server_is_listed(sim):
    rpc, _, host, _ = sim
    await rpc("snapshot_create", dataset="tank/home/alice", name="before")
    assert "before" in (await rpc("snapshot_list", dataset="tank/home/alice"))["snapshots"]
    assert "tank/home/alice@before" in host.snapshots


async def test_a_migration_from_tank_to_backup_succeeds_with_progress(sim):
    rpc, _, host, _ = sim
    created = await rpc("migration_create", source="tank/home@initial", destination="backup/home", recursive=True)
    job = await rpc("job_wait", job_id=created["job_id"], timeout=60)
    assert job["state"] == "succeeded", job
    progress = job["progress"]
    assert progress["bytes_done"] == progress["bytes_total"] > 8 << 20, progress  # one stream (-R), padded to 8 MiB
    for name in ("backup/home@initial", "backup/home/alice@initial", "backup/home/bob@initial"):
        assert host.snapshots[name].guid == host.snapshots[name.replace("backup", "tank", 1)].guid


async def test_a_send_streams_over_http_and_a_receive_takes_it_back(sim):
    rpc, client, host, _ = sim
    out = await rpc("stream_init", operation="send", dataset="tank/data", snapshot="tuesday")
    sent = await client.get(out["url"])
    assert sent.status_code == 200
    header = json.loads(sent.content.split(b"\n", 1)[0])
    assert header["to"] == "tank/data@tuesday" and len(sent.content) > 8 << 20
    into = await rpc("stream_init", operation="receive", target_dataset="backup/data")
    got = await client.post(into["url"], content=sent.content, headers={"content-type": "application/octet-stream"})
    assert got.status_code == 200 and got.json()["snapshot"] == "backup/data@tuesday", got.text
    assert host.snapshots["backup/data@tuesday"].guid == host.snapshots["tank/data@tuesday"].guid


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
async def test_send_files_are_real_files_written_and_read_back(sim, compression):
    if compression != "none" and shutil.which(compression) is None:
        pytest.skip(f"{compression} not installed")
    rpc, _, host, files = sim
    sent = await rpc("send_to_file", dataset="tank/data", snapshot="monday", output_file="monday.zfs",
                     compression=compression)
    assert os.path.getsize(sent["output_file"]) == sent["size_bytes"] and sent["compression"] == compression
    got = await rpc("receive_from_file", dataset="backup/copy", input_file=os.path.basename(sent["output_file"]))
    assert got["snapshot"] == "backup/copy@monday"
    assert host.snapshots["backup/copy@monday"].guid == host.snapshots["tank/data@monday"].guid
    assert sorted(os.listdir(files)) == [os.path.basename(sent["output_file"])]  # no partial file left


def test_without_the_flag_nothing_is_simulated(tmp_path):
    c = build_container(load_settings(environ={}, overrides={"state_dir": str(tmp_path)}))
    assert isinstance(c.zfs(), ZfsCliGateway) and isinstance(c.pipelines(), ZfsPipelines)
    assert c.http_options().simulated is False and HttpOptions().simulated is False
    simulated = build_container(load_settings(environ={}, overrides={"state_dir": str(tmp_path)}))
    simulate(simulated)
    assert isinstance(simulated.zfs(), SimulatedHost) and simulated.pipelines() is simulated.zfs().streams
    assert simulated.http_options().simulated is True


def test_simulated_settings_keep_nothing_and_serve_in_one_process():
    out = simulated_overrides({"server": {"http": {"port": 0, "workers": 4}}})
    assert out["server"]["http"] == {"port": 0, "workers": 1} and out["redis"] == {"host": None}
    assert os.path.isdir(out["state_dir"]) and os.listdir(out["state_dir"]) == []
    line = warning(load_settings(environ={}, overrides=out))
    assert line.startswith("SIMULATED ZFS") and "tank and backup" in line and out["state_dir"] in line
    os.rmdir(out["state_dir"])


def test_missing_zfs_binaries_are_named():
    settings = load_settings(environ={}, overrides={"zfs": {"zfs": "/nonexistent/zfs", "zpool": "sh"}})
    assert missing_binaries(settings) == ["/nonexistent/zfs"]


def test_every_log_line_of_a_simulated_server_says_so():
    record = logging.makeLogRecord({"msg": "listening", "levelname": "INFO", "name": "zfsapi"})
    assert json.loads(JsonFormatter({"simulated": True}).format(record))["simulated"] is True
    assert "simulated" not in json.loads(JsonFormatter().format(record))


def test_serve_version_says_when_the_zfs_is_simulated(capsys):
    for argv, said in ((["serve", "--simulate", "--version"], " (simulated ZFS)"), (["serve", "--version"], ""),
                       (["--version"], "")):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0 and capsys.readouterr().out.strip().endswith(f"0{said}" if not said else said)


def test_the_user_who_starts_a_simulated_server_may_call_it_as_an_admin():
    """(Root, who runs the tests, is a local admin by default: it is kept as configured.)"""
    from zfsapi.bootstrap.simulate import with_starting_user

    default = load_settings(environ={})
    assert with_starting_user(default) is default
    others = load_settings(environ={}, overrides={"auth": {"local_users": {"alice": {"role": "readonly"}}}})
    added = with_starting_user(others).auth.local_users
    assert set(added) == {"alice", str(os.getuid())} and added[str(os.getuid())].role == "admin"
    assert added["alice"].role == "readonly"


async def test_a_served_simulation_keeps_only_its_latest_streams_whole():
    """Memory stays bounded however many sends a simulated server makes; an old stream keeps its header, which is
    all a receive reads."""
    from zfsapi.domain.names import DatasetName, SnapshotName
    from zfsapi.domain.transfer import ReceiveSpec, SendSpec

    host = SimulatedHost(padding=1000, history=2)
    host.make_dataset(DatasetName.parse("tank/a"), {}, False)
    host.take_snapshot(SnapshotName.parse("tank/a@s1"), False, {})
    for _ in range(4):
        await host.streams.open_send(SendSpec(SnapshotName.parse("tank/a@s1")))
    assert len(host.streams.pipes) == 2 and [len(s) > 1000 for s in host.streams.streams] == [False, False, True, True]
    receive = await host.streams.open_receive(ReceiveSpec(DatasetName.parse("backup/a")))
    await receive.write(host.streams.streams[0])
    assert await receive.finish() == "backup/a@s1" and host.snapshots["backup/a@s1"].guid == host.snapshots[
        "tank/a@s1"].guid


def test_the_policy_engines_zfs_is_simulated_too_where_the_container_has_it(tmp_path):
    """Policies of a simulated server snapshot and prune the simulated pools, never real ones."""
    from dependency_injector import providers

    from zfsapi.adapters.outbound.simulated.policy_ops import SimulatedPolicyOps

    c = build_container(load_settings(environ={}, overrides={"state_dir": str(tmp_path)}))
    c.policy_zfs = providers.Singleton(object)  # as the policy wiring adds it (ZfsPolicyOps over the executor)
    host = simulate(c)
    assert isinstance(c.policy_zfs(), SimulatedPolicyOps) and c.policy_zfs().zfs is host
