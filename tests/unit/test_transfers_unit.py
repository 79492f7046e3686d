"""Send/receive pieces without ZFS: send flags, the path rule, resume tokens, parsers on captured OpenZFS 2.3.2
output, stream sessions in memory (single use, expiry) and as stored in Redis (one record, parsed back), the
stream routes' and stream_init's refusals, and the stream bodies (spliced, or through ASGI)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time

import pytest
from dependency_injector import providers

from tests.conftest import Rpc, http_client
from zfsapi.adapters.inbound.http.peer import BODY_KEY, SOCKET_KEY
from zfsapi.adapters.inbound.http.stream_bodies import RequestBody, ResponseBody
from zfsapi.adapters.inbound.http.stream_bodies import discard as _discard
from zfsapi.adapters.outbound.state.memory.sessions import MemoryStreamSessions
from zfsapi.adapters.outbound.state.redis.sessions import decode_session, encode_session
from zfsapi.adapters.outbound.zfs import commands, parsers
from zfsapi.adapters.outbound.zfs.executor import PIPE_SIZE, make_pipe, pipe_size
from zfsapi.adapters.outbound.zfs.pipelines import ZfsReceivePipe, ZfsSendPipe, received_snapshot
from zfsapi.adapters.splicing import Spliceable, spliceable
from zfsapi.adapters.outbound.send_file_dirs import LocalSendFileDirs
from zfsapi.application.transfers import ReceiveFromFile, TransferRoots
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import InvalidArgument, PermissionDenied
from zfsapi.domain.names import BookmarkName, DatasetName, SnapshotName
from zfsapi.domain.transfer import (
    Compression,
    Confined,
    Operation,
    ReceiveSpec,
    ResumeSend,
    ResumeToken,
    SendSpec,
    StreamSession,
    StreamState,
    confine,
    file_owner,
    size_human,
)

# captured from OpenZFS 2.3.2 (zfs-testhost): `zfs send -nvP -L -e -c tp/a@s1` and `zfs send -nvt TOKEN`
SEND_NVP = "full\ttp/a@s1\t4215664\nsize\t4215664\n"
TOKEN_NVT = """resume token contents:
nvlist version: 0
\tobject = 0x2
\toffset = 0x1c0000
\tbytes = 0x1e1c48
\ttoguid = 0xf6f43f49d26396d
\ttoname = tp/a@s1
\tembedok = 1
\tcompressok = 1
full send of tp/a@s1 estimated size is 2.14M
total estimated size is 2.14M
"""


def test_send_flags_and_argv():
    spec = SendSpec(SnapshotName.parse("tank/a@s2"), BookmarkName.parse("tank/a#b1"))
    assert commands.send(spec) == ["zfs", "send", "-L", "-e", "-c", "-i", "tank/a#b1", "tank/a@s2"]
    assert commands.send(spec, dry_run=True)[:5] == ["zfs", "send", "-n", "-v", "-P"]
    raw = SendSpec(SnapshotName.parse("tank/a@s2"), raw=True, native_compressed=False, recursive=True)
    assert raw.flags() == ["-L", "-e", "-w", "-R"]
    with pytest.raises(InvalidArgument):
        SendSpec(SnapshotName.parse("tank/a@s2"), BookmarkName.parse("tank/a#b"), recursive=True)
    target = SnapshotName.parse("t/a@x").dataset
    assert commands.receive(ReceiveSpec(target, force=True, resumable=True, trusted=True)) == \
        ["zfs", "receive", "-v", "-s", "-F", "t/a"]
    # anyone but an unrestricted admin: the stream's mount properties are not applied (they inherit)
    assert commands.receive(ReceiveSpec(target, resumable=False)) == [
        "zfs", "receive", "-v", "-x", "mountpoint", "-x", "sharenfs", "-x", "sharesmb", "-x", "setuid",
        "-x", "devices", "-x", "zoned", "t/a"]
    assert commands.send_resume(ResumeToken.parse(TOKEN)) == ["zfs", "send", "-t", TOKEN]


TOKEN = "1-e604ea4bf-e0-789c63"


@pytest.mark.parametrize("text", ["", "1-2-3", "1-2-3-4-5", "1-DEAD-3-4", "-t", "1-2-3-4; rm -rf /", "1-2-3-4\n",
                                  "1-" + "a" * 65536 + "-3-4"])
def test_resume_token_syntax(text):
    with pytest.raises(InvalidArgument) as exc:
        ResumeToken.parse(text)
    assert exc.value.param == "resume_token"
    assert ResumeToken.parse(TOKEN).value == TOKEN


def test_parsers_on_captured_output():
    assert parsers.send_size(SEND_NVP) == 4215664
    assert parsers.send_size("incremental\ts1\tt/a@s2\t18446744073709551615\nsize\t18446744073709551615\n") \
        == 2**64 - 1  # unsigned 64-bit
    token = parsers.resume_token(TOKEN_NVT)
    assert token.toname == "tp/a@s1" and token.toguid == 0xF6F43F49D26396D and token.bytes_done == 0x1E1C48
    assert token.compressed and not token.raw and token.fromguid is None
    assert received_snapshot("receiving full stream of tp/a@s1 into tp/b c@s1\n") == "tp/b c@s1"


@pytest.mark.parametrize("path, ok", [
    ("x.zfs", ("/srv/xfer", "/srv/xfer/x.zfs")), ("/srv/xfer/sub/x.zfs", ("/srv/xfer", "/srv/xfer/sub/x.zfs")),
    ("/srv/other/y", ("/srv/other", "/srv/other/y")),
    ("../x", None), ("/srv/xfer/../etc/passwd", None), ("/etc/passwd", None), ("/srv/xfer", None),
    ("/srv/xferx/y", None), ("", None), ("a\0b", None),
])
def test_confine(path, ok):
    """An admin without a scope: anywhere in the transfer directories."""
    roots = ("/srv/xfer", "/srv/other")
    if ok is None:
        with pytest.raises(InvalidArgument) as exc:
            confine(path, roots, "output_file")
        assert exc.value.param == "output_file"
    else:
        root, full = ok
        got = confine(path, roots, "output_file")
        assert got == Confined(root, None, full) and got.directory == root
    with pytest.raises(InvalidArgument, match="transfer.directories"):
        confine("x", (), "output_file")


@pytest.mark.parametrize("path, ok", [
    ("x.zfs", "/srv/xfer/alice/x.zfs"), ("sub/x.zfs", "/srv/xfer/alice/sub/x.zfs"),
    ("/srv/xfer/alice/x.zfs", "/srv/xfer/alice/x.zfs"), ("/srv/other/alice/y", "/srv/other/alice/y"),
    ("/srv/xfer/x.zfs", None), ("/srv/xfer/bob/x.zfs", None), ("/srv/xfer/alice", None), ("/srv/xfer/Alice/x", None),
    ("/srv/xfer/alicex/y", None), ("/srv/other/y", None),
])
def test_confine_to_an_owner(path, ok):
    """A scoped or non-admin caller's paths: relative ones in its own subdirectory, absolute ones only there."""
    roots = ("/srv/xfer", "/srv/other")
    if ok is None:
        with pytest.raises(InvalidArgument, match="your subdirectory alice/") as exc:
            confine(path, roots, "input_file", "alice")
        assert exc.value.param == "input_file"
    else:
        got = confine(path, roots, "input_file", "alice")
        assert (got.path, got.owner, got.directory) == (ok, "alice", got.root + "/alice")
        assert got.root in roots


@pytest.mark.parametrize("principal, owner", [
    (Principal("root", Role.ADMIN), None),
    (Principal("ops", Role.ADMIN, ("tank/a",)), "ops"),
    (Principal("op.1-x_y", Role.OPERATOR), "op.1-x_y"),
    (Principal("ro", Role.READONLY), "ro"),
])
def test_file_owner(principal, owner):
    assert file_owner(principal) == owner


@pytest.mark.parametrize("name", [".", "..", "a/b", "a b", "", "é", "x\0"])
def test_file_owner_refuses_a_name_that_is_not_one_safe_path_component(name):
    with pytest.raises(PermissionDenied, match="cannot name a transfer subdirectory"):
        file_owner(Principal(name, Role.OPERATOR))
    assert file_owner(Principal(name, Role.ADMIN)) is None  # the whole directory: its name is not used


async def test_send_file_dirs_are_made_0700_and_a_symlink_is_refused(tmp_path):
    dirs = LocalSendFileDirs()
    await dirs.ensure(str(tmp_path), "alice", "output_file")
    await dirs.ensure(str(tmp_path), "alice", "output_file")  # made once, then used
    assert oct((tmp_path / "alice").stat().st_mode & 0o777) == "0o700"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "bob").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidArgument, match="not a directory") as exc:
        await dirs.ensure(str(tmp_path), "bob", "input_file")
    assert exc.value.param == "input_file"


async def test_a_scoped_caller_cannot_read_another_callers_send_file(tmp_path):
    """The rule in the use case: B's relative path stays in B's directory and A's path is refused by name,
    before any file is touched; an admin without a scope reads it by `A/<file>`."""
    class Recorder:
        async def receive_from_file(self, spec, path, root, compression, progress=None):
            opened.append((path, root))
            return None

    opened: list[tuple[str, str]] = []
    uc = ReceiveFromFile(Recorder(), LocalSendFileDirs(), TransferRoots((str(tmp_path),)))  # type: ignore[arg-type]
    spec = ReceiveSpec(DatasetName.parse("tank/b/stolen"))
    a, b = Principal("a", Role.OPERATOR, ("tank/a",)), Principal("b", Role.OPERATOR, ("tank/b",))
    for owner in ("a", "b"):
        (tmp_path / owner).mkdir(mode=0o700)
        (tmp_path / owner / "x.zfs").write_bytes(b"stream")
    with pytest.raises(InvalidArgument, match="your subdirectory b/") as exc:
        await uc.execute(who=b, spec=spec, input_file=f"{tmp_path}/a/x.zfs", compression=None)
    assert exc.value.param == "input_file" and opened == []
    await uc.execute(who=b, spec=spec, input_file="x.zfs", compression=None)
    await uc.execute(who=a, spec=spec, input_file="x.zfs", compression=None)
    await uc.execute(who=Principal("root", Role.ADMIN), spec=spec, input_file="a/x.zfs", compression=None)
    assert opened == [(f"{tmp_path}/b/x.zfs", f"{tmp_path}/b"), (f"{tmp_path}/a/x.zfs", f"{tmp_path}/a"),
                      (f"{tmp_path}/a/x.zfs", str(tmp_path))]


def test_misc():
    assert Compression.by_suffix("a.zfs.gz") is Compression.GZIP and Compression.by_suffix("a.zst") is Compression.ZSTD
    assert size_human(512) == "512B" and size_human(3 << 20) == "3.00M"
    r, w = make_pipe()
    assert pipe_size(w) == PIPE_SIZE


SEND = SendSpec(SnapshotName.parse("tank/a b@s2"), BookmarkName.parse("tank/a b#b:1"), raw=True,
                native_compressed=False)


async def test_memory_sessions_are_single_use_and_expire():
    store = MemoryStreamSessions()
    now = time.time()
    s = StreamSession("a" * 32, "u", now, now + 60, SEND)
    await store.create(s, 120)
    claimed = await store.claim(s.stream_id, now)
    assert claimed == StreamSession("a" * 32, "u", now, now + 60, SEND, StreamState.ACTIVE)
    assert await store.claim(s.stream_id, now) is None
    late = StreamSession("b" * 32, "u", now, now + 1, ReceiveSpec(DatasetName.parse("tank/r")))
    await store.create(late, 120)
    assert await store.claim(late.stream_id, now + 2) is None
    assert (await store.get(late.stream_id)).effective_state(now + 2) is StreamState.EXPIRED
    updated = await store.update(s.stream_id, state=StreamState.FAILED, bytes=10, error="cut")
    assert (updated.state, updated.bytes, updated.error) == (StreamState.FAILED, 10, "cut")
    kept = await store.update(s.stream_id, bytes=11)  # what is not given stays
    assert (kept.state, kept.bytes, kept.error) == (StreamState.FAILED, 11, "cut")
    assert await store.get(s.stream_id) == kept


@pytest.mark.parametrize("transfer", [
    SEND,
    SendSpec(SnapshotName.parse("tank/a@s1"), SnapshotName.parse("tank/a@s0"), recursive=True),
    ResumeSend(ResumeToken.parse(TOKEN)),
    ResumeSend(ResumeToken.parse(TOKEN), DatasetName.parse("tank/a"), SnapshotName.parse("tank/a@s1"), raw=True),
    ReceiveSpec(DatasetName.parse("tank/x y"), force=True, resumable=False, resume_token=ResumeToken.parse(TOKEN)),
], ids=["send", "incremental", "resume", "resume-checked", "receive"])
def test_stored_session_parses_back_to_the_same_transfer(transfer):
    s = StreamSession("c" * 32, "ops", 1.5, 61.5, transfer, StreamState.DONE, 12345, "e")
    assert decode_session(encode_session(s)) == s
    assert s.operation is (Operation.RECEIVE if isinstance(transfer, ReceiveSpec) else Operation.SEND)


def test_stored_session_is_the_flat_record_of_earlier_versions():
    raw = encode_session(StreamSession("c" * 32, "ops", 1.5, 61.5, SEND))
    assert json.loads(raw) == {
        "stream_id": "c" * 32, "operation": "send", "username": "ops", "created": 1.5, "expires_at": 61.5,
        "dataset": "tank/a b", "snapshot": "tank/a b@s2", "from_snapshot": "tank/a b#b:1", "target_dataset": None,
        "force": False, "resumable": True, "resume_token": None, "trusted": False, "raw": True, "native_compressed": False,
        "recursive": False, "state": "pending", "bytes": 0, "error": None}


@pytest.mark.parametrize("params, param", [
    ({"operation": "receive"}, "target_dataset"),
    ({"operation": "receive", "target_dataset": "tank/a@s"}, "target_dataset"),
    ({"operation": "send", "dataset": "tank/a"}, "snapshot"),
    ({"operation": "send", "snapshot": "s1"}, "dataset"),
    ({"operation": "send", "dataset": "tank/a", "snapshot": "tank/b@s1"}, "snapshot"),
    ({"operation": "send", "dataset": "tank/a", "snapshot": "s1", "from_snapshot": "#b", "recursive": True},
     "from_snapshot"),
    ({"operation": "send", "resume_token": "not a token; rm -rf /"}, "resume_token"),
    ({"operation": "send", "resume_token": TOKEN, "snapshot": "s1"}, "dataset"),
])
async def test_stream_init_names_the_bad_param(rpc, params, param):
    err = await rpc("stream_init", error=True, **params)
    assert (err["code"], err["data"]["param"]) == (-32602, param), err


async def test_stream_routes_refuse_before_touching_zfs(container):
    app = http_app(container)
    async with http_client(app) as c:
        assert (await c.get("/stream/" + "0" * 32)).status_code == 404
        assert (await c.get("/stream/../etc")).status_code == 404
        r = await c.post("/stream/" + "0" * 32, content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert (await c.get("/stream/" + "0" * 32, headers={"Host": "evil.example"})).status_code == 421
        assert (await c.put("/stream/" + "0" * 32)).status_code == 405


class StubZfs:
    """Transfers and Pipelines that answer at once: the wire shapes of the file methods without ZFS."""

    async def is_encrypted(self, dataset):
        return True

    async def estimate(self, spec):
        return 123456

    async def abort_receive(self, dataset):
        return None

    async def sent_file(self, path, root, mark):  # no earlier run of a job wrote the file
        return None

    async def send_to_file(self, spec, path, root, compression, progress=None, mark=None):
        return 10, "ab" * 32

    async def receive_from_file(self, spec, path, root, compression, progress=None):
        return spec.target.value + "@s1"


async def test_transfer_results_keep_their_wire_keys(tmp_path):
    """The keys and their order as before the methods became rows (`from_snapshot` as given; `raw` as run)."""
    c = build_container(load_settings(environ={}, overrides={"transfer": {"directories": [str(tmp_path)]}}))
    c.zfs.override(providers.Object(StubZfs()))
    c.pipelines.override(providers.Object(StubZfs()))
    async with http_client(http_app(c)) as client:
        rpc = Rpc(client)
        est = await rpc("send_estimate", dataset="tank/a", snapshot="s1", from_snapshot="#b")
        assert est == {"dataset": "tank/a", "snapshot": "s1", "from_snapshot": "#b", "size_bytes": 123456,
                       "size_human": "120.56K", "raw": True}
        sent = await rpc("send_to_file", dataset="tank/a", snapshot="tank/a@s1", output_file="x", compressed=True)
        assert list(sent) == ["dataset", "snapshot", "from_snapshot", "output_file", "compression", "size_bytes",
                              "sha256", "duration_seconds"]
        assert (sent["snapshot"], sent["from_snapshot"], sent["output_file"], sent["compression"]) == \
            ("s1", None, f"{tmp_path}/x.gz", "gzip")
        (tmp_path / "x.gz").write_bytes(b"")  # the stub wrote none
        got = await rpc("receive_from_file", dataset="tank/r", input_file="x.gz")
        assert list(got) == ["dataset", "input_file", "snapshot", "duration_seconds"]
        assert (got["input_file"], got["snapshot"]) == (f"{tmp_path}/x.gz", "tank/r@s1")
        assert await rpc("receive_abort", dataset="tank/r") == {"dataset": "tank/r", "aborted": True}
        init = await rpc("stream_init", operation="receive", target_dataset="tank/r")
        assert list(init) == ["stream_id", "url", "method", "expires_at"] and init["method"] == "POST"
        (listed,) = (await rpc("stream_list"))["sessions"]
        assert list(listed) == ["stream_id", "operation", "dataset", "snapshot", "target_dataset", "created",
                                "expires_at", "username", "state", "bytes", "error"]
        assert await rpc("stream_cancel", stream_id=init["stream_id"]) == {"stream_id": init["stream_id"],
                                                                           "cancelled": True}


def test_discarding_the_rest_of_a_body_reads_exactly_what_is_left():
    """Before an error answer, the unread rest of a spliced body is read and dropped (closing on unread bytes
    would reset the connection), and no more: the next bytes stay in the socket; a peer gone early ends it."""
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        writer = threading.Thread(target=b.sendall, args=(b"x" * 3_000_000 + b"next",))  # more than a buffer
        writer.start()
        _discard(a.fileno(), 3_000_000, 60)
        writer.join(60)
        assert a.recv(100) == b"next"
        b.sendall(b"x" * 10)
        b.shutdown(socket.SHUT_WR)
        _discard(a.fileno(), 1000, 60)  # returns at the end of input, 990 bytes short
        assert a.recv(10) == b""


# ---- the stream bodies: spliced between a Spliceable pipe and the connection's socket, else through ASGI ----

class _SplicedPipe:
    """A pipe end as the pipelines adapter's pipes offer it (Spliceable), over an os.pipe; `read`/`write` too."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.killed = False

    def fileno(self) -> int:
        return self.fd

    async def in_thread(self, work):
        stop_r, stop_w = os.pipe()
        try:
            return await asyncio.to_thread(work, stop_r)
        finally:
            os.close(stop_r)
            os.close(stop_w)

    async def read(self) -> bytes:
        raise AssertionError("a spliced send is not read through the loop")

    async def write(self, data: bytes) -> None:
        raise AssertionError("a spliced receive is written through the loop only before the socket's bytes")

    async def finish(self) -> None: ...

    async def kill(self) -> None:
        self.killed = True


class _ReadPipe:
    """A send pipe that cannot be spliced (no fileno/in_thread): read in chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def finish(self) -> None: ...

    async def kill(self) -> None: ...


def _unchunk(raw: bytes) -> bytes:
    """An HTTP/1.1 chunked body (without its terminator) decoded; every chunk framed right, or it fails."""
    out, rest = b"", raw
    while rest:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        assert size > 0 and rest[size:size + 2] == b"\r\n", "a chunk framed wrong"
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def _drain(sock: socket.socket, into: list[bytes]) -> threading.Thread:
    def run() -> None:
        while chunk := sock.recv(1 << 20):
            into.append(chunk)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def test_a_spliceable_send_goes_into_the_socket_as_http_chunks_and_counts_every_byte():
    data = os.urandom(3 * (1 << 20) + 17)  # several splices, the last one short
    r, w = os.pipe()
    feeder = threading.Thread(target=lambda: (os.write(w, data) and None, os.close(w)))
    server, client = socket.socketpair()
    server.setblocking(False)
    messages, moved, counted, got = [], [], [], []
    reader = _drain(client, got)

    async def send(message):
        messages.append(message)

    scope = {"extensions": {SOCKET_KEY: lambda: os.dup(server.fileno())}}
    feeder.start()
    body = ResponseBody(scope, send, "rid", counted.append)
    await body(b"first", _SplicedPipe(r), moved.append)
    assert [m["type"] for m in messages] == ["http.response.start"]  # the end waits for the session's outcome
    await body.end()
    feeder.join()
    server.close()
    reader.join(60)
    os.close(r)
    client.close()
    assert _unchunk(b"".join(got)) == b"first" + data
    assert sum(moved) == sum(counted) == len(data) + 5
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_send_that_cannot_be_spliced_goes_through_asgi_and_the_socket_is_left_alone():
    messages, moved = [], []

    async def send(message):
        messages.append(message)

    def never() -> int:
        raise AssertionError("the socket is taken only for a pipe that can be spliced")

    body = ResponseBody({"extensions": {SOCKET_KEY: never}}, send, "rid", lambda n: None)
    await body(b"a", _ReadPipe([b"bc", b"d"]), moved.append)
    await body.end()
    bodies = [m["body"] for m in messages if m["type"] == "http.response.body"]
    assert bodies == [b"a", b"bc", b"d", b""] and moved == [1, 2, 1]


async def test_a_request_body_handed_over_is_spliced_from_the_socket_into_the_receive():
    server, client = socket.socketpair()
    server.setblocking(False)
    rest = os.urandom(2 * (1 << 20) + 3)
    r, w = os.pipe()
    got: list[bytes] = []
    written: list[bytes] = []

    class Receive(_SplicedPipe):
        async def write(self, data: bytes) -> None:  # the bytes uvicorn had read already
            written.append(data)

    def reader() -> None:
        while chunk := os.read(r, 1 << 20):
            got.append(chunk)

    collecting = threading.Thread(target=reader)
    collecting.start()
    sending = threading.Thread(target=client.sendall, args=(rest,))
    sending.start()
    moved, counted = [], []
    body = RequestBody({"extensions": {BODY_KEY: lambda: (os.dup(server.fileno()), b"head", len(rest))}},
                       _no_receive, counted.append)
    await body(Receive(w), moved.append)
    assert body.rest() is None  # nothing left unread
    body.close()
    os.close(w)
    sending.join(60)
    collecting.join(60)
    os.close(r)
    server.close()
    client.close()
    assert written == [b"head"] and b"".join(got) == rest
    assert sum(moved) == sum(counted) == len(rest) + 4


async def test_a_request_body_cut_short_raises_connection_reset_and_leaves_its_rest_to_discard():
    server, client = socket.socketpair()
    server.setblocking(False)
    r, w = os.pipe()
    client.sendall(b"x" * 10)
    client.shutdown(socket.SHUT_WR)
    body = RequestBody({"extensions": {BODY_KEY: lambda: (os.dup(server.fileno()), b"", 100)}}, _no_receive,
                       lambda n: None)
    with pytest.raises(ConnectionResetError, match="10 of 100 bytes"):
        await body(_SplicedPipe(w), lambda n: None)
    assert body.rest() is not None
    body.close()
    for fd in (r, w):
        os.close(fd)
    server.close()
    client.close()


async def _no_receive():
    raise AssertionError("a body handed over is not read through ASGI")


def test_the_pipelines_pipes_are_the_ones_the_http_adapter_splices():
    """The adapters agree on splicing by duck typing: the pipelines' pipes must keep offering it."""
    assert issubclass(ZfsSendPipe, Spliceable) and issubclass(ZfsReceivePipe, Spliceable)
    assert spliceable(_ReadPipe([])) is None


async def test_a_send_whose_zfs_takes_a_while_to_exit_is_recorded_done_before_the_response_ends(
        container, fake_zfs, monkeypatch):
    """The end of GET /stream's body is sent after the send has exited and its session is recorded done: a
    response that is complete reads as a disconnect (uvicorn, httpx), which stopped a real zfs send's session
    as "client disconnected" while it exited (seen on real ZFS only: the fake's exit took no time)."""
    from tests.fakes import FakePipe, FakeStreams
    from zfsapi.domain.names import DatasetName, SnapshotName

    finish = FakePipe.finish

    async def slow_exit(self):
        await asyncio.sleep(0.2)
        return await finish(self)

    monkeypatch.setattr(FakePipe, "finish", slow_exit)
    await fake_zfs.create_dataset(DatasetName("tank/a"), properties={}, parents=True)
    await fake_zfs.create_snapshot(SnapshotName.parse("tank/a@s1"), recursive=False, properties={})
    streams = FakeStreams(fake_zfs)

    class ZfsAndStreams:  # the zfs port's transfer side (estimates, encryption) is the fake streams'
        def __getattr__(self, name):
            return getattr(streams if hasattr(streams, name) else fake_zfs, name)

    container.zfs.override(providers.Object(ZfsAndStreams()))
    container.pipelines.override(providers.Object(streams))
    async with http_client(http_app(container)) as client:
        rpc = Rpc(client)
        out = await rpc("stream_init", operation="send", dataset="tank/a", snapshot="s1")
        r = await client.get(out["url"])
        assert r.status_code == 200 and r.content
        (listed,) = (await rpc("stream_list"))["sessions"]
        assert (listed["state"], listed["error"], listed["bytes"]) == ("done", None, len(r.content))
