"""Event-loop lag and throughput of RPCs that each run a child process, natively on this machine, with a
stand-in `zfs` (a shell script printing one dataset name) so no ZFS is needed.

    .venv/bin/python -m bench.bench_executor [--inflight 200] [--seconds 8]

Side by side in one run: zfsapi's RPC path (ASGI -> dispatcher -> use case -> thread-pool executor) vs a plain
asyncio loop spawning the same script with asyncio.create_subprocess_exec. Targets: throughput ratio >= 0.9,
loop lag p99 <= 20 ms with 200 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import tempfile

import msgspec

from bench.common import LoopLag, asgi_post, bench_app, ms, steady


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="zfsapi-bench-")
    fake = os.path.join(tmp, "zfs")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\nprintf 'tank\\n'\n")
    os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
    app = bench_app(zfs={"zfs": fake})
    body = msgspec.json.encode({"jsonrpc": "2.0", "method": "dataset_list", "params": {"dataset": "tank"}, "id": 1})

    async def ours() -> None:
        status, out = await asgi_post(app, body)
        assert status == 200 and b'"datasets":["tank"]' in out, out

    async def plain() -> None:
        proc = await asyncio.create_subprocess_exec(fake, "list", stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        await proc.communicate()

    r_ours, r_plain, l_ours, l_plain = [], [], LoopLag(), LoopLag()
    for _ in range(args.rounds):
        rate, lag = await steady(plain, args.inflight, args.seconds, 2.0)
        r_plain.append(rate)
        l_plain.samples += lag.samples
        rate, lag = await steady(ours, args.inflight, args.seconds, 2.0)
        r_ours.append(rate)
        l_ours.samples += lag.samples
    print(f"executor (native, stand-in zfs): {args.inflight} in flight: zfsapi {max(r_ours):.0f} RPC/s, plain asyncio "
          f"{max(r_plain):.0f} spawns/s, ratio {max(r_ours) / max(r_plain):.2f}; loop lag zfsapi {ms(l_ours)}, "
          f"plain asyncio {ms(l_plain)}")


if __name__ == "__main__":
    asyncio.run(main())
