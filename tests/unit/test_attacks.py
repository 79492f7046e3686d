"""Hostile input through the whole HTTP stack (FakeZfs behind it): every bad name, number or property is a -32602
that names the parameter, and nothing reaches ZFS. (Hosts, Origins and nesting: test_http.py; names:
test_names.py.)"""

from __future__ import annotations

import os
import socket
import stat
import threading

import pytest

from zfsapi.adapters.outbound.zfs.pipelines import _create_confined, _open_confined
from zfsapi.domain.errors import InvalidArgument


def _named(error: dict, param: str) -> None:
    assert error["code"] == -32602, error
    assert error["data"]["param"] == param, error


@pytest.mark.parametrize("params, param", [
    ({"dataset": "tank/v", "size_gb": 1e308}, "size_gb"),
    ({"dataset": "tank/v", "size_gb": 8589934592.5}, "size_gb"),  # just past 2**63 - 1 bytes
    ({"dataset": "tank/v", "size_bytes": 2**63}, "size_bytes"),
    ({"dataset": "tank/v", "size_bytes": 2**64 + 1}, "size_bytes"),
    ({"dataset": "tank/v", "size_gb": -1}, "size_gb"),
    ({"dataset": "tank/v", "size_gb": 0}, "size_gb"),
])
async def test_numbers_out_of_range_name_the_parameter(rpc, fake_zfs, params, param):
    _named(await rpc("volume_create", error=True, **params), param)
    assert "tank/v" not in fake_zfs.datasets


async def test_stream_ttl_out_of_range_names_the_parameter(rpc):
    for ttl in (1e300, -5, 0):
        _named(await rpc("stream_init", error=True, operation="receive", target_dataset="tank/x", ttl=ttl), "ttl")


@pytest.mark.parametrize("prop", ["quota=1G", "userquota@bob=1", "com.example:a=b", "compression,quota",
                                  "userquota@bob quota", "written@tank/other@s", "written#tank/other#m"])
async def test_property_names_with_syntax_never_reach_zfs(rpc, fake_zfs, prop):
    before = {k: dict(v.props) for k, v in fake_zfs.datasets.items()}
    _named(await rpc("dataset_set_property", error=True, dataset="tank", property=prop, value="1"), "property")
    _named(await rpc("dataset_get_properties", error=True, dataset="tank", property=prop), "property")
    error = await rpc("dataset_create", error=True, dataset="tank/new", properties={prop: "1"})
    _named(error, f"properties.{prop}")  # the map and its offending key
    error = await rpc("clone_create", error=True, source="tank@s", target="tank/c", properties={prop: "1"})
    _named(error, f"properties.{prop}")
    assert {k: dict(v.props) for k, v in fake_zfs.datasets.items()} == before
    assert "tank/new" not in fake_zfs.datasets


# ---- transfer files: only regular files, opened without blocking ---------------------------------------------

def _open_within_deadline(fn, *args, deadline: float = 30.0):
    """Run a blocking open in a thread; fail (instead of hanging the suite) if it has not returned by the deadline."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["fd"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(deadline)
    assert not t.is_alive(), f"open() blocked for {deadline:.0f} s"
    if "fd" in out:
        os.close(out["fd"])  # type: ignore[arg-type]
    return out.get("error")


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "xfer"
    d.mkdir()
    return d


def test_a_fifo_is_refused_without_blocking(root):
    os.mkfifo(root / "pipe")
    error = _open_within_deadline(_open_confined, str(root / "pipe"), str(root))
    assert isinstance(error, InvalidArgument) and error.param == "input_file", error
    error = _open_within_deadline(_create_confined, str(root / "pipe"), str(root))
    assert isinstance(error, InvalidArgument) and error.param == "output_file", error


def test_sockets_devices_and_directories_are_refused(root):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "sock"))
        for name in ("sock", "."):
            error = _open_within_deadline(_open_confined, str(root / name), str(root))
            assert isinstance(error, InvalidArgument) and error.param == "input_file", (name, error)
    os.mknod(root / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    error = _open_within_deadline(_open_confined, str(root / "null"), str(root))
    assert isinstance(error, InvalidArgument) and error.param == "input_file", error


def test_a_parent_that_is_a_regular_file_names_the_parameter(root):
    (root / "plain").write_bytes(b"x")
    for fn, param in ((_open_confined, "input_file"), (_create_confined, "output_file")):
        error = _open_within_deadline(fn, str(root / "plain" / "x.zfs"), str(root))
        assert isinstance(error, InvalidArgument) and error.param == param, error


def test_a_final_symlink_is_refused_and_never_followed(root, tmp_path):
    (tmp_path / "victim").write_bytes(b"secret")
    os.symlink(tmp_path / "victim", root / "link")
    os.symlink(tmp_path / "absent", root / "dangling")
    for name in ("link", "dangling"):
        error = _open_within_deadline(_create_confined, str(root / name), str(root))
        assert isinstance(error, InvalidArgument) and error.param == "output_file", error
        error = _open_within_deadline(_open_confined, str(root / name), str(root))
        assert isinstance(error, InvalidArgument) and error.param == "input_file", error
    assert (tmp_path / "victim").read_bytes() == b"secret" and not (tmp_path / "absent").exists()


def test_a_regular_file_opens_blocking(root):
    (root / "ok.zfs").write_bytes(b"data")
    fd = _open_confined(str(root / "ok.zfs"), str(root))
    try:
        assert os.get_blocking(fd) and os.read(fd, 10) == b"data"
    finally:
        os.close(fd)
    fd = _create_confined(str(root / "new.zfs"), str(root))
    try:
        assert os.get_blocking(fd) and stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    finally:
        os.close(fd)


# ---- destroy -R reaches clones anywhere in the pool ----------------------------------------------------------

async def test_recursive_dependents_never_reach_outside_the_scope(tmp_path):
    from tests.conftest import http_client
    from tests.fakes import FakeZfs
    from tests.unit.test_auth import call, make_container
    from zfsapi.adapters.inbound.http.app import create_app

    fake = FakeZfs()
    app = create_app(make_container(tmp_path, fake, auth={"local_users": {
        "root": {"role": "admin"}, "1234": {"role": "admin", "datasets": ["tank/a"]}}}))
    async with http_client(app) as root, http_client(app, uid=1234) as scoped:
        for step in (("dataset_create", {"dataset": "tank/a"}), ("dataset_create", {"dataset": "tank/b"}),
                     ("snapshot_create", {"dataset": "tank/a", "name": "s"}),
                     ("clone_create", {"source": "tank/a@s", "target": "tank/a/inside"}),
                     ("clone_create", {"source": "tank/a@s", "target": "tank/b/outside"})):
            assert "result" in (await call(root, *step)).json()
        body = (await call(scoped, "dataset_destroy", {"dataset": "tank/a", "recursive": True,
                                                       "recursive_dependents": True})).json()
        assert body["error"]["code"] == -32004 and body["error"]["data"]["dataset"] == "tank/b/outside", body
        assert {"tank/a", "tank/a/inside", "tank/b/outside"} <= set(fake.datasets) and "tank/a@s" in fake.snapshots
        # once the foreign clone is gone, the same call is the scoped admin's to make
        assert "result" in (await call(root, "dataset_destroy", {"dataset": "tank/b/outside"})).json()
        body = (await call(scoped, "dataset_destroy", {"dataset": "tank/a", "recursive": True,
                                                       "recursive_dependents": True})).json()
        assert body["result"] == {"dataset": "tank/a", "destroyed": True}, body
    assert not any(d.startswith("tank/a") for d in fake.datasets)


# ---- what a received stream may decide ---------------------------------------------------------------------

def test_only_an_unrestricted_admin_takes_the_streams_mount_properties():
    from zfsapi.adapters.inbound.jsonrpc.transfer_methods import StreamInitParams, _stream_transfer
    from zfsapi.adapters.outbound.zfs import commands
    from zfsapi.domain.authz import Principal, Role
    from zfsapi.domain.transfer import ReceiveSpec

    p = StreamInitParams(operation="receive", target_dataset="tank/x")
    cases = {Principal("root", Role.ADMIN): True, Principal("scoped-admin", Role.ADMIN, ("tank",)): False,
             Principal("ops", Role.OPERATOR): False}
    for who, trusted in cases.items():
        spec = _stream_transfer(p, who)
        assert isinstance(spec, ReceiveSpec) and spec.trusted is trusted, who
        assert ("-x" in commands.receive(spec)) is not trusted
