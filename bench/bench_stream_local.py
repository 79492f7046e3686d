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
import sys
import tempfile

from .bench_stream import measure, print_ratios, serve

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
               "ZFSAPI_STATE_DIR": os.path.join(work, "state"), "ZFSAPI_ZFS__ZFS": zfs, "ZFSAPI_ZFS__ZPOOL": zpool}
        server = serve(port, env)
        results = measure(port, server.pid, size, stream, rounds,
                          send=([zfs, "send", "tank/src@s1"], {"dataset": "tank/src", "snapshot": "s1"}),
                          receive=lambda i: ([zfs, "receive", f"tank/base{i}"], f"tank/ours{i}"))
        print_ratios(size, rounds, results, "stand-in zfs")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
