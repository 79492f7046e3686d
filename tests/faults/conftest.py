"""Fault drills: real `zfsapi serve` processes on a fake zfs (tests/faults/fake_zfs.py), real redis-server, real
signals, full disks and read-only mounts. Each drill is bounded in time: every wait has a generous deadline and
prints the figure it measured."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import httpx
import pytest
import yaml

from tests.conftest import free_port

T = TypeVar("T")
DEADLINE = 60.0  # seconds: the machine may be busy


def wait_for(what: str, check: Callable[[], T], seconds: float = DEADLINE, log: Path | None = None) -> T:
    """Poll `check()` until it returns something truthy; print how long it took."""
    started = time.monotonic()
    while not (result := check()):
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds:g} s" + ("\n" + log.read_text()[-4000:] if log else ""))
        time.sleep(0.1)
    print(f"{what}: {time.monotonic() - started:.2f} s")
    return result


class FakeZfs:
    """The fake zfs and zpool in a directory of their own, and their knobs."""

    def __init__(self, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        self.dir = where
        for name in ("zfs", "zpool"):
            shutil.copy(Path(__file__).with_name("fake_zfs.py"), where / name)
            (where / name).chmod(0o755)

    def set(self, send_bytes: int | None = None, send_seconds: float | None = None) -> None:
        if send_bytes is not None:
            (self.dir / "send_bytes").write_text(str(send_bytes))
        if send_seconds is not None:
            (self.dir / "send_seconds").write_text(str(send_seconds))

    def sends(self) -> list[str]:
        """The pids of the sends that started (one line each: "pid argv")."""
        log = self.dir / "sends.log"
        return [x for x in log.read_text().splitlines() if not x.startswith("done")] if log.exists() else []

    def running(self) -> list[int]:
        """The pids of fake zfs processes alive now."""
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if str(self.dir).encode() in cmdline and b"/zfs" in cmdline:
                    found.append(int(pid))
        return found


class Serve:
    """One `python -m zfsapi serve --config` process (its own session), with its config, log and helpers."""

    def __init__(self, workdir: Path, config: dict[str, Any], name: str = "server") -> None:
        self.workdir, self.name = workdir, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.config_path = workdir / f"{name}.yaml"
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        cfg = dict(self.config)
        cfg["server"] = {**cfg.get("server", {}), "http": {**cfg.get("server", {}).get("http", {}),
                                                          "port": self.port}}
        self.config_path.write_text(yaml.safe_dump(cfg))

    def start(self) -> Serve:
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZFSAPI_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve", "--config", str(self.config_path)],
                                         env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"{self.name} answers", self._up, log=self.log)
        return self

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-4000:]
        try:
            httpx.get(self.url + "/health", timeout=10)
            return True
        except httpx.TransportError:
            return False

    def rpc(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        r = httpx.post(self.url + "/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1},
                       timeout=timeout)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def call(self, method: str, **params: Any) -> Any:
        body = self.rpc(method, **params)
        assert "result" in body, body
        return body["result"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.call("job_get", job_id=job_id)  # type: ignore[no-any-return]

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, seconds: float = DEADLINE) -> int:
        assert self.proc is not None
        proc = self.proc
        return wait_for(f"{self.name} exits", lambda: proc.poll() is not None, seconds, self.log) and proc.returncode

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its whole session if it does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        with_pid = self.proc.pid
        try:
            os.killpg(with_pid, signal.SIGKILL)  # any worker or child left in its session
        except ProcessLookupError:
            pass
        self.proc = None

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None


class RedisServer:
    """A redis-server of the drill's own, which the drill may stop and start again on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is required in CI")
            pytest.skip("redis-server not installed")
        self.binary, self.port = binary, free_port()
        self.dir = tempfile.mkdtemp(prefix="zfsapi-drill-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for("redis answers", answers)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None

    @property
    def section(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    r = RedisServer()
    r.start()
    yield r
    r.stop()
    shutil.rmtree(r.dir, ignore_errors=True)


@pytest.fixture
def fake(tmp_path: Path) -> FakeZfs:
    return FakeZfs(tmp_path / "fake-zfs")


@pytest.fixture
def transfer_dir(tmp_path: Path) -> Path:
    d = tmp_path / "transfer"
    d.mkdir()
    return d


def base_config(tmp_path: Path, fake: FakeZfs, transfer_dir: Path, **sections: Any) -> dict[str, Any]:
    """A server on the fake zfs: root over loopback needs no token, no rate limits, short leases."""
    return {"state_dir": str(tmp_path / "state"),
            "zfs": {"zfs": str(fake.dir / "zfs"), "zpool": str(fake.dir / "zpool")},
            "transfer": {"directories": [str(transfer_dir)]}, "rate_limit": {"enabled": False},
            "jobs": {"lease": 5}, **sections}


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail(f"{what} needs root in CI")
        pytest.skip(f"{what} needs root")


def is_regular(path: Path) -> bool:
    return stat.S_ISREG(path.lstat().st_mode)


def read_events(url: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    """GET a job's event stream until the server ends it, keeping (event, data) of each (run in a thread)."""
    with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=300)) as r:
        assert r.status_code == 200, r.status_code
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
