"""Per-request cost over real sockets: zfsapi (uvicorn + httptools, its own server process) vs the old server's
request path (bench/legacy_server.py: aiohttp + jsonrpcserver), both as shipped defaults would run them (one
process, INFO logs, one log line per request, metrics, rate limit on with a quota never reached, passwordless
loopback), loaded by wrk.

    .venv/bin/pip install -e '.[bench]' && apt-get install wrk
    .venv/bin/python -m bench.bench_request [--connections 8] [--seconds 5] [--rounds 3]

Each server is pinned to CPU 1 and wrk to CPU 0 (2 cores: they do not fight over one); rounds alternate.

1. unknown method (-32601: never reaches ZFS), 8 connections: requests/s of each, ratio per round (target >= 2 in
   the minimum round).
2. dataset_list with a stand-in `zfs` (a shell script printing one name), 8 connections: the same ratio.
3. One connection, one call at a time: the time per call of -32601 and of dataset_list in zfsapi, and of the bare
   spawn of the same stand-in from an asyncio loop; dataset_list - (-32601 + spawn) is the Python a cheap method
   that reaches ZFS pays beyond the -32601 path (target: about 0, i.e. within the noise of a few percent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Iterator

UNKNOWN = {"jsonrpc": "2.0", "method": "no_such_method", "params": {}, "id": 1}
LISTING = {"jsonrpc": "2.0", "method": "dataset_list", "params": {"dataset": "tank"}, "id": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(port: int, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def server(name: str, argv: list[str], port: int, tmp: str) -> Iterator[int]:
    log = open(os.path.join(tmp, f"{name}.log"), "wb")
    proc = subprocess.Popen(["taskset", "-c", "1", *argv], stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except urllib.error.HTTPError:
                break  # up (its health may be poor: the stand-in zpool lists no pools)
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise SystemExit(f"{name} did not start: see {log.name}")
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


def wrk(port: int, body: dict, connections: int, seconds: float, tmp: str) -> float:
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", script,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


async def spawn_rate(argv: list[str], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        await proc.communicate()
        count += 1
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_request needs wrk: apt-get install wrk")
    tmp = tempfile.mkdtemp(prefix="zfsapi-bench-")
    fake = os.path.join(tmp, "zfs")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\nprintf 'tank\\n'\n")
    os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
    zpool = os.path.join(tmp, "zpool")  # no pools: the health checks' zpool list finds nothing to report
    with open(zpool, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(zpool, os.stat(zpool).st_mode | stat.S_IEXEC)
    config = os.path.join(tmp, "config.yaml")
    with open(config, "w") as f:
        json.dump({"state_dir": os.path.join(tmp, "state"), "zfs": {"zfs": fake, "zpool": zpool},
                   "rate_limit": {"requests": 10**9, "window": 1, "local_requests": 10**9, "local_window": 1}}, f)
    zfsapi = os.path.join(os.path.dirname(sys.executable), "zfsapi")
    ours_port, old_port = free_port(), free_port()
    ours_argv = [zfsapi, "serve", "--config", config, "--port", str(ours_port)]
    old_argv = [sys.executable, "-m", "bench.legacy_server", "--port", str(old_port), "--zfs", fake, "--zpool", zpool]
    print(f"bench_request: {args.connections} connections, {args.seconds:g} s per run, {args.rounds} alternating rounds;"
          f" logs in {tmp}")
    c = args.connections
    with server("zfsapi", ours_argv, ours_port, tmp), server("legacy", old_argv, old_port, tmp):
        for port, who in ((ours_port, "zfsapi"), (old_port, "legacy")):
            unknown, listing = post(port, UNKNOWN), post(port, LISTING)
            assert unknown["error"]["code"] == -32601, (who, unknown)
            assert "result" in listing, (who, listing)
        for title, body in (("unknown method (-32601)", UNKNOWN), ("dataset_list (stand-in zfs)", LISTING)):
            print(f"\n{title}, {c} connections: requests/s")
            ratios = []
            for r in range(args.rounds):
                ours = wrk(ours_port, body, c, args.seconds, tmp)
                old = wrk(old_port, body, c, args.seconds, tmp)
                ratios.append(ours / old)
                print(f"  round {r + 1}: zfsapi {ours:8.0f}  legacy {old:8.0f}  ratio {ours / old:5.2f}x")
            print(f"  minimum round {min(ratios):.2f}x (target >= 2)")
        print("\none connection, one call at a time: ms per call")
        for r in range(args.rounds):
            unknown = 1000 / wrk(ours_port, UNKNOWN, 1, args.seconds, tmp)
            listing = 1000 / wrk(ours_port, LISTING, 1, args.seconds, tmp)
            mask = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {1})  # where the servers run
            try:
                spawn = 1000 / asyncio.run(spawn_rate([fake], args.seconds))
            finally:
                os.sched_setaffinity(0, mask)
            extra = listing - unknown - spawn
            print(f"  round {r + 1}: -32601 {unknown:.3f}  dataset_list {listing:.3f}  bare spawn {spawn:.3f}  "
                  f"dataset_list - (-32601 + spawn) {extra:+.3f} ({extra / listing:+.1%} of the call)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
