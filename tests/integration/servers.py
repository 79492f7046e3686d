"""`python -m zfsapi serve` as real processes on loopback ports: started, called, stopped, killed, restarted."""

from __future__ import annotations

import json
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


def users_env(**users: dict[str, Any]) -> dict[str, str]:
    """ZFSAPI_AUTH__USERS for `users` ({name: {password, role, datasets}}), hashed cheaply for tests."""
    from argon2 import PasswordHasher

    fast = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    entries = {name: {"password_hash": fast.hash(u["password"]), "role": u.get("role", "admin"),
                      "datasets": u.get("datasets", [])} for name, u in users.items()}
    return {"ZFSAPI_AUTH__USERS": json.dumps(entries)}


def login(server: Server, user: str, password: str) -> str:
    return str(server.call("auth_login", username=user, password=password)["token"])


def call_as(server: Server, token: str, method: str, **params: Any) -> dict[str, Any]:
    """A JSON-RPC call with a bearer token: the whole answer (result or error)."""
    r = httpx.post(server.url + "/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1},
                   headers={"Authorization": f"Bearer {token}"}, timeout=330)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
