"""Benchmarks on real ZFS (run where ZFS is usable: `scripts/zfs-testhost run -- python -m bench.bench_zfs`).

1. spawn: pool_list and dataset_list RPCs with `--clients` (default 8 and 200) callers in flight vs a plain asyncio
   loop spawning the very argv the RPC runs, alternating rounds, steady state; ratio of throughputs in every round
   (target >= 2 in the minimum round:
   identical reads in flight share one child) and the event-loop lag p50/p99 while each runs (target p99 <= 20 ms
   with 200 RPCs in flight).
2. snapshots: snapshot_list (recursive) over `--snapshots` snapshots (100 child datasets, `zfs snapshot` of one
   name per child in each command: ZFS takes one snapshot of a filesystem per transaction group, so this needs
   count/100 txgs instead of count) vs the raw `zfs list -t snapshot -o name -r` and the raw command it runs
   (target: ours <= 1.2x the raw time).

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

from bench.common import LoopLag, asgi_post, bench_app, ms, steady
from zfsapi.adapters.outbound.zfs import commands
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import DatasetName


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


async def bench_spawn(app, pool: str, clients: list[int], rounds: int, seconds: float) -> None:
    root = DatasetName.parse(pool)
    for i in range(3):
        subprocess.run(["zfs", "create", f"{pool}/d{i}"], check=True)
    cases = {
        "pool_list": (rpc_body("pool_list"), commands.pool_list()),
        "dataset_list": (rpc_body("dataset_list", dataset=pool, recursive=False),
                         commands.list_datasets(root, False, (DatasetType.FILESYSTEM, DatasetType.VOLUME), ["name"])),
    }
    idle = LoopLag()
    with idle:
        await asyncio.sleep(seconds)
    print(f"loop lag of this process idle (the floor set by the host): {ms(idle)}", flush=True)
    for method, (body, argv) in cases.items():
        status, out = await asgi_post(app, body)
        assert status == 200 and b'"result"' in out, out

        async def ours(body: bytes = body) -> None:
            status, out = await asgi_post(app, body)
            assert status == 200 and b'"result"' in out, out

        async def plain(argv: list[str] = argv) -> None:
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            await proc.communicate()
            assert proc.returncode == 0

        for inflight in clients:
            ours_rates, plain_rates = [], []
            ours_lag, plain_lag = LoopLag(), LoopLag()
            for _ in range(rounds):
                rate_, lag = await steady(plain, inflight, seconds, 2.0)
                plain_rates.append(rate_)
                plain_lag.samples += lag.samples
                rate_, lag = await steady(ours, inflight, seconds, 2.0)
                ours_rates.append(rate_)
                ours_lag.samples += lag.samples
            ratios = " ".join(f"{o / p:.2f}" for o, p in zip(ours_rates, plain_rates))
            print(f"{method}, {inflight} in flight, {rounds} alternating rounds of {seconds:g} s: zfsapi "
                  f"{max(ours_rates):.1f} RPC/s, raw spawn of `{' '.join(argv)}` {max(plain_rates):.1f}/s, ratio "
                  f"{max(ours_rates) / max(plain_rates):.2f} (per round: {ratios}; minimum round "
                  f"{min(o / p for o, p in zip(ours_rates, plain_rates)):.2f}, target >= 2); loop lag zfsapi "
                  f"{ms(ours_lag)}, raw spawn {ms(plain_lag)} (target p99 <= 20 ms)", flush=True)


async def bench_snapshots(app, pool: str, count: int, rounds: int) -> None:
    ds = f"{pool}/snaps"
    children = [f"{ds}/c{i:03d}" for i in range(100)]
    subprocess.run(["zfs", "create", ds], check=True)
    for child in children:  # never mounted: mounting 100 filesystems is most of the setup time in the guest
        subprocess.run(["zfs", "create", "-o", "canmount=off", child], check=True)
    for i in range(count // len(children)):  # one name per child dataset: one txg takes them all
        subprocess.run(["zfs", "snapshot", *(f"{child}@s{i:05d}" for child in children)], check=True)
    count = count // len(children) * len(children)
    usage = subprocess.run(["zpool", "list", "-H", "-o", "alloc,free", pool], capture_output=True, text=True).stdout
    print(f"created {count} snapshots on {len(children)} datasets; pool alloc/free: {usage.split()}", flush=True)
    raw_names = ["zfs", "list", "-t", "snapshot", "-o", "name", "-r", ds]
    root = DatasetName.parse(ds)

    async def ours(details: bool) -> float:
        body = rpc_body("snapshot_list", dataset=ds, recursive=True, details=details)
        started = time.perf_counter()
        status, out = await asgi_post(app, body)
        elapsed = time.perf_counter() - started
        assert status == 200 and out.count(b'"guid"') == count, out[:200]
        return elapsed

    def plain(argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        return time.perf_counter() - started

    t: dict[str, list[float]] = {"names": [], "fast_raw": [], "fast": [], "full_raw": [], "full": []}
    for _ in range(rounds):
        t["names"].append(plain(raw_names))
        t["fast_raw"].append(plain(commands.list_snapshots(root, True, False)))
        t["fast"].append(await ours(False))
        t["full_raw"].append(plain(commands.list_snapshots(root, True, True)))
        t["full"].append(await ours(True))
    b = {k: min(v) for k, v in t.items()}
    print(f"snapshots ({count}, best of {rounds}): snapshot_list details=false {b['fast']:.3f} s: ratio "
          f"{b['fast'] / b['fast_raw']:.2f} vs the raw command it runs ({b['fast_raw']:.3f} s; target <= 1.2), "
          f"{b['fast'] / b['names']:.2f} vs raw `{' '.join(raw_names)}` ({b['names']:.3f} s); snapshot_list "
          f"(default, with details) {b['full']:.3f} s: ratio {b['full'] / b['full_raw']:.2f} vs the raw 7-column "
          f"`zfs list` it runs ({b['full_raw']:.3f} s)", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 200])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--snapshots", type=int, default=10000)
    parser.add_argument("--only", choices=["spawn", "snapshots"])
    # guest: ZFSAPI_TESTHOST_MEM=8192 scripts/zfs-testhost up, for the tmpfs-backed pool of the snapshot bench
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, loop {type(asyncio.get_running_loop()).__name__}, "
          f"zfs {subprocess.run(['zfs', 'version'], capture_output=True, text=True).stdout.split()[0]}")
    app = bench_app()
    with scratch_pool() as pool:
        if args.only in (None, "spawn"):
            await bench_spawn(app, pool, args.clients, args.rounds, args.seconds)
        if args.only in (None, "snapshots"):
            await bench_snapshots(app, pool, args.snapshots, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
