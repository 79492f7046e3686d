"""HTTP streams vs plain pipes on a stand-in `zfs` (no ZFS needed), side by side in one run:

    python -m bench.bench_stream_local [MiB] [rounds]

The stand-in's `zfs send` is `cat` of a file of MiB random bytes, its `zfs receive` prints the line `zfs receive
-v` would and then `cat`s its input to /dev/null: what is measured is this server's part of a stream (the
splice to and from the socket, the HTTP framing), not ZFS's. Each round:

- GET /stream/{id} read by a raw-socket client  vs  `zfs send ... | cat > /dev/null` (the stand-in)
- POST /stream/{id} from the file                vs  `cat file | zfs receive ...` (the stand-in)

The server is `python -m zfsapi serve` on a loopback port; the files live in /dev/shm. Only the ratios mean
anything on a busy machine (see bench/bench_stream.py for the same on real ZFS).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from .bench_stream import (
    cpu_of,
    cpu_total,
    http_get_discard,
    http_post_file,
    pipeline,
    report,
    rpc,
)

STAND_IN = '''#!{python}
import os, sys
prog, args = os.path.basename(sys.argv[0]), sys.argv[1:]
stream = {stream!r}
if prog == "zpool":
    print("tank\\t1000000000\\t1000\\t999999000\\t0\\tONLINE\\t0")
elif args[:1] == ["version"]:
    print("zfs-2.3.2-1\\nzfs-kmod-2.3.2-1")
elif args[:1] == ["get"]:
    print("off")
elif args[:1] == ["send"] and "-n" in args:
    print(f"full\\t{{args[-1]}}\\t{{os.path.getsize(stream)}}\\nsize\\t{{os.path.getsize(stream)}}")
elif args[:1] == ["send"]:
    os.execvp("cat", ["cat", stream])
elif args[:1] == ["receive"]:
    print(f"receiving full stream of tank/src@s1 into {{args[-1]}}@s1", flush=True)
    os.dup2(os.open("/dev/null", os.O_WRONLY), 1)
    os.execvp("cat", ["cat"])
else:
    sys.exit(f"stand-in zfs: not supported: {{args}}")
'''


def main(mib: int, rounds: int) -> None:
    work = tempfile.mkdtemp(prefix="zfsapi-bench-", dir="/dev/shm")
    server = None
    try:
        stream = os.path.join(work, "stream.bin")
        with open(stream, "wb") as f:
            f.writelines(os.urandom(1 << 20) for _ in range(mib))
        size = os.path.getsize(stream)
        zfs, zpool = os.path.join(work, "zfs"), os.path.join(work, "zpool")
        with open(zfs, "w") as f:
            f.write(STAND_IN.format(python=sys.executable, stream=stream))
        os.chmod(zfs, 0o755)
        shutil.copy(zfs, zpool)

        port = 18000 + os.getpid() % 1000
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ZFSAPI_")},
               "ZFSAPI_SERVER__HTTP__PORT": str(port), "ZFSAPI_RATE_LIMIT__ENABLED": "false",
               "ZFSAPI_LOGGING__LEVEL": "WARNING", "ZFSAPI_STATE_DIR": os.path.join(work, "state"),
               "ZFSAPI_ZFS__ZFS": zfs, "ZFSAPI_ZFS__ZPOOL": zpool}
        server = subprocess.Popen([sys.executable, "-m", "zfsapi", "serve"], env=env)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)

        results: dict[str, list[float]] = {k: [] for k in ("send_base", "send_ours", "recv_base", "recv_ours")}
        for i in range(rounds):
            b0, s0 = cpu_total(), cpu_of(server.pid)
            results["send_base"].append(pipeline([zfs, "send", "tank/src@s1"], ["cat"], stdout=subprocess.DEVNULL))
            report("send base", b0, s0, cpu_total(), cpu_of(server.pid))
            sid = rpc(port, "stream_init", operation="send", dataset="tank/src", snapshot="s1")["result"]["stream_id"]
            b0, s0 = cpu_total(), cpu_of(server.pid)
            took, got = http_get_discard(port, f"/stream/{sid}")
            report("GET", b0, s0, cpu_total(), cpu_of(server.pid))
            assert got > size, (got, size)
            results["send_ours"].append(took)

            b0, s0 = cpu_total(), cpu_of(server.pid)
            with open(stream, "rb") as f:
                results["recv_base"].append(pipeline(["cat"], [zfs, "receive", f"tank/base{i}"], stdin=f,
                                                     stdout=subprocess.DEVNULL))
            report("recv base", b0, s0, cpu_total(), cpu_of(server.pid))
            sid = rpc(port, "stream_init", operation="receive", target_dataset=f"tank/ours{i}")["result"]["stream_id"]
            b0, s0 = cpu_total(), cpu_of(server.pid)
            took, body = http_post_file(port, f"/stream/{sid}", stream)
            report("POST", b0, s0, cpu_total(), cpu_of(server.pid))
            assert body["success"], body
            results["recv_ours"].append(took)

        med = {k: statistics.median(v) for k, v in results.items()}

        def mbps(seconds: float) -> float:
            return size / seconds / 1e6

        print(f"stream of {size / 1e6:.1f} MB, {rounds} rounds, medians (stand-in zfs)")
        print(f"GET  /stream  {mbps(med['send_ours']):7.1f} MB/s   zfs send | cat        "
              f"{mbps(med['send_base']):7.1f} MB/s   ratio {med['send_base'] / med['send_ours']:.2f}")
        print(f"POST /stream  {mbps(med['recv_ours']):7.1f} MB/s   cat file | zfs receive "
              f"{mbps(med['recv_base']):7.1f} MB/s   ratio {med['recv_base'] / med['recv_ours']:.2f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
