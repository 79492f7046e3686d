"""Host-side integration: real redis-server, real `zfsapi serve` processes over real HTTP, and network
namespaces made by the tests (so a peer that is not loopback can be tested without leaving this machine).
No ZFS needed: these run on the host, the ZFS suite runs in the test-host guest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from argon2 import PasswordHasher

FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
PASSWORDS = {"root": "root-pw", "viewer": "viewer-pw"}


def users() -> dict:
    return {"root": {"password_hash": FAST.hash(PASSWORDS["root"]), "role": "admin"},
            "viewer": {"password_hash": FAST.hash(PASSWORDS["viewer"]), "role": "readonly"}}


def need_root(what: str) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{what} needs root and iproute2 in CI")
        pytest.skip(f"{what} needs root and iproute2")


@contextmanager
def server(tmp_path: Path, config: dict, host: str = "127.0.0.1", port: int = 8545, netns: str | None = None):
    """`python -m zfsapi serve` with this config, until the block ends; yields the log path."""
    state = tmp_path / f"state-{port}"
    state.mkdir(exist_ok=True)
    cfg = {"state_dir": str(state), "zfs": {"zfs": "/nonexistent/zfs", "zpool": "/nonexistent/zpool"}, **config}
    cfg["server"] = {**config.get("server", {}),
                     "http": {**config.get("server", {}).get("http", {}), "host": host, "port": port}}
    path = tmp_path / f"config-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log_path = tmp_path / f"server-{port}.log"
    argv = [sys.executable, "-m", "zfsapi", "serve", "--config", str(path)]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        probe = ["ip", "netns", "exec", netns] if netns else []
        while True:
            assert proc.poll() is None, log_path.read_text()
            if _listening(probe, host, port):
                break
            assert time.monotonic() < deadline, "server did not come up: " + log_path.read_text()
            time.sleep(0.2)
        yield log_path
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def _listening(prefix: list[str], host: str, port: int) -> bool:
    out = subprocess.run([*prefix, "ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def rpc(url: str, method: str, params: dict | None = None, token: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return httpx.post(url, json={"jsonrpc": "2.0", "method": method, "params": params or {}, "id": 1},
                      headers=headers, timeout=30, **kw)


def redis_port(redis_url: str) -> int:
    """The port of the session's redis-server (tests.conftest.redis_url)."""
    return int(redis_url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
async def clients(redis_url: str):
    """Connections to the test redis-server (flushed first): `clients.append(connect(...))` for more."""
    from zfsapi.adapters.outbound.state.redis.client import connect

    made = [connect("127.0.0.1", redis_port(redis_url), 0, None)]
    await made[0].flushdb()
    yield made
    for c in made:
        await c.aclose()


def log_entries(log: Path) -> list[dict]:
    """The JSON lines of a server's log."""
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


def serve_process(tmp_path: Path, *args: str, env: dict[str, str], cwd: Path | None = None):
    """`python -m zfsapi serve --port 0 ARGS` logging to tmp_path/serve.log (truncated), once its `listening`
    line has come (60 s at most: the machine may be busy): (process, log, url). The caller stops it."""
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve", "--port", "0", *args], env=env, cwd=cwd,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (url := next((e["url"] for e in log_entries(log) if e.get("msg") == "listening"), None)):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return proc, log, url
