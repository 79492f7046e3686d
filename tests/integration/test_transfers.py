"""Send/receive on real OpenZFS: estimates, send files with each compression, confinement (per user too), HTTP
streams round trip (full and incremental), resume after a cut, forged/foreign tokens, a receive into a dataset
being received, expired and reused stream ids, client disconnects (the zfs child gone; the time it took is
printed, never asserted)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import Rpc, free_port, http_client
from zfsapi.adapters.inbound.jsonrpc.errors import to_rpc_error
from zfsapi.application.transfers import ReceiveFromFile, SendToFile
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import LOCALHOST, Principal, Role
from zfsapi.domain.errors import InvalidArgument, ZfsCommandFailed
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.transfer import Compression, ReceiveSpec, SendSpec

from .conftest import zfs, zfs_processes


def send_digest(*argv: str) -> str:
    """sha256 of `zfs send ARGV` (the reference stream)."""
    out = subprocess.run(["zfs", "send", *argv], capture_output=True, check=True, timeout=600).stdout
    return hashlib.sha256(out).hexdigest()


def same_snapshot(a: str, b: str) -> None:
    """A received snapshot is the sent one: ZFS keeps the snapshot guid, and the files hash the same. (The
    streams of the two cannot be compared byte for byte: a stream's header names its dataset.)"""
    guid = lambda s: zfs("zfs", "get", "-H", "-p", "-o", "value", "guid", s).stdout.strip()  # noqa: E731
    assert guid(a) == guid(b)

    def tree(snap: str) -> dict[str, str]:
        ds, short = snap.split("@")
        root = os.path.join(zfs("zfs", "get", "-H", "-o", "value", "mountpoint", ds).stdout.strip(), ".zfs",
                            "snapshot", short)
        return {f: hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest() for f in os.listdir(root)}

    assert tree(a) == tree(b)


def fill(dataset: str, mib: int, name: str = "data.bin") -> None:
    mp = zfs("zfs", "get", "-H", "-o", "value", "mountpoint", dataset).stdout.strip()
    with open(os.path.join(mp, name), "wb") as f:
        f.write(os.urandom(mib << 20))
    zfs("sync")


@pytest.fixture
def xfer_dir(tmp_path):
    d = tmp_path / "transfers"
    d.mkdir()
    return str(d)


@pytest.fixture
def container(pool, xfer_dir):
    return build_container(load_settings(environ={}, overrides={"transfer": {"directories": [xfer_dir]},
                                                                "rate_limit": {"enabled": False}}))


@pytest.fixture
async def client(container):
    async with http_client(http_app(container)) as c:
        yield c


@pytest.fixture
def rpc(client) -> Rpc:
    return Rpc(client)


@pytest.fixture
def target(pool, dataset):
    name = dataset + "-recv"
    yield name
    zfs("zfs", "destroy", "-r", name, check=False)


async def test_send_estimate_full_incremental_and_from_bookmark(rpc, dataset):
    fill(dataset, 2)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    fill(dataset, 1, "more.bin")
    zfs("zfs", "snapshot", f"{dataset}@s2")
    zfs("zfs", "bookmark", f"{dataset}@s1", f"{dataset}#b1")
    full = await rpc("send_estimate", dataset=dataset, snapshot="s2")
    assert full["size_bytes"] > 3 << 20 and full["size_human"].endswith("M")
    inc = await rpc("send_estimate", dataset=dataset, snapshot="s2", from_snapshot="s1")
    assert (1 << 20) < inc["size_bytes"] < full["size_bytes"]
    bm = await rpc("send_estimate", dataset=dataset, snapshot="s2", from_snapshot="#b1")
    assert bm["size_bytes"] == inc["size_bytes"]
    err = await rpc("send_estimate", error=True, dataset=dataset, snapshot="nope")
    assert err["code"] == -32010


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
async def test_file_round_trip(rpc, dataset, target, xfer_dir, compression):
    fill(dataset, 2)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    r = await rpc("send_to_file", dataset=dataset, snapshot="s1", output_file="s1.zfs", compression=compression)
    path = r["output_file"]
    assert path.startswith(xfer_dir) and os.path.getsize(path) == r["size_bytes"]
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == r["sha256"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    # never overwrite
    again = await rpc("send_to_file", error=True, dataset=dataset, snapshot="s1", output_file="s1.zfs",
                      compression=compression)
    assert again["code"] == -32011
    got = await rpc("receive_from_file", dataset=target, input_file=os.path.basename(path))
    assert got["snapshot"] == f"{target}@s1"
    same_snapshot(f"{target}@s1", f"{dataset}@s1")


@pytest.mark.parametrize("path", ["../escape.zfs", "/etc/escape.zfs", "sub/../../x.zfs", "link/x.zfs", "dir-link"])
async def test_file_paths_are_confined(rpc, dataset, xfer_dir, path):
    zfs("zfs", "snapshot", f"{dataset}@s1")
    os.symlink("/tmp", os.path.join(xfer_dir, "link"))
    os.symlink("/tmp/zfsapi-victim", os.path.join(xfer_dir, "dir-link"))
    err = await rpc("send_to_file", error=True, dataset=dataset, snapshot="s1", output_file=path)
    # refused as a path; a symlink as the final component is refused as such, never followed
    assert err["code"] == -32602 and err["data"]["param"] == "output_file", err
    assert not os.path.exists("/tmp/zfsapi-victim") and not os.path.exists("/tmp/x.zfs")


async def test_a_failed_send_leaves_no_file(rpc, dataset, xfer_dir):
    zfs("zfs", "snapshot", f"{dataset}@s1")
    err = await rpc("send_to_file", error=True, dataset=dataset, snapshot="s1", from_snapshot="missing",
                    output_file="inc.zfs", compression="gzip")
    assert (err["code"], err["data"]["name"]) == (-32010, f"{dataset}@missing"), err
    assert os.listdir(xfer_dir) == []


async def test_send_files_do_not_cross_scopes(container, pool, dataset, target, xfer_dir):
    """Operator A, scoped to the source, sends to a file; operator B, scoped elsewhere, is refused it by the
    path rule itself (-32602 naming input_file, not -32010): the refusal comes before the filesystem is
    touched, so B learns nothing of A's files, not even whether one exists. A receives it, and so does an
    admin without a scope, by `A/<file>`."""
    fill(dataset, 1)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    uc = container.use_cases()
    a, b = Principal("opa", Role.OPERATOR, (dataset,)), Principal("opb", Role.OPERATOR, (f"{pool}/b",))
    sent = await uc[SendToFile].execute(who=a, spec=SendSpec(SnapshotName.parse(f"{dataset}@s1")),
                                        output_file="s1.zfs", compression=Compression.NONE)
    assert sent.path == os.path.join(xfer_dir, "opa", "s1.zfs")
    assert oct(os.stat(os.path.join(xfer_dir, "opa")).st_mode & 0o777) == "0o700"
    receive = uc[ReceiveFromFile]
    into = ReceiveSpec(DatasetName.parse(target))
    with pytest.raises(InvalidArgument) as exc:
        await receive.execute(who=b, spec=into, input_file=sent.path, compression=None)
    assert exc.value.param == "input_file" and to_rpc_error(exc.value, "receive_from_file").code == -32602
    assert zfs("zfs", "list", target, check=False).returncode != 0
    _, snapshot, _ = await receive.execute(who=a, spec=into, input_file="s1.zfs", compression=None)
    assert snapshot == f"{target}@s1"
    zfs("zfs", "destroy", "-r", target)
    _, snapshot, _ = await receive.execute(who=LOCALHOST, spec=into, input_file="opa/s1.zfs", compression=None)
    assert snapshot == f"{target}@s1"


async def test_a_send_that_fails_behind_gzip_is_a_failure(container, dataset, xfer_dir):
    """The zfs send dies mid-stream (killed); gzip exits 0 on what it got: the result is still a failure."""
    fill(dataset, 8)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    send = container.use_cases()[SendToFile]
    task = asyncio.create_task(send.execute(who=LOCALHOST, spec=SendSpec(SnapshotName.parse(f"{dataset}@s1")),
                                            output_file="killed.zfs", compression=Compression.GZIP))
    deadline = time.monotonic() + 60  # generous: the guest is emulated and the machine may be busy
    while not subprocess.run(["pgrep", "-f", "zfs send"], capture_output=True, text=True).stdout.split():
        assert not task.done() and time.monotonic() < deadline, "zfs send never started"
        await asyncio.sleep(0.02)
    subprocess.run(["pkill", "-9", "-f", "zfs send"])
    with pytest.raises(ZfsCommandFailed) as exc:
        await task
    assert type(exc.value) is ZfsCommandFailed and exc.value.command[:2] == ["zfs", "send"]
    assert exc.value.exit_code == -9  # killed: gzip's clean exit does not hide it
    assert os.listdir(xfer_dir) == []


async def test_stream_round_trip_full_and_incremental(rpc, client, dataset, target):
    fill(dataset, 3)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    fill(dataset, 1, "more.bin")
    zfs("zfs", "snapshot", f"{dataset}@s2")
    for snap, origin in (("s1", None), ("s2", "s1")):
        out = await rpc("stream_init", operation="send", dataset=dataset, snapshot=snap, from_snapshot=origin)
        assert out["method"] == "GET" and len(out["stream_id"]) == 32
        r = await client.get(out["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        stream = r.content
        ref = send_digest("-L", "-e", "-c", *(["-i", f"{dataset}@{origin}"] if origin else []), f"{dataset}@{snap}")
        assert hashlib.sha256(stream).hexdigest() == ref
        inn = await rpc("stream_init", operation="receive", target_dataset=target)
        r = await client.post(inn["url"], content=stream, headers={"Content-Type": "application/octet-stream"})
        body = r.json()
        assert r.status_code == 200 and body["success"] and body["bytes_received"] == len(stream), body
        assert body["snapshot"] == f"{target}@{snap}"
    same_snapshot(f"{target}@s2", f"{dataset}@s2")
    sessions = (await rpc("stream_list"))["sessions"]
    assert [s["state"] for s in sessions] == ["done"] * 4
    assert sessions[0]["bytes"] > 3 << 20


async def test_stream_ids_are_single_use_and_expire(rpc, client, dataset):
    zfs("zfs", "snapshot", f"{dataset}@s1")
    out = await rpc("stream_init", operation="send", dataset=dataset, snapshot="s1")
    assert (await client.get(out["url"])).status_code == 200
    reused = await client.get(out["url"])
    assert reused.status_code == 409 and reused.json()["error"]["code"] == -32015
    short = await rpc("stream_init", operation="send", dataset=dataset, snapshot="s1", ttl=1)
    await asyncio.sleep(1.2)
    expired = await client.get(short["url"])
    assert expired.status_code == 409 and expired.json()["error"]["data"]["state"] == "expired"
    assert (await client.get("/stream/" + "0" * 32)).status_code == 404
    bad = await rpc("stream_init", error=True, operation="send", dataset=dataset, snapshot="missing")
    assert bad["code"] == -32010  # validated before any stream exists


async def test_a_second_receive_into_a_dataset_being_received(rpc, client, dataset, target):
    """While one receive is halfway into `target`, a second one into it is refused; the first then completes."""
    fill(dataset, 4)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    stream = (await client.get((await rpc("stream_init", operation="send", dataset=dataset, snapshot="s1"))["url"])).content
    a = await rpc("stream_init", operation="receive", target_dataset=target)
    b = await rpc("stream_init", operation="receive", target_dataset=target)
    rest = asyncio.Event()

    async def halves():
        yield stream[: len(stream) // 2]
        await rest.wait()
        yield stream[len(stream) // 2:]

    headers = {"Content-Type": "application/octet-stream"}
    first = asyncio.create_task(client.post(a["url"], content=halves(), headers=headers))
    deadline = time.monotonic() + 60  # generous: the guest is emulated and the machine may be busy
    while zfs("zfs", "list", "-H", "-o", "name", target, check=False).returncode != 0:
        assert not first.done() and time.monotonic() < deadline, "the first receive never created its target"
        await asyncio.sleep(0.05)
    second = (await client.post(b["url"], content=stream, headers=headers)).json()
    rest.set()
    done = (await first).json()
    assert done["success"], done
    assert not second["success"] and second["error"]["code"] == -32011, second
    assert second["error"]["data"] == {"kind": "dataset", "name": target}
    same_snapshot(f"{target}@s1", f"{dataset}@s1")


async def test_forged_and_foreign_resume_tokens(rpc, dataset, pool):
    zfs("zfs", "snapshot", f"{dataset}@s1")
    forged = await rpc("stream_init", error=True, operation="send", resume_token="1-deadbeef-ff-0011223344")
    assert forged["code"] == -32015
    junk = await rpc("stream_init", error=True, operation="send", resume_token="not a token; rm -rf /")
    assert junk["code"] == -32602


# ---- a real server: disconnects and resume -----------------------------------------------------------------

@pytest.fixture
def server(pool, xfer_dir, tmp_path):
    port = free_port()
    env = {**os.environ, "ZFSAPI_SERVER__HTTP__PORT": str(port), "ZFSAPI_RATE_LIMIT__ENABLED": "false",
           "ZFSAPI_STATE_DIR": str(tmp_path / "state")}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url + "/health", timeout=30)
            break
        except httpx.TransportError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(30)
    log.close()


def call(url: str, method: str, **params):
    r = httpx.post(url + "/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1}, timeout=120)
    return r.json()


def zfs_children(verb: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", f"zfs {verb}"], capture_output=True, text=True).stdout.split()


def wait_gone(verb: str, deadline: float = 60.0) -> float:
    """Wait (generously: the guest is emulated and the machine may be busy) until no `zfs VERB` child is left;
    print how long it took as a figure, never assert on it."""
    t = time.monotonic()
    while zfs_children(verb):
        assert time.monotonic() - t < deadline, f"zfs {verb} still running after {deadline:.0f} s"
        time.sleep(0.02)
    took = time.monotonic() - t
    print(f"zfs {verb} gone {took:.2f} s after its client went away")
    return took


def settled(url: str, stream_id: str, deadline: float = 60.0) -> dict:
    """The session once it has left `active` (its end is written after its child is reaped): waited for
    generously, the figure printed."""
    t = time.monotonic()
    while True:
        session = {s["stream_id"]: s for s in call(url, "stream_list")["result"]["sessions"]}[stream_id]
        if session["state"] != "active" or time.monotonic() - t > deadline:
            print(f"session {session['state']} {time.monotonic() - t:.2f} s after its child was gone")
            return session
        time.sleep(0.05)


def test_streams_through_the_server_move_every_byte(server, dataset, target):
    """Through uvicorn, GET /stream splices the send's pipe into the socket as HTTP chunks and POST /stream
    splices the body from the socket into zfs receive (after a client's `Expect: 100-continue` is answered):
    the snapshot arrives whole, each session counts every byte, and the POST's connection ends with it."""
    fill(dataset, 8)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    out = call(server, "stream_init", operation="send", dataset=dataset, snapshot="s1")["result"]
    r = httpx.get(server + out["url"], timeout=300)
    assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
    stream = r.content
    inn = call(server, "stream_init", operation="receive", target_dataset=target)["result"]
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=120) as s:
        s.sendall(f"POST {inn['url']} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Length: {len(stream)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += s.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(stream)
        answer = b""
        while chunk := s.recv(65536):  # the server closes the connection after its answer
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower(), head
    assert json.loads(body)["success"], body
    same_snapshot(f"{target}@s1", f"{dataset}@s1")
    sessions = {s["stream_id"]: s for s in call(server, "stream_list")["result"]["sessions"]}
    assert (sessions[out["stream_id"]]["state"], sessions[out["stream_id"]]["bytes"]) == ("done", len(stream))
    assert (sessions[inn["stream_id"]]["state"], sessions[inn["stream_id"]]["bytes"]) == ("done", len(stream))


def test_a_refused_post_body_is_answered(server, dataset, target):
    """A receive that fails while its body is spliced from the socket answers with zfs's error (the rest of
    the body is read and dropped first, as uvicorn would have); a stream id refused before the receive starts
    (the body is still uvicorn's then) is answered as before."""
    garbage = os.urandom(16 << 20)  # not a send stream: zfs receive refuses it at once
    inn = call(server, "stream_init", operation="receive", target_dataset=target)["result"]
    r = httpx.post(server + inn["url"], content=garbage, headers={"Content-Type": "application/octet-stream"},
                   timeout=120)
    assert (r.status_code, r.json()["success"], r.json()["error"]["code"]) == (500, False, -32013), r.text
    again = httpx.post(server + inn["url"], content=garbage, headers={"Content-Type": "application/octet-stream"},
                       timeout=120)
    assert (again.status_code, again.json()["error"]["code"]) == (409, -32015), again.text
    wait_gone("receive")
    assert zfs("zfs", "list", target, check=False).returncode != 0


def test_disconnect_mid_get_kills_the_send(server, dataset):
    fill(dataset, 48)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    out = call(server, "stream_init", operation="send", dataset=dataset, snapshot="s1")["result"]
    with httpx.stream("GET", server + out["url"], timeout=60) as r:
        it = r.iter_raw(1 << 16)
        next(it)
        assert zfs_children("send")
    wait_gone("send")
    session = settled(server, out["stream_id"])
    assert session["state"] == "failed" and 0 < session["bytes"] < 48 << 20


def test_disconnect_mid_post_leaves_a_token_and_resume_completes(server, dataset, target):
    fill(dataset, 24)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    out = call(server, "stream_init", operation="send", dataset=dataset, snapshot="s1")["result"]
    stream = httpx.get(server + out["url"], timeout=300).content
    inn = call(server, "stream_init", operation="receive", target_dataset=target)["result"]

    def partial():
        yield stream[: len(stream) // 2]
        time.sleep(0.5)
        raise RuntimeError("cut")

    with pytest.raises(RuntimeError, match="cut"):
        httpx.post(server + inn["url"], content=partial(), headers={"Content-Type": "application/octet-stream"},
                   timeout=60)
    wait_gone("receive")
    token = zfs("zfs", "get", "-H", "-o", "value", "receive_resume_token", target).stdout.strip()
    assert token not in ("", "-")
    # the token continues s1: asking it for another snapshot is refused; as it is, it resumes
    wrong = call(server, "stream_init", operation="send", dataset=dataset, snapshot="s0", resume_token=token)
    assert wrong["error"]["code"] == -32015, wrong
    assert wrong["error"]["data"]["token_snapshot"] == f"{dataset}@s1"
    res = call(server, "stream_init", operation="send", resume_token=token)["result"]
    rest = httpx.get(server + res["url"], timeout=300).content
    inn2 = call(server, "stream_init", operation="receive", target_dataset=target, resume_token=token)["result"]
    done = httpx.post(server + inn2["url"], content=rest, headers={"Content-Type": "application/octet-stream"},
                      timeout=300).json()
    assert done["success"], done
    same_snapshot(f"{target}@s1", f"{dataset}@s1")


def test_stream_cancel_stops_an_active_send(server, dataset):
    fill(dataset, 48)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    out = call(server, "stream_init", operation="send", dataset=dataset, snapshot="s1")["result"]
    with httpx.stream("GET", server + out["url"], timeout=60) as r:
        it = r.iter_raw(1 << 16)
        next(it)
        assert call(server, "stream_cancel", stream_id=out["stream_id"])["result"]["cancelled"]
        with pytest.raises(httpx.HTTPError):
            for _ in it:  # the response is cut off, never ended cleanly
                pass
    wait_gone("send")
    assert settled(server, out["stream_id"])["state"] == "cancelled"


@pytest.fixture
async def jobs_rpc(pool, xfer_dir, tmp_path):
    """A server's app with its job runner running (the job store in a temporary state_dir)."""
    c = build_container(load_settings(environ={}, overrides={"transfer": {"directories": [xfer_dir]},
                                                              "rate_limit": {"enabled": False},
                                                              "state_dir": str(tmp_path / "state")}))
    runner = c.job_runner()
    await runner.start()
    try:
        async with http_client(http_app(c)) as client:
            yield Rpc(client)
    finally:
        await runner.stop()


async def test_background_file_transfers_report_progress_and_leave_only_whole_files(jobs_rpc, dataset, target,
                                                                                    xfer_dir):
    fill(dataset, 3)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    started = await jobs_rpc("send_to_file", dataset=dataset, snapshot="s1", output_file="bg.zfs",
                             compression="gzip", background=True)
    sent = await jobs_rpc("job_wait", job_id=started["job_id"], timeout=300)
    assert sent["state"] == "succeeded", sent
    path = sent["result"]["output_file"]
    assert os.listdir(xfer_dir) == ["bg.zfs.gz"]  # no partial file beside it
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == sent["result"]["sha256"]
    p = sent["progress"]
    print(f"send_to_file job: {p['bytes_done']} of an estimated {p['bytes_total']} bytes")
    assert p["bytes_total"] == (await jobs_rpc("send_estimate", dataset=dataset, snapshot="s1"))["size_bytes"]
    assert p["bytes_done"] >= 3 << 20 and p["phase"] == "sending"

    started = await jobs_rpc("receive_from_file", dataset=target, input_file="bg.zfs.gz", background=True)
    got = await jobs_rpc("job_wait", job_id=started["job_id"], timeout=300)
    assert got["state"] == "succeeded" and got["result"]["snapshot"] == f"{target}@s1", got
    assert got["progress"]["bytes_done"] == got["progress"]["bytes_total"] == os.path.getsize(path)
    same_snapshot(f"{target}@s1", f"{dataset}@s1")


def zfs_sends(snapshot: str) -> list[str]:
    return [str(pid) for pid in zfs_processes("send", snapshot)]


async def test_cancelling_a_background_send_kills_its_zfs_and_leaves_no_file(jobs_rpc, dataset, xfer_dir):
    fill(dataset, 8)
    zfs("zfs", "snapshot", f"{dataset}@s1")
    started = await jobs_rpc("send_to_file", dataset=dataset, snapshot="s1", output_file="cut.zfs",
                             background=True)
    deadline = time.monotonic() + 120  # generous: the guest is emulated and the machine may be busy
    while not (pids := zfs_sends(f"{dataset}@s1")):
        assert time.monotonic() < deadline, "zfs send never started"
        await asyncio.sleep(0.001)
    subprocess.run(["kill", "-STOP", *pids])  # hold it mid-send, so the cancel finds it running
    t0 = time.monotonic()
    assert (await jobs_rpc("job_cancel", job_id=started["job_id"]))["cancelled"] is True
    done = await jobs_rpc("job_wait", job_id=started["job_id"], timeout=120)
    assert done["state"] == "cancelled", done
    while zfs_sends(f"{dataset}@s1"):
        assert time.monotonic() < deadline, "zfs send still running after the cancel"
        await asyncio.sleep(0.05)
    print(f"zfs send reaped {time.monotonic() - t0:.2f} s after job_cancel")
    assert os.listdir(xfer_dir) == []


async def test_a_background_scrub_ends_with_the_scan(jobs_rpc, pool):
    started = await jobs_rpc("pool_scrub_start", pool=pool, background=True)
    done = await jobs_rpc("job_wait", job_id=started["job_id"], timeout=300)
    assert done["state"] == "succeeded", done
    assert done["result"] == {"pool": pool, "scrub": "finished", "errors": 0}
    assert done["progress"]["phase"] == "finished"
