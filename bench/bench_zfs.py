"""Benchmarks on real ZFS (run where ZFS is usable: `scripts/zfs-testhost run -- python -m bench.bench_zfs`).

1. spawn: an RPC running one real `zfs list` vs a plain asyncio loop spawning the same argv, both with
   `--inflight` requests in flight; ratio of throughputs (target >= 0.9) and the event-loop lag p99 while our
   RPCs are in flight (target <= 20 ms).
2. snapshots: snapshot_list over a dataset with `--snapshots` snapshots vs the raw
   `zfs list -t snapshot -o name -d 1` (target: ours <= 1.2x the raw time).

The bench makes its own pool on a sparse file and destroys it at the end. Figures are ratios taken in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager

import msgspec

from bench.common import LoopLag, asgi_post, ms, steady
from zfsapi.adapters.inbound.http.app import create_app
from zfsapi.bootstrap import build_container, load_settings


@contextmanager
def scratch_pool():
    name = f"zb{uuid.uuid4().hex[:8]}"
    # On tmpfs when there is one: copy-on-write spreads writes over the whole vdev file, so a file on a small
    # root disk fills it during 10,000 snapshot txgs (seen in the test host guest: the pool suspended).
    workdir = tempfile.mkdtemp(prefix="zfsapi-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else "/var/tmp")
    image = os.path.join(workdir, "pool.img")
    with open(image, "wb") as f:
        f.truncate(4 << 30)  # 10,000 snapshots' metadata needs well over 1 GiB
    # Each snapshot pins its own metadata blocks (about 400 KiB each with the default triple metadata copies);
    # one copy (redundant_metadata=none, OpenZFS >= 2.2, else "most") lets 10,000 fit in the pool.
    for redundancy in ("none", "most"):
        made = subprocess.run(["zpool", "create", "-o", "cachefile=none", "-o", "ashift=9", "-O",
                               f"redundant_metadata={redundancy}", "-R", os.path.join(workdir, "root"), name, image],
                              capture_output=True, text=True)
        if made.returncode == 0:
            break
    else:
        raise SystemExit(f"zpool create failed: {made.stderr}")
    try:
        yield name
    finally:
        subprocess.run(["zpool", "destroy", "-f", name], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def rpc_body(method: str, **params) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})


async def bench_spawn(app, pool: str, inflight: int, rounds: int) -> None:
    argv = ["zfs", "list", "-H", "-p", "-o", "name", "-t", "filesystem,volume", "-d", "1", pool]
    body = rpc_body("dataset_list", dataset=pool, recursive=False)
    status, out = await asgi_post(app, body)
    assert status == 200 and b'"result"' in out, out

    async def ours() -> None:
        status, out = await asgi_post(app, body)
        assert status == 200 and b'"datasets"' in out

    async def plain() -> None:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        await proc.communicate()
        assert proc.returncode == 0

    ours_rates, plain_rates = [], []
    ours_lag, plain_lag = LoopLag(), LoopLag()
    for _ in range(rounds):
        rate_, lag = await steady(plain, inflight, 8.0, 4.0)
        plain_rates.append(rate_)
        plain_lag.samples += lag.samples
        rate_, lag = await steady(ours, inflight, 8.0, 4.0)
        ours_rates.append(rate_)
        ours_lag.samples += lag.samples
    o, p = max(ours_rates), max(plain_rates)

    print(f"spawn: {inflight} in flight, steady state, {rounds} rounds of 8 s after 4 s ramp-up: zfsapi {o:.1f} "
          f"RPC/s, plain asyncio {p:.1f} spawns/s, ratio {o / p:.2f} (target >= 0.9); loop lag: zfsapi {ms(ours_lag)}, "
          f"plain asyncio spawning {ms(plain_lag)} (target p99 <= 20 ms)")


async def bench_snapshots(app, pool: str, count: int, rounds: int) -> None:
    ds = f"{pool}/snaps"
    subprocess.run(["zfs", "create", ds], check=True)
    # ZFS takes one snapshot of a filesystem per transaction group (a channel program gets EAGAIN), so 10,000
    # snapshots need 10,000 txg syncs: 16 concurrent `zfs snapshot` children keep the syncs back to back.
    names = "".join(f"{ds}@s{i:06d}\n" for i in range(count))
    made = subprocess.run(["xargs", "-P", "16", "-n", "1", "-d", "\n", "zfs", "snapshot"], input=names.encode(),
                          capture_output=True)
    if made.returncode != 0:
        raise SystemExit(f"creating {count} snapshots failed: {made.stderr.decode()[-500:]}")
    usage = subprocess.run(["zpool", "list", "-H", "-o", "alloc,free", pool], capture_output=True, text=True).stdout
    print(f"created {count} snapshots; pool alloc/free: {usage.split()}")
    raw_names = ["zfs", "list", "-t", "snapshot", "-o", "name", "-d", "1", ds]
    raw_full = ["zfs", "list", "-H", "-p", "-t", "snapshot", "-o", "name,guid,createtxg,creation,used,referenced,"
                "userrefs", "-s", "createtxg", "-d", "1", ds]

    async def ours(details: bool) -> float:
        body = rpc_body("snapshot_list", dataset=ds, details=details)
        started = time.perf_counter()
        status, out = await asgi_post(app, body)
        elapsed = time.perf_counter() - started
        assert status == 200 and out.count(b'"guid"') == count, out[:200]
        return elapsed

    def plain(argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        return time.perf_counter() - started

    t = {"names": [], "fast": [], "full_raw": [], "full": []}
    for _ in range(rounds):
        t["names"].append(plain(raw_names))
        t["fast"].append(await ours(False))
        t["full_raw"].append(plain(raw_full))
        t["full"].append(await ours(True))
    b = {k: min(v) for k, v in t.items()}
    print(f"snapshots ({count}, best of {rounds}): snapshot_list details=false {b['fast']:.3f} s vs raw "
          f"`zfs list -t snapshot -o name -d 1` {b['names']:.3f} s: ratio {b['fast'] / b['names']:.2f} (target <= 1.2); "
          f"snapshot_list (default, with details) {b['full']:.3f} s: ratio {b['full'] / b['names']:.2f} vs the name "
          f"list, {b['full'] / b['full_raw']:.2f} vs the raw 7-column `zfs list` ({b['full_raw']:.3f} s) it runs")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inflight", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--snapshots", type=int, default=10000)
    parser.add_argument("--only", choices=["spawn", "snapshots"])
    # guest: ZFSAPI_TESTHOST_MEM=8192 scripts/zfs-testhost up, for the tmpfs-backed pool of the snapshot bench
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, loop {type(asyncio.get_running_loop()).__name__}, "
          f"zfs {subprocess.run(['zfs', 'version'], capture_output=True, text=True).stdout.split()[0]}")
    app = create_app(build_container(load_settings(environ={}, overrides={"rate_limit": {"requests": 10**9, "window": 1}})))
    with scratch_pool() as pool:
        if args.only in (None, "spawn"):
            await bench_spawn(app, pool, args.inflight, args.rounds)
        if args.only in (None, "snapshots"):
            await bench_snapshots(app, pool, args.snapshots, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
