"""`zfsapi jobs` through the real entry point (`python -m zfsapi`) against a real server on a loopback port (in
this process: uvicorn in a thread, the zfs side stubbed): the table, get and cancel, watch to success and to
failure, Ctrl-C cancelling the job or (--detach) leaving it running, and the exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest
import uvicorn
from dependency_injector import providers

from tests.conftest import free_port
from tests.unit.test_cli import zfsapi
from tests.unit.test_transfers_unit import StubZfs
from zfsapi.adapters.inbound.http.peer import PeerAwareHttpTools
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.errors import InvalidArgument

DEADLINE = 60.0


class GatedStub(StubZfs):
    """send_to_file reports 100,000 bytes, then holds until the gate opens (a threading.Event: the server runs in
    another thread); a file name with "fail" in it fails."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    async def sent_file(self, path, root, mark):  # no earlier run of a job wrote the file
        return None

    async def send_to_file(self, spec, path, root, compression, progress=None, mark=None):
        if "fail" in os.path.basename(path):
            raise InvalidArgument("output_file", "the stub fails it")
        if progress is not None:
            progress.add(100_000)
        while not self.gate.is_set():
            await asyncio.sleep(0.02)
        return 10, "ab" * 32


@dataclass
class Live:
    port: int
    url: str
    stub: GatedStub

    def call(self, method: str, **params: Any) -> Any:
        body = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                          timeout=DEADLINE).json()
        assert "result" in body, body
        return body["result"]

    def send(self, output_file: str = "out") -> str:
        return self.call("send_to_file", dataset="tank/a b", snapshot="s1", output_file=output_file,
                         background=True)["job_id"]

    def ended(self, job_id: str) -> dict[str, Any]:
        record = self.call("job_wait", job_id=job_id, timeout=DEADLINE)
        assert record["finished_at"] is not None, record
        return record


@pytest.fixture
def live(tmp_path) -> Iterator[Live]:
    (tmp_path / "files").mkdir()
    c = build_container(load_settings(environ={}, overrides={
        "transfer": {"directories": [str(tmp_path / "files")]}, "state_dir": str(tmp_path / "state")}))
    stub = GatedStub()
    c.zfs.override(providers.Object(stub))
    c.pipelines.override(providers.Object(stub))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(http_app(c), host="127.0.0.1", port=port, loop="asyncio",
                                           http=PeerAwareHttpTools, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + DEADLINE
    while not server.started:
        assert thread.is_alive() and time.monotonic() < end, "the server did not start"
        time.sleep(0.05)
    try:
        yield Live(port, f"http://127.0.0.1:{port}/", stub)
    finally:
        stub.gate.set()
        server.should_exit = True
        thread.join(DEADLINE)


def following(url: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`zfsapi jobs watch ... --url url` started, and the first line it wrote on stderr (it is following then);
    `ended(proc)` gives the rest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    # SIGINT at its default in the child whatever the parent ignores, so Python turns it into KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "jobs", "watch", *args, "--url", url], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    return proc, proc.stderr.readline()


def ended(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Its stdout and the rest of its stderr once it has exited (read through the same buffered files as the
    first line: communicate() would skip what they have read ahead)."""
    proc.wait(DEADLINE)
    assert proc.stdout is not None and proc.stderr is not None
    return proc.stdout.read(), proc.stderr.read()


def test_watch_follows_a_job_to_its_result(live):
    job_id = live.send()
    proc, first = following(live.url, job_id)
    assert first.startswith(f"send_to_file {job_id}: "), first
    live.stub.gate.set()
    out, err = ended(proc)
    assert proc.returncode == 0, err
    assert json.loads(out)["size_bytes"] == 10
    last = err.splitlines()[-1]  # with the rate the server measured
    assert last.startswith(f"send_to_file {job_id}: 97.7 KiB / 120.6 KiB (81%) at ") and last.endswith(", done")


def test_watch_of_a_failed_job_prints_its_error_and_exits_1(live):
    job_id = live.send("fail")  # the job fails (a path outside transfer.directories is refused by the call)
    error = live.ended(job_id)["error"]
    assert (error["code"], error["data"]["param"]) == (-32602, "output_file")
    r = zfsapi("jobs", "watch", job_id, "--url", live.url)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [f"send_to_file {job_id}: 0 B / 120.6 KiB (0%), failed: {error['message']}",
                                     f"zfsapi: {error['message']} (code -32602): {json.dumps(error['data'])}"]


def test_ctrl_c_cancels_the_job_and_exits_130(live):
    job_id = live.send()
    proc, _ = following(live.url, job_id)
    proc.send_signal(signal.SIGINT)
    out, err = ended(proc)
    assert proc.returncode == 130, err
    assert out == "" and err.splitlines()[-1] == f"zfsapi: job {job_id} cancelled"
    assert live.ended(job_id)["state"] == "cancelled"


def test_ctrl_c_with_detach_leaves_the_job_running(live):
    job_id = live.send()
    proc, _ = following(live.url, job_id, "--detach")
    proc.send_signal(signal.SIGINT)
    out, err = ended(proc)
    assert (proc.returncode, out) == (130, f"{job_id}\n"), err
    assert live.call("job_get", job_id=job_id)["state"] in ("queued", "running")
    live.stub.gate.set()
    assert live.ended(job_id)["state"] == "succeeded"


def test_list_get_and_cancel(live, tmp_path):
    first, second = live.send(), live.send("other")
    (tmp_path / "config.yaml").write_text(f"server: {{http: {{port: {live.port}}}}}\n")
    r = zfsapi("jobs", cwd=tmp_path)  # `jobs` alone lists; the URL from ./config.yaml
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["JOB", "ID", "KIND", "STATE", "OWNER", "CREATED", "PROGRESS"]
    assert [row.split()[:2] for row in rows] == [[second, "send_to_file"], [first, "send_to_file"]]
    assert zfsapi("jobs", "list", "--kind", "receive_from_file", "--url", live.url).stdout.split() == header.split()
    r = zfsapi("jobs", "--url", live.url, "list", "--output", "json")  # the server's answer, for programs
    assert [j["job_id"] for j in json.loads(r.stdout)["jobs"]] == [second, first], r.stderr

    r = zfsapi("jobs", "cancel", second, "--url", live.url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["job_id"] == second and json.loads(r.stdout)["cancelled"] is True
    assert live.ended(second)["state"] == "cancelled"
    r = zfsapi("jobs", "list", "--state", "cancelled", "--url", live.url)
    assert [row.split()[:3] for row in r.stdout.splitlines()[1:]] == [[second, "send_to_file", "cancelled"]]

    r = zfsapi("jobs", "get", first, "--url", live.url)
    assert r.returncode == 0 and json.loads(r.stdout)["params"]["dataset"] == "tank/a b"
    for command in ("get", "watch"):
        r = zfsapi("jobs", command, "nope", "--url", live.url)
        assert (r.returncode, r.stderr) == (
            1, 'zfsapi: Job not found: nope (code -32010): {"kind": "job", "name": "nope"}\n')
