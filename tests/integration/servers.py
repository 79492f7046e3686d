"""`python -m zfsapi serve` as real processes on loopback ports: started, called, stopped, killed, restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

UP_DEADLINE = 120.0  # seconds: python starting in an emulated guest on a busy machine


class Server:
    """One server process with its own state_dir (`env`: more ZFSAPI_* settings). `start()` waits until it
    answers; `call()` is a JSON-RPC call as root over loopback (passwordless), raising on an error."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, name: str = "server") -> None:
        self.workdir, self.name = workdir, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / name).mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "ZFSAPI_SERVER__HTTP__PORT": str(self.port),
                    "ZFSAPI_STATE_DIR": str(workdir / name / "state"), "ZFSAPI_RATE_LIMIT__ENABLED": "false",
                    **(env or {})}
        self.log = workdir / name / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + UP_DEADLINE
        while True:
            try:
                httpx.get(self.url + "/health", timeout=30)
                return self
            except httpx.TransportError:
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{self.name} did not come up"
                time.sleep(0.3)

    def call(self, method: str, **params: Any) -> Any:
        body = self.request(method, **params)
        assert "result" in body, body
        return body["result"]

    def request(self, method: str, **params: Any) -> dict[str, Any]:
        r = httpx.post(self.url + "/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1},
                       timeout=330)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the server dies without a word (its jobs' leases lapse)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
