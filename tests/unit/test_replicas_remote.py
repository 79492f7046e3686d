"""The remote replica sides without ZFS. SSH: the argv and the remote command (quoting of odd but valid names,
parsed back by a real `sh` behind a stand-in ssh), that a remote is never an option, how failures are
classified. HTTP: credentials (login, renewal on -32002, a fixed token, none) against httpx.MockTransport, the
remote's errors as domain errors, a streamed receive (plain and gzip on the wire), an early answer. And our own
POST /stream with Content-Encoding (gzip, zstd, an unknown one: 415)."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import stat

import httpx
import pytest

from tests.conftest import http_client
from zfsapi.adapters.outbound.replicas.http import HttpReplica, remote_error
from zfsapi.adapters.outbound.replicas.ssh import SshReplica
from zfsapi.adapters.outbound.zfs import commands
from zfsapi.adapters.outbound.zfs.executor import Completed, ZfsExecutor
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.errors import (
    AlreadyExists,
    Busy,
    HasDependents,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ReceiveFailed,
    StateConflict,
    ZfsCommandFailed,
    ZfsUnavailable,
)
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.replication import Remote
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeToken
from zfsapi.protocol.envelope import ErrorObject

TOKEN = "1-e604ea4bf-e0-789c636064000310a500c4ec50360710e72765a5269740d80cd8e4d3d28a534b18e00024cf86249f5459925acc802a8facbf243fbd34338581e1cfe3b20cd8f4974f86e0404f3c07f4042d11d00ce7de0002bf040"


def test_what_could_be_read_as_an_option_or_a_quote_is_refused():
    with pytest.raises(InvalidArgument):
        DatasetName.parse("tank/it's")
    with pytest.raises(InvalidArgument):
        Remote.parse("-oProxyCommand=touch /tmp/x")
    with pytest.raises(InvalidArgument):
        Remote.parse("root@-oProxyCommand=x")


DS = DatasetName.parse("tank/a b:c.d-e/ f_g")
TAG = HoldTag.parse("zfsapi:replication $(touch /tmp/pwned) `id` 'q' \"dq\" ; & |")


def test_ssh_argv_quotes_every_word_and_puts_the_remote_after_double_dash():
    side = SshReplica(Remote.parse("backup@host-1.example"), ZfsExecutor(),
                      options=["StrictHostKeyChecking=accept-new", "BatchMode=no"])
    argv = side.argv(commands.list_snapshots(DS, False, details=False))
    assert argv[:-2] == ["ssh", "-T", "-x", "-a", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                         "-o", "BatchMode=no", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15",
                         "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR", "--"]
    assert argv[-2] == "backup@host-1.example"
    assert argv[-1] == ("zfs list -H -p -t snapshot -o name,guid,createtxg -s createtxg -d 1 "
                        "'tank/a b:c.d-e/ f_g'")
    hold = side.argv(commands.hold(SnapshotName.parse("tank/a b@s 1"), TAG, False))[-1]
    assert shlex.split(hold) == ["zfs", "hold", TAG.value, "tank/a b@s 1"]


def test_ssh_receive_command_decompresses_there():
    side = SshReplica(Remote.parse("10.0.0.7"), ZfsExecutor())
    spec = ReceiveSpec(DS, force=True, resumable=True)
    command = side.argv(["zstd", "-q", "-d", "-c"], commands.receive(spec))[-1]
    left, right = command.split(" | ")
    assert shlex.split(left) == ["zstd", "-q", "-d", "-c"]
    assert shlex.split(right) == commands.receive(spec)
    assert shlex.split(right)[-1] == DS.value


@pytest.mark.parametrize("code, stderr, expected", [
    (255, "ssh: connect to host 10.0.0.7 port 22: Connection refused",
     ZfsUnavailable("ssh to root@10.0.0.7: ssh: connect to host 10.0.0.7 port 22: Connection refused")),
    (255, "Warning: something\nroot@10.0.0.7: Permission denied (publickey).",
     ZfsUnavailable("ssh to root@10.0.0.7: root@10.0.0.7: Permission denied (publickey).")),
    (127, "bash: line 1: zfs: command not found",
     ZfsUnavailable("root@10.0.0.7: bash: line 1: zfs: command not found")),
    (1, "sh: 1: zstd: not found\ncannot receive: failed to read from stream",
     ZfsUnavailable("root@10.0.0.7: sh: 1: zstd: not found")),
    (1, "cannot open 'tank/x y': dataset does not exist", NotFound("dataset", "tank/x y")),
    (1, "cannot hold snapshot 'tank/x@s': tag already exists on this dataset", AlreadyExists("hold", "tank/x@s")),
])
def test_ssh_failures_are_classified(code, stderr, expected):
    side = SshReplica(Remote.parse("root@10.0.0.7"), ZfsExecutor())
    kind = "snapshot" if "@" in stderr else "dataset"
    name = "tank/x@s" if kind == "snapshot" else "tank/x y"
    error = side.failure(Completed(["zfs", "list"], code, b"", stderr), name=name, kind=kind)
    assert type(error) is type(expected) and error.message == expected.message


def test_ssh_zfs_failure_keeps_the_remote_zfs_command():
    side = SshReplica(Remote.parse("root@10.0.0.7"), ZfsExecutor())
    stderr = "cannot receive incremental stream: destination tank/x has been modified\nsince most recent snapshot"
    error = side.failure(Completed(["zfs", "receive", "-v", "tank/x"], 1, b"", stderr), name="tank/x")
    assert isinstance(error, ZfsCommandFailed)
    assert (error.command, error.exit_code, error.stderr) == (["zfs", "receive", "-v", "tank/x"], 1, stderr)


# ---- SSH through a stand-in ssh: the remote command is parsed by a real sh ----

def script(path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def fake_ssh(tmp_path):
    """`ssh ... -- dest 'cmd'` runs cmd with sh here, a stand-in zfs first on PATH: it records its argv (one
    word a line), answers what ZFS_OUT/ZFS_ERR/ZFS_EXIT in tmp say, and copies its stdin for receives."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "zfs", f"""for a in "$@"; do printf '%s\\n' "$a"; done > {tmp_path}/argv
case "$1" in receive) cat > {tmp_path}/stdin; echo "receiving full stream of src@s1 into $(tail -n1 {tmp_path}/argv)@s1";;
  *) cat {tmp_path}/out 2>/dev/null;; esac
cat {tmp_path}/err >&2 2>/dev/null
exit $(cat {tmp_path}/exit 2>/dev/null || echo 0)
""")
    ssh = script(tmp_path / "ssh", f"""echo "$@" > {tmp_path}/ssh_argv
while [ "$1" != "--" ]; do shift; done
echo "$2" > {tmp_path}/dest
PATH={bin_dir}:$PATH exec sh -c "$3"
""")
    return tmp_path, ZfsExecutor(ssh=ssh)


def recorded(tmp) -> list[str]:
    return (tmp / "argv").read_text().split("\n")[:-1]


async def test_ssh_side_through_a_real_shell(fake_ssh):
    tmp, executor = fake_ssh
    side = SshReplica(Remote.parse("root@127.0.0.1"), executor)
    (tmp / "out").write_text("tank/a b:c.d-e/ f_g@s1\t123\t5\ntank/a b:c.d-e/ f_g@s 2\t456\t9\n")
    assert await side.snapshots(DS) == [Snapshot("tank/a b:c.d-e/ f_g@s1", 123, 5),
                                        Snapshot("tank/a b:c.d-e/ f_g@s 2", 456, 9)]
    assert recorded(tmp) == commands.list_snapshots(DS, False, details=False)[1:]
    assert (tmp / "dest").read_text() == "root@127.0.0.1\n"

    snap = SnapshotName.parse("tank/a b:c.d-e/ f_g@s 2")
    (tmp / "exit").write_text("1")
    (tmp / "err").write_text("cannot hold snapshot 'tank/a b:c.d-e/ f_g@s 2': tag already exists on this dataset\n")
    await side.hold(snap, TAG)  # already held: fine
    assert recorded(tmp) == ["hold", TAG.value, snap.value]
    (tmp / "err").write_text(f"cannot release hold from snapshot '{snap.value}': no such tag on this dataset\n")
    await side.release(snap, TAG)  # no such hold: fine
    (tmp / "err").write_text(f"cannot open '{DS.value}': dataset does not exist\n")
    assert await side.snapshots(DS) is None
    assert await side.resume_token(DS) is None
    with pytest.raises(NotFound) as missing:
        await side.hold(snap, TAG)
    assert (missing.value.kind, missing.value.name) == ("dataset", DS.value)
    (tmp / "err").write_text(f"cannot resume: '{DS.value}' does not have any resumable receive state to abort\n")
    with pytest.raises(StateConflict):
        await side.abort_receive(DS)

    (tmp / "exit").write_text("0")
    (tmp / "err").write_text("")
    (tmp / "out").write_text(TOKEN + "\n")
    assert await side.resume_token(DS) == ResumeToken(TOKEN)
    assert recorded(tmp) == ["get", "-H", "-p", "-o", "value", "receive_resume_token", DS.value]
    (tmp / "out").write_text("-\n")
    assert await side.resume_token(DS) is None


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.GZIP, Compression.ZSTD])
async def test_ssh_receive_pipes_our_writes_through_the_wire_compression(fake_ssh, compression):
    tmp, executor = fake_ssh
    side = SshReplica(Remote.parse("root@127.0.0.1"), executor)
    data = os.urandom(3 << 20)
    pipe = await side.open_receive(ReceiveSpec(DS, resumable=True), compression)
    for i in range(0, len(data), 1 << 20):
        await pipe.write(data[i:i + (1 << 20)])
    assert await pipe.finish() == f"{DS.value}@s1"
    assert (tmp / "stdin").read_bytes() == data
    assert recorded(tmp) == commands.receive(ReceiveSpec(DS, resumable=True))[1:]


async def test_ssh_receive_failure_is_the_remote_zfs_error(fake_ssh):
    tmp, executor = fake_ssh
    (tmp / "exit").write_text("1")
    (tmp / "err").write_text(f"cannot receive new filesystem stream: destination '{DS.value}' exists\n"
                             "must specify -F to overwrite it\n")
    pipe = await SshReplica(Remote.parse("root@127.0.0.1"), executor).open_receive(ReceiveSpec(DS),
                                                                                   Compression.GZIP)
    await pipe.write(b"x" * 1000)
    with pytest.raises(AlreadyExists) as exc:
        await pipe.finish()
    assert (exc.value.kind, exc.value.name) == ("dataset", DS.value)


async def test_ssh_connection_failure_names_the_remote(tmp_path):
    ssh = script(tmp_path / "ssh", 'echo "root@10.9.9.9: Permission denied (publickey)." >&2; exit 255\n')
    side = SshReplica(Remote.parse("root@10.9.9.9"), ZfsExecutor(ssh=ssh))
    with pytest.raises(ZfsUnavailable) as exc:
        await side.snapshots(DS)
    assert exc.value.reason == "ssh to root@10.9.9.9: root@10.9.9.9: Permission denied (publickey)."


# ---- HTTP ----

REMOTE = Remote.parse("http://127.0.0.1:8545")


def rpc_answer(request: httpx.Request, result=None, error=None) -> httpx.Response:
    body = json.loads(request.content)
    out = {"jsonrpc": "2.0", "id": body["id"]}
    out.update({"error": error} if error is not None else {"result": result})
    return httpx.Response(200, json=out)


class Remote_:
    """A stand-in zfsapi: records (method, params, Authorization) and answers from `answers[method]`."""

    def __init__(self, answers, tokens=("t1", "t2")):
        self.answers, self.tokens, self.calls = answers, list(tokens), []
        self.valid: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        auth = request.headers.get("authorization")
        self.calls.append((body["method"], body["params"], auth))
        if body["method"] == "auth_login":
            if body["params"] != {"username": "repl", "password": "s3cret pw"}:
                return rpc_answer(request, error={"code": -32003, "message": "Invalid credentials", "data": {}})
            token = self.tokens.pop(0)
            self.valid = {token}
            return rpc_answer(request, {"token": token, "token_type": "Bearer", "expires_in": 1800})
        if auth is not None and auth.removeprefix("Bearer ") not in self.valid | {"fixed"}:
            return rpc_answer(request, error={"code": -32002, "message": "Invalid token", "data": {}})
        answer = self.answers[body["method"]]
        return answer(request) if callable(answer) else rpc_answer(request, answer)


def replica(server, **credentials) -> HttpReplica:
    transport = server if isinstance(server, httpx.AsyncBaseTransport) else httpx.MockTransport(server)
    client = httpx.AsyncClient(transport=transport, timeout=30)
    return HttpReplica(REMOTE, client, ZfsExecutor(), **(credentials or {"token": "fixed"}))


LISTED = {"dataset": "tank/a", "snapshots": ["s1"],
          "details": [{"name": "tank/a@s1", "guid": 11, "createtxg": 7, "creation": 1, "used": 0}]}


async def test_http_logs_in_and_logs_in_again_when_the_token_is_refused():
    server = Remote_({"snapshot_list": LISTED})
    side = replica(server, username="repl", password="s3cret pw")
    assert await side.snapshots(DatasetName.parse("tank/a")) == [Snapshot("tank/a@s1", 11, 7)]
    assert await side.snapshots(DatasetName.parse("tank/a")) is not None
    server.valid = set()  # the token expired
    await side.snapshots(DatasetName.parse("tank/a"))
    assert [(m, a) for m, _, a in server.calls] == [
        ("auth_login", None), ("snapshot_list", "Bearer t1"), ("snapshot_list", "Bearer t1"),
        ("snapshot_list", "Bearer t1"), ("auth_login", None), ("snapshot_list", "Bearer t2")]
    assert server.calls[1][1] == {"dataset": "tank/a", "recursive": False}


async def test_http_wrong_password_is_unavailable_and_never_says_the_password():
    side = replica(Remote_({}), username="repl", password="wrong pw")
    with pytest.raises(ZfsUnavailable) as exc:
        await side.snapshots(DatasetName.parse("tank/a"))
    assert exc.value.reason == "zfsapi at http://127.0.0.1:8545: it refused the configured username and password"


async def test_http_fixed_token_and_minted():
    server = Remote_({"snapshot_list": LISTED})
    await replica(server, token="fixed").snapshots(DatasetName.parse("tank/a"))
    minted = iter(["m1", "m2"])
    side = replica(server, mint=lambda: next(minted))
    server.valid = {"m1"}
    await side.snapshots(DatasetName.parse("tank/a"))
    await side.snapshots(DatasetName.parse("tank/a"))
    server.valid = {"m2"}  # the minted token expired: the next one is made
    await side.snapshots(DatasetName.parse("tank/a"))
    assert [a for _, _, a in server.calls] == ["Bearer fixed", "Bearer m1", "Bearer m1", "Bearer m1", "Bearer m2"]
    with pytest.raises(ZfsUnavailable) as exc:
        await replica(server, token="revoked-token-xyz").snapshots(DatasetName.parse("tank/a"))
    assert "revoked-token-xyz" not in str(exc.value) and "Invalid token" in exc.value.reason
    assert len(server.calls) == 6  # a fixed token is not retried
    with pytest.raises(ValueError):
        replica(server, username=None, password=None, token=None)  # never without credentials


async def test_http_every_call_carries_credentials():
    """No call relies on the remote's passwordless loopback: the HttpReplica cannot be made without any."""
    with pytest.raises(ValueError):
        HttpReplica(REMOTE, httpx.AsyncClient(), ZfsExecutor())


async def test_http_unreachable_is_unavailable():
    def refuse(request):
        raise httpx.ConnectError("All connection attempts failed", request=request)

    with pytest.raises(ZfsUnavailable) as exc:
        await replica(refuse).snapshots(DatasetName.parse("tank/a"))
    assert exc.value.reason == "zfsapi at http://127.0.0.1:8545: ConnectError: All connection attempts failed"


def missing(request):
    return rpc_answer(request, error={"code": -32010, "message": "Dataset not found: tank/a",
                                      "data": {"kind": "dataset", "name": "tank/a"}})


async def test_http_side_methods():
    holds = []

    def hold(request):
        holds.append(json.loads(request.content)["params"])
        return rpc_answer(request, error={"code": -32011, "message": "Hold already exists: tank/a@s1",
                                          "data": {"kind": "hold", "name": "tank/a@s1"}})

    def release(request):
        return rpc_answer(request, error={"code": -32010, "message": "Hold not found: tank/a@s1",
                                          "data": {"kind": "hold", "name": "tank/a@s1"}})

    props = {"dataset": "tank/a", "properties": {"receive_resume_token": TOKEN}}
    server = Remote_({"snapshot_list": missing, "dataset_get_properties": props, "snapshot_hold": hold,
                      "snapshot_release": release, "receive_abort": {"dataset": "tank/a", "aborted": True}})
    side = replica(server)
    ds, snap, tag = DatasetName.parse("tank/a"), SnapshotName.parse("tank/a@s1"), HoldTag.parse("zfsapi:replication")
    assert await side.snapshots(ds) is None
    assert await side.resume_token(ds) == ResumeToken(TOKEN)
    props["properties"]["receive_resume_token"] = "-"
    assert await side.resume_token(ds) is None
    await side.hold(snap, tag)
    await side.release(snap, tag)
    await side.abort_receive(ds)
    assert holds == [{"dataset": "tank/a", "snapshot": "s1", "tag": "zfsapi:replication"}]
    assert [(m, p) for m, p, _ in server.calls][1:] == [
        ("dataset_get_properties", {"dataset": "tank/a", "property": "receive_resume_token"}),
        ("dataset_get_properties", {"dataset": "tank/a", "property": "receive_resume_token"}),
        ("snapshot_hold", {"dataset": "tank/a", "snapshot": "s1", "tag": "zfsapi:replication"}),
        ("snapshot_release", {"dataset": "tank/a", "snapshot": "s1", "tag": "zfsapi:replication"}),
        ("receive_abort", {"dataset": "tank/a"})]


@pytest.mark.parametrize("code, data, expected", [
    (-32010, {"kind": "snapshot", "name": "t/a@s"}, NotFound("snapshot", "t/a@s")),
    (-32011, {"kind": "dataset", "name": "t/a"}, AlreadyExists("dataset", "t/a")),
    (-32012, {"name": "t/a", "reason": "has children", "dependents": ["t/a/b"]},
     HasDependents("t/a", "has children", ["t/a/b"])),
    (-32012, {"name": "t/a", "reason": "mounted and in use", "dependents": []}, Busy("t/a", "mounted and in use")),
    (-32013, {"command": ["zfs", "receive", "t/a"], "exit_code": 1, "stderr": "destination t/a has been modified"},
     ZfsCommandFailed(["zfs", "receive", "t/a"], 1, "destination t/a has been modified")),
    (-32014, {"reason": "module not loaded"}, ZfsUnavailable("zfsapi at X: module not loaded")),
    (-32015, {"reason": "diverged", "newer": ["t/a@x"]}, StateConflict("diverged", newer=["t/a@x"])),
    (-32004, {"method": "stream_init", "dataset": "t/a", "reason": "outside your scope"},
     PermissionDenied("stream_init", "t/a", "zfsapi at X: outside your scope")),
    (-32602, {"param": "target_dataset", "reason": "too long"},
     InvalidArgument("target_dataset", "zfsapi at X: too long")),
    (-32001, {}, ZfsUnavailable("zfsapi at X: Authentication required (see replication.remotes in the config)")),
    (-32603, {}, ZfsUnavailable("zfsapi at X: Authentication required (-32603)")),
])
def test_remote_errors_are_the_domain_errors(code, data, expected):
    message = "Authentication required"
    error = remote_error(ErrorObject(code, message, data), "zfsapi at X")
    assert type(error) is type(expected) and error.message == expected.message
    assert vars(error) == vars(expected)


class StreamServer(httpx.AsyncBaseTransport):
    """stream_init, then POST /stream/{id}: the body is collected (decoded per Content-Encoding) and answered
    with success; or, given an `answer`, answered with it after the first chunk (the rest is never read)."""

    sid = "ab" * 16

    def __init__(self, received: list[bytes], answer=None) -> None:
        self.received, self.answer = received, answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            body = json.loads(await request.aread())
            assert body["method"] == "stream_init"
            self.received.append(json.dumps(body["params"]).encode())
            return rpc_answer(request, {"stream_id": self.sid, "url": f"/stream/{self.sid}", "method": "POST",
                                        "expires_at": "x"})
        assert request.url.path == f"/stream/{self.sid}"
        assert request.headers["content-type"] == "application/octet-stream"
        if self.answer is not None:
            async for _ in request.stream:
                break
            return httpx.Response(500, json=self.answer)
        raw = b"".join([chunk async for chunk in request.stream])
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        self.received.append(raw)
        return httpx.Response(200, json={"success": True, "dataset": "tank/b", "snapshot": "tank/b@s1",
                                         "bytes_received": len(raw)})


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.GZIP])
async def test_http_receive_streams_what_we_write(compression):
    received: list[bytes] = []
    side = replica(StreamServer(received))
    data = os.urandom(5 << 20)
    pipe = await side.open_receive(ReceiveSpec(DatasetName.parse("tank/b"), force=True,
                                               resume_token=ResumeToken(TOKEN)), compression)
    for i in range(0, len(data), 1 << 20):
        await pipe.write(data[i:i + (1 << 20)])
    assert await pipe.finish() == "tank/b@s1"
    await pipe.kill()
    assert json.loads(received[0]) == {"operation": "receive", "target_dataset": "tank/b", "force": True,
                                       "resumable": True, "resume_token": TOKEN}
    assert received[1] == data


async def test_http_receive_failure_carries_the_resume_token():
    answer = {"success": False, "receive_resume_token": TOKEN,
              "error": {"code": -32013, "message": "ZFS command failed", "data": {
                  "command": ["zfs", "receive", "-s", "tank/b"], "exit_code": 1, "stderr": "checksum mismatch"}}}
    pipe = await replica(StreamServer([], answer)).open_receive(ReceiveSpec(DatasetName.parse("tank/b")),
                                                                Compression.NONE)
    with pytest.raises(ReceiveFailed) as exc:  # the remote answered before we finished: a write says so
        for _ in range(100):
            await pipe.write(b"x" * 65536)
    assert (exc.value.resume_token, exc.value.stderr) == (TOKEN, "checksum mismatch")
    await pipe.kill()


async def test_http_receive_refused_by_the_remote_guard():
    answer = {"success": False, "error": "Host not allowed"}
    pipe = await replica(StreamServer([], answer)).open_receive(ReceiveSpec(DatasetName.parse("tank/b")),
                                                                Compression.NONE)
    await pipe.write(b"x")
    with pytest.raises(ZfsUnavailable) as exc:
        await pipe.finish()
    assert exc.value.reason == "zfsapi at http://127.0.0.1:8545: HTTP 500 to POST /stream, not a zfsapi answer"


# ---- our POST /stream with Content-Encoding ----

@pytest.fixture
def receiving_container(tmp_path):
    """zfs is a stand-in that copies what zfs receive reads to tmp/received."""
    zfs = script(tmp_path / "zfs", f"""cat > {tmp_path}/received
for last; do :; done; echo "receiving full stream of src@s1 into $last@s1"
""")
    return build_container(load_settings(environ={}, overrides={"zfs": {"zfs": zfs}, "rate_limit": {"enabled": False}}))


@pytest.mark.parametrize("encoding", ["gzip", "zstd", None])
async def test_post_stream_decodes_its_content_encoding(receiving_container, tmp_path, encoding):
    import subprocess

    data = os.urandom(2 << 20)
    body = subprocess.run([encoding, "-c"], input=data, capture_output=True, check=True).stdout if encoding else data
    async with http_client(http_app(receiving_container)) as c:
        init = (await c.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "stream_init",
                                         "params": {"operation": "receive", "target_dataset": "tank/b"}})).json()
        headers = {"Content-Type": "application/octet-stream", **({"Content-Encoding": encoding} if encoding else {})}
        r = await c.post(init["result"]["url"], content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["snapshot"], r.json()["bytes_received"]) == ("tank/b@s1", len(body))
    assert (tmp_path / "received").read_bytes() == data


async def test_post_stream_refuses_an_unknown_content_encoding(receiving_container, tmp_path):
    async with http_client(http_app(receiving_container)) as c:
        r = await c.post("/stream/" + "0" * 32, content=b"x",
                         headers={"Content-Type": "application/octet-stream", "Content-Encoding": "br"})
    assert r.status_code == 415
    assert r.json()["error"]["data"] == {"param": "Content-Encoding", "reason": "'br' is not supported: gzip, zstd or none"}
    assert not (tmp_path / "received").exists()


@pytest.mark.parametrize("state, expected", [
    ("failed", AlreadyExists("dataset", "tank/b")),
    ("active", ZfsUnavailable("zfsapi at http://127.0.0.1:8545: ReadError: connection reset by peer")),
])
async def test_http_receive_cut_off_asks_the_remote_what_happened(state, expected):
    """The remote's early answer can be lost when it closes a connection we still write to: the session it
    recorded says why (a stream that is still active there means the connection itself failed)."""
    sid = "cd" * 16
    stderr = "cannot receive new filesystem stream: destination 'tank/b' exists\nmust specify -F to overwrite it"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/":
            raise httpx.ReadError("connection reset by peer", request=request)
        method = json.loads(request.content)["method"]
        if method == "stream_init":
            return rpc_answer(request, {"stream_id": sid, "url": f"/stream/{sid}", "method": "POST", "expires_at": ""})
        assert method == "stream_list"
        return rpc_answer(request, {"sessions": [{"stream_id": "ef" * 16, "state": "failed", "error": "other"},
                                                 {"stream_id": sid, "state": state, "error": stderr}]})

    pipe = await replica(handler).open_receive(ReceiveSpec(DatasetName.parse("tank/b")), Compression.NONE)
    with pytest.raises(type(expected)) as exc:
        await pipe.write(b"x")
        await pipe.finish()
    assert exc.value.message == expected.message
    await pipe.kill()
