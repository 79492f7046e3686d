"""HTTP streams vs plain pipes, side by side in one run, on real ZFS (run it where ZFS is, e.g. the guest):

    scripts/zfs-testhost run -- python -m bench.bench_stream [MiB] [rounds]

- GET /stream/{id} read by a raw-socket client  vs  `zfs send ... | cat > /dev/null`
- POST /stream/{id} from a file                  vs  `cat file | zfs receive ...`

The server is `python -m zfsapi serve` on a loopback port (uvicorn, the stdlib asyncio loop). The pool lives on
tmpfs so the disk is not what is measured. Pipelines are argv lists joined by pipes (no shell).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Callable

from zfsapi.adapters.outbound.zfs.executor import PIPE_SIZE, make_pipe, pipe_size
from zfsapi.adapters.outbound.zfs.pipelines import READ_SIZE


def cpu_total() -> tuple[float, float]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK"), time.perf_counter()


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def report(what, before, sb, after, sa):
    busy = after[0] - before[0]
    wall = after[1] - before[1]
    print(f"  {what}: wall {wall:.2f} s, guest busy {busy / wall:.2f} cores, server {(sa - sb) / wall:.2f} cores", flush=True)


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def pipeline(first: list[str], second: list[str], stdin=None, stdout=None) -> float:
    t = time.perf_counter()
    a = subprocess.Popen(first, stdin=stdin, stdout=subprocess.PIPE)
    b = subprocess.Popen(second, stdin=a.stdout, stdout=stdout)
    a.stdout.close()
    assert b.wait() == 0 and a.wait() == 0
    return time.perf_counter() - t


def rpc(port: int, method: str, **params) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def http_get_discard(port: int, path: str) -> tuple[float, int]:
    buf = bytearray(READ_SIZE)
    t = time.perf_counter()
    total = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        while n := s.recv_into(buf):
            total += n
    return time.perf_counter() - t, total


def http_post_file(port: int, path: str, file: str) -> tuple[float, dict]:
    size = os.path.getsize(file)
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s, open(file, "rb") as f:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        s.sendfile(f)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return time.perf_counter() - t, json.loads(data.split(b"\r\n\r\n", 1)[1])


def serve(port: int, env: dict[str, str]) -> subprocess.Popen:
    """`zfsapi serve` on loopback `port` (rate limits off, warnings only), once it accepts connections."""
    env = {**env, "ZFSAPI_SERVER__HTTP__PORT": str(port), "ZFSAPI_RATE_LIMIT__ENABLED": "false",
           "ZFSAPI_LOGGING__LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve"], env=env)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.1)
    return server


def measure(port: int, pid: int, size: int, stream_file: str, rounds: int, send: tuple[list[str], dict],
            receive: Callable[[int], tuple[list[str], str]], after: Callable[[int], object] = lambda i: None
            ) -> dict[str, float]:
    """Medians of `rounds` rounds of: `send argv | cat` vs GET /stream of a send (params), and
    `cat stream_file | receive argv` vs POST /stream of the file into the receive's target (`receive(i)`)."""
    results: dict[str, list[float]] = {k: [] for k in ("send_base", "send_ours", "recv_base", "recv_ours")}
    for i in range(rounds):
        b0, s0 = cpu_total(), cpu_of(pid)
        results["send_base"].append(pipeline(send[0], ["cat"], stdout=subprocess.DEVNULL))
        report("send base", b0, s0, cpu_total(), cpu_of(pid))
        sid = rpc(port, "stream_init", operation="send", **send[1])["result"]["stream_id"]
        b0, s0 = cpu_total(), cpu_of(pid)
        took, got = http_get_discard(port, f"/stream/{sid}")
        report("GET", b0, s0, cpu_total(), cpu_of(pid))
        assert got > size, (got, size)
        results["send_ours"].append(took)

        argv, target = receive(i)
        b0, s0 = cpu_total(), cpu_of(pid)
        with open(stream_file, "rb") as f:
            results["recv_base"].append(pipeline(["cat"], argv, stdin=f, stdout=subprocess.DEVNULL))
        report("recv base", b0, s0, cpu_total(), cpu_of(pid))
        sid = rpc(port, "stream_init", operation="receive", target_dataset=target)["result"]["stream_id"]
        b0, s0 = cpu_total(), cpu_of(pid)
        took, body = http_post_file(port, f"/stream/{sid}", stream_file)
        report("POST", b0, s0, cpu_total(), cpu_of(pid))
        assert body["success"], body
        results["recv_ours"].append(took)
        after(i)
    return {k: statistics.median(v) for k, v in results.items()}


def print_ratios(size: int, rounds: int, med: dict[str, float], note: str) -> None:
    def mbps(seconds: float) -> float:
        return size / seconds / 1e6

    print(f"stream of {size / 1e6:.1f} MB, {rounds} rounds, medians; {note}")
    print(f"GET  /stream  {mbps(med['send_ours']):7.1f} MB/s   zfs send | cat        "
          f"{mbps(med['send_base']):7.1f} MB/s   ratio {med['send_base'] / med['send_ours']:.2f}")
    print(f"POST /stream  {mbps(med['recv_ours']):7.1f} MB/s   cat file | zfs receive "
          f"{mbps(med['recv_base']):7.1f} MB/s   ratio {med['recv_base'] / med['recv_ours']:.2f}")


def main(mib: int, rounds: int) -> None:
    work = tempfile.mkdtemp(prefix="zfsapi-bench-", dir="/dev/shm")
    pool = f"zb{uuid.uuid4().hex[:6]}"
    image = os.path.join(work, "pool.img")
    with open(image, "wb") as f:
        f.truncate((4 * mib + 512) << 20)
    run("zpool", "create", "-o", "cachefile=none", "-O", "compression=off", "-R", os.path.join(work, "root"), pool, image)
    server = None
    try:
        src = f"{pool}/src"
        run("zfs", "create", src)
        mp = run("zfs", "get", "-H", "-o", "value", "mountpoint", src).strip()
        with open(os.path.join(mp, "data.bin"), "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        run("zfs", "snapshot", f"{src}@s1")
        stream_file = os.path.join(work, "s1.zfs")
        with open(stream_file, "wb") as f:
            subprocess.run(["zfs", "send", "-L", "-e", "-c", f"{src}@s1"], stdout=f, check=True)
        size = os.path.getsize(stream_file)

        port = 18000 + os.getpid() % 1000
        server = serve(port, {**os.environ, "ZFSAPI_STATE_DIR": os.path.join(work, "state")})
        results = measure(port, server.pid, size, stream_file, rounds,
                          send=(["zfs", "send", "-L", "-e", "-c", f"{src}@s1"], {"dataset": src, "snapshot": "s1"}),
                          receive=lambda i: (["zfs", "receive", f"{pool}/base{i}"], f"{pool}/ours{i}"),
                          after=lambda i: [run("zfs", "destroy", "-r", f"{pool}/{n}{i}") for n in ("base", "ours")])
        r, w = make_pipe()
        actual = pipe_size(w)
        os.close(r), os.close(w)
        print_ratios(size, rounds, results, f"pipes {actual} bytes (asked {PIPE_SIZE}), reads of {READ_SIZE} bytes, "
                                            "event loop: asyncio (stdlib, uvicorn loop=asyncio)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        subprocess.run(["zpool", "destroy", "-f", pool])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
