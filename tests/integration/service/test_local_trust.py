"""Passwordless access belongs to named local users: a real `zfsapi serve` on loopback TCP and a Unix socket,
called by processes running as different uids. The uid comes from the kernel (sock_diag / SO_PEERCRED), never
from the request."""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
import yaml

from tests.conftest import free_port
from tests.peers import call_as

from .conftest import need_root, server

NOBODY = 65534  # not in auth.local_users
MAPPED = 65533  # an operator scoped to tank/a


@pytest.fixture(scope="module")
def listening(tmp_path_factory):
    need_root("calling as other uids")
    tmp = tmp_path_factory.mktemp("local-trust")
    public = tempfile.mkdtemp(prefix="zfsapi-sock-", dir="/tmp")  # pytest's own tmp is 0700: other uids
    os.chmod(public, 0o755)                                         # must reach the socket
    sock = os.path.join(public, "zfsapi.sock")
    port = free_port()
    config = {"server": {"unix": {"path": sock, "mode": 0o666}},
              "auth": {"local_users": {"root": {"role": "admin"},
                                       str(MAPPED): {"role": "operator", "datasets": ["tank/a"]}}}}
    try:
        with server(tmp, config, port=port):
            yield ("127.0.0.1", port), sock
    finally:
        shutil.rmtree(public, ignore_errors=True)


def both(listening):
    tcp, unix = listening
    return [(tcp, f"127.0.0.1:{tcp[1]}"), (unix, "localhost")]


def test_an_unmapped_uid_gets_32001_over_tcp_and_the_socket(listening):
    for address, host in both(listening):
        status, body = call_as(NOBODY, address, "stream_list", host=host)
        assert status == 200 and body["error"]["code"] == -32001, (address, body)
        assert f"uid {NOBODY}" in body["error"]["data"]["reason"]
        status, body = call_as(NOBODY, address, "dataset_destroy", {"dataset": "tank/a"}, host=host)
        assert body["error"]["code"] == -32001, body


def test_root_is_admin_over_tcp_and_the_socket(listening):
    for address, host in both(listening):
        status, body = call_as(0, address, "stream_list", host=host)
        assert status == 200 and body["result"] == {"sessions": []}, body
        # past authorization into ZFS (absent here): the admin may do it
        status, body = call_as(0, address, "dataset_create", {"dataset": "tank/b/x"}, host=host)
        assert body["error"]["code"] == -32014, body


def test_a_mapped_uid_gets_its_role_and_scope(listening):
    for address, host in both(listening):
        _, body = call_as(MAPPED, address, "dataset_create", {"dataset": "tank/b/x"}, host=host)
        assert body["error"]["code"] == -32004 and body["error"]["data"]["dataset"] == "tank/b/x", body
        _, body = call_as(MAPPED, address, "pool_scrub_start", {"pool": "tank"}, host=host)
        assert body["error"]["code"] == -32004, body
        _, body = call_as(MAPPED, address, "dataset_create", {"dataset": "tank/a/x"}, host=host)
        assert body["error"]["code"] == -32014, body  # allowed: it reached ZFS


def test_the_host_and_origin_guard_still_applies_on_tcp(listening):
    (tcp, _), _ = both(listening)
    status, _ = call_as(0, tcp, "stream_list", host="evil.example")
    assert status == 421
    status, _ = call_as(0, tcp, "stream_list", host=f"127.0.0.1:{tcp[1]}@evil.example")
    assert status == 421


def test_the_socket_has_the_configured_mode(listening):
    _, sock = listening
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666 and st.st_gid == os.getgid()


def test_a_stale_socket_is_replaced_and_any_other_file_refused(tmp_path):
    need_root("binding a Unix socket")
    path = tmp_path / "zfsapi.sock"
    group = grp.getgrgid(os.getgid()).gr_name
    path.write_text("not a socket")
    config = {"state_dir": str(tmp_path / "state"), "server": {"unix": {"path": str(path), "group": group}},
              "zfs": {"zfs": "/nonexistent/zfs", "zpool": "/nonexistent/zpool"},
              "server_port": None}
    del config["server_port"]
    config["server"]["http"] = {"port": free_port()}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    done = subprocess.run([sys.executable, "-m", "zfsapi", "serve", "--config", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not a socket" in done.stderr, done.stderr
    assert path.read_text() == "not a socket"
    path.unlink()
    stale = __import__("socket").socket(__import__("socket").AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as a crashed server leaves it
    with server(tmp_path, {k: v for k, v in config.items() if k != "state_dir"}, port=config["server"]["http"]["port"]):
        status, body = call_as(0, str(path), "stream_list")
        assert status == 200 and "result" in body, body
        assert os.stat(path).st_gid == os.getgid() and stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert not path.exists()  # removed on a clean stop
