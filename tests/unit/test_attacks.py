"""Hostile input through the whole HTTP stack (FakeZfs behind it): every bad name, number or property is a -32602
that names the parameter, and nothing reaches ZFS. (Hosts, Origins and nesting: test_http.py; names:
test_names.py.)"""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading

import pytest

from zfsapi.adapters.outbound.zfs.pipelines import _create_confined, _open_confined
from zfsapi.domain.errors import AlreadyExists, InvalidArgument


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
    from zfsapi.bootstrap.lifecycle import http_app

    fake = FakeZfs()
    app = http_app(make_container(tmp_path, fake, auth={"local_users": {
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


# ---- every number at the edge: bounded both ways, so no store or command ever sees an unbindable one ----------

def _numbers(t, path: str = ""):
    """(path, msgspec type info) of every int and float inside a params type, nested ones included."""
    from msgspec import inspect as mi
    if isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, (mi.IntType, mi.FloatType)):
        yield path, t
    elif isinstance(t, mi.UnionType):
        for member in t.types:
            yield from _numbers(member, path)
    elif isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        yield from _numbers(t.item_type, path + "[]")
    elif isinstance(t, mi.DictType):
        yield from _numbers(t.value_type, path + "{}")
    elif isinstance(t, mi.StructType):
        for f in t.fields:
            yield from _numbers(f.type, f"{path}.{f.name}" if path else f.name)


def _method_numbers(container):
    from msgspec import inspect as mi
    for method in container.registry():
        for path, t in _numbers(mi.type_info(method.params)):
            yield method, path, t


def test_every_number_param_of_every_method_is_bounded_both_ways(container):
    found = list(_method_numbers(container))
    assert {(m.name, path) for m, path, _ in found} >= {("job_list", "offset"), ("job_list", "limit"),
                                                       ("migration_create", "limit"), ("stream_init", "ttl")}
    unbounded = [(m.name, path) for m, path, t in found
                 if (t.ge is None and t.gt is None) or (t.le is None and t.lt is None)]
    assert unbounded == []
    too_big = [(m.name, path) for m, path, t in found
               if isinstance(t.le if t.le is not None else t.lt, int) and (t.le or t.lt) > 2**63 - 1]
    assert too_big == []


async def test_out_of_range_numbers_to_every_method_name_the_parameter(container, rpc):
    """Generated from the method table: every top-level number param of every method gets 2**63, 2**64-1, 1e19
    and -1 over HTTP (each alone: its error comes before any missing param's)."""
    failures, tried = [], 0
    for method, path, _ in _method_numbers(container):
        if "." in path or "[" in path or "{" in path:
            continue  # nested: the static bound check above holds them
        for value in (2**63, 2**64 - 1, 1e19, -1):
            tried += 1
            r = await rpc.client.post("/", json={"jsonrpc": "2.0", "method": method.name, "params": {path: value},
                                                 "id": 1})
            error = r.json().get("error", {})
            if error.get("code") != -32602 or error.get("data", {}).get("param") != path:
                failures.append((method.name, path, value, r.json()))
    assert tried >= 32 and failures == []


async def test_non_finite_numbers_name_the_parameter_at_the_edge(container):
    """JSON has no NaN or infinity, but an embedding program's params go through the same conversion."""
    from zfsapi.adapters.inbound.jsonrpc.dispatcher import Dispatcher
    from zfsapi.adapters.inbound.jsonrpc.errors import RpcError
    failures = []
    for method, path, _ in _method_numbers(container):
        if "." in path or "[" in path or "{" in path:
            continue
        for value in (float("nan"), float("inf"), float("-inf")):
            try:
                Dispatcher._convert(method, {path: value})
                failures.append((method.name, path, value, "accepted"))
            except RpcError as exc:
                if exc.code != -32602 or (exc.data or {}).get("param") != path:
                    failures.append((method.name, path, value, exc.data))
    assert failures == []


async def test_a_number_too_large_for_json_is_a_parse_error_not_an_internal_one(rpc):
    r = await rpc.client.post("/", content=b'{"jsonrpc": "2.0", "method": "job_list", "params": {"offset": 1e400},'
                                           b' "id": 1}', headers={"Content-Type": "application/json"})
    assert r.json()["error"]["code"] == -32700, r.text


async def test_job_list_takes_the_largest_offset_on_the_embedded_store(tmp_path):
    """The bound is one SQLite can bind: the largest offset answers an empty page, not -32603."""
    from zfsapi.adapters.inbound.jsonrpc.registry import MAX_OFFSET
    from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore
    store = EmbeddedJobStore(str(tmp_path))
    try:
        assert await store.query(limit=1000, offset=MAX_OFFSET) == ([], 0)
    finally:
        store.close()


@pytest.mark.parametrize("limit, ok", [(0.001024, True), (1e6, True), (0.001, False), (1e-300, False),
                                       (0, False), (1e6 + 1, False)])
async def test_migration_limit_is_bounded_at_the_call(rpc, fake_zfs, limit, ok):
    """At least 1 KiB/s (0.001024 MB/s): slower never finishes, and a pause that long overflowed the sleep."""
    from zfsapi.domain.errors import InvalidArgument
    from zfsapi.domain.replication import ReplicationSpec
    params = {"source": "tank@s", "destination": "backup/x", "limit": limit}
    if ok:
        assert (await rpc("migration_create", **params))["params"]["limit"] == limit
        ReplicationSpec.parse(**params)
    else:
        _named(await rpc("migration_create", error=True, **params), "limit")
        with pytest.raises(InvalidArgument) as exc:
            ReplicationSpec.parse(**params)
        assert exc.value.param == "limit"


# ---- patterns match the whole text ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, param", [("job_get", "job_id"), ("job_cancel", "job_id"), ("job_wait", "job_id"),
                                           ("migration_get", "task_id"), ("migration_cancel", "task_id"),
                                           ("migration_progress", "task_id")])
@pytest.mark.parametrize("value", ["abc\n", "abc\r\n", "\nabc", "abc\n\n", "ab\nc", "abc\x00"])
async def test_an_id_with_a_newline_is_refused(rpc, method, param, value):
    _named(await rpc(method, error=True, **{param: value}), param)


def test_every_param_pattern_matches_to_the_very_end(container):
    """msgspec searches a pattern (re.search), where `$` also matches before a final newline: every pattern of
    every method's params is anchored at both ends, and a trailing newline never passes."""
    import re

    from msgspec import inspect as mi

    def patterns(t):
        if isinstance(t, mi.Metadata):
            t = t.type
        if isinstance(t, mi.StrType) and t.pattern is not None:
            yield t.pattern
        for child in ((t.types if isinstance(t, mi.UnionType) else ()) +
                      ((t.item_type,) if isinstance(t, (mi.ListType, mi.SetType, mi.VarTupleType)) else ()) +
                      ((t.key_type, t.value_type) if isinstance(t, mi.DictType) else ()) +
                      (tuple(f.type for f in t.fields) if isinstance(t, mi.StructType) else ())):
            yield from patterns(child)

    found = {p for m in container.registry() for p in patterns(mi.type_info(m.params))}
    assert found
    for pattern in found:
        assert pattern.startswith("^") and (pattern.endswith(r"\Z") or pattern.endswith("$(?!\\n)")), pattern
        assert not re.search(pattern, "abc\n") and re.search(pattern, "abc"), pattern


def test_no_input_is_validated_by_a_prefix_match():
    """Every regex that validates a value matches all of it (fullmatch): re.match and .match( check a prefix
    only, and `$` lets a final newline through. Read from the source so a new one cannot slip in."""
    import pathlib
    import re
    src = pathlib.Path(__file__).resolve().parents[2] / "src"
    offenders = [f"{path.relative_to(src)}:{n}" for path in src.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"(?<![A-Za-z_])(re\.match|\.match)\(", line)]
    assert offenders == []


# ---- send file paths: every refusal at the call, background included, and no file left ------------------------

@pytest.fixture
async def files_rpc(tmp_path):
    """An rpc with transfer.directories = tmp_path/files, zfs stubbed (estimates answer, transfers succeed), and
    the job runner off: a background call that is not refused stays queued, listed by job_list."""
    from dependency_injector import providers

    from tests.conftest import Rpc, http_client
    from tests.unit.test_transfers_unit import StubZfs
    from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
    from zfsapi.bootstrap.lifecycle import http_app
    from zfsapi.bootstrap import build_container, load_settings

    (tmp_path / "files").mkdir()
    c = build_container(load_settings(environ={}, overrides={"transfer": {"directories": [str(tmp_path / "files")]},
                                                              "state_dir": str(tmp_path / "state")}))
    c.zfs.override(providers.Object(StubZfs()))
    c.pipelines.override(providers.Object(StubZfs()))
    c.job_store.override(providers.Object(MemoryJobStore()))
    async with http_client(http_app(c)) as client:
        yield Rpc(client), tmp_path / "files"


def _bad_paths(files):
    """(output_file or input_file, the error's code, its param or kind) for paths the filesystem refuses."""
    (files / "notadir").write_bytes(b"x")
    (files / "exists.zfs").write_bytes(b"x")
    os.symlink("loop2", files / "loop1")
    os.symlink("loop1", files / "loop2")
    os.symlink("/etc", files / "escape")
    os.symlink(files / "exists.zfs", files / "link.zfs")
    os.mkfifo(files / "fifo.zfs")
    os.mkdir(files / "dir.zfs")
    os.mkdir(files / ("x" * 250))
    return {"output_file": [("notadir/x.zfs", -32602), ("loop1/x.zfs", -32602), ("a" * 300 + ".zfs", -32602),
                            ("x" * 250 + "/" + "y" * 300, -32602), ("escape/x.zfs", -32602),
                            ("link.zfs", -32602), ("fifo.zfs", -32602), ("dir.zfs", -32602),
                            ("/etc/x.zfs", -32602), ("../x.zfs", -32602), ("exists.zfs", -32011),
                            ("missing/x.zfs", -32010)],
            "input_file": [("notadir/x.zfs", -32602), ("loop1/x.zfs", -32602), ("a" * 300 + ".zfs", -32602),
                           ("escape/passwd", -32602), ("link.zfs", -32602), ("fifo.zfs", -32602),
                           ("dir.zfs", -32602), ("/etc/passwd", -32602), ("missing.zfs", -32010),
                           ("missing/x.zfs", -32010)]}


@pytest.mark.parametrize("background", [False, True])
async def test_send_file_paths_are_refused_at_the_call(files_rpc, background):
    """Foreground or background, the same checks answer the call: never a job id whose job then fails, never
    -32603, and nothing is left in the directory."""
    rpc, files = files_rpc
    cases = _bad_paths(files)
    before = sorted(os.listdir(files))
    failures = []
    for param, paths in cases.items():
        for path, code in paths:
            if param == "output_file":
                params = {"dataset": "tank/a", "snapshot": "s1", "output_file": path}
                method = "send_to_file"
            else:
                params = {"dataset": "tank/r", "input_file": path}
                method = "receive_from_file"
            error = await rpc(method, error=True, background=background, **params)
            data = error.get("data", {})
            if error["code"] != code or (code == -32602 and data.get("param") != param):
                failures.append((method, path, error))
    assert failures == []
    assert (await rpc("job_list"))["total"] == 0
    assert sorted(os.listdir(files)) == before


async def test_good_background_transfers_are_queued(files_rpc):
    rpc, files = files_rpc
    (files / "in.zfs").write_bytes(b"stream")
    sent = await rpc("send_to_file", dataset="tank/a", snapshot="s1", output_file="new.zfs", background=True)
    got = await rpc("receive_from_file", dataset="tank/r", input_file="in.zfs", background=True)
    listed = await rpc("job_list")
    assert {j["job_id"] for j in listed["jobs"]} == {sent["job_id"], got["job_id"]}


async def test_a_send_file_into_a_path_that_is_no_directory_leaves_no_partial_file(tmp_path):
    """The pipeline's own check (the job's, when the path changed after the call): -32602 naming the param,
    before any partial file exists."""
    from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
    from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
    from zfsapi.domain.names import SnapshotName
    from zfsapi.domain.transfer import Compression, SendSpec

    (tmp_path / "notadir").write_bytes(b"x")
    pipelines = ZfsPipelines(ZfsExecutor(zfs="/bin/false"))
    spec = SendSpec(SnapshotName.parse("tank/a@s1"))
    for path in ("notadir/x.zfs", "a" * 300, "notadir"):
        with pytest.raises((InvalidArgument, AlreadyExists)) as exc:
            await pipelines.send_to_file(spec, str(tmp_path / path), str(tmp_path), Compression.NONE)
        assert getattr(exc.value, "param", "output_file") == "output_file", exc.value
    assert sorted(os.listdir(tmp_path)) == ["notadir"]


@pytest.mark.parametrize("code", [errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM])
def test_what_the_filesystem_says_of_a_path_names_the_parameter(code):
    """EACCES cannot be had as root in the test host: the mapping is checked for every errno it covers."""
    from zfsapi.adapters.outbound.send_file_dirs import path_error
    error = path_error(OSError(code, os.strerror(code)), "output_file")
    assert isinstance(error, InvalidArgument) and error.param == "output_file"
    assert path_error(OSError(errno.ENOSPC, "full"), "output_file") is None  # not about the path: not -32602
