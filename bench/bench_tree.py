"""Big trees on real ZFS (`ZFSAPI_TESTHOST_MEM=8192 scripts/zfs-testhost up`, then
`scripts/zfs-testhost run -- python -m bench.bench_tree`): `--datasets` (default 1,000) filesystems under one
parent and snapshots of them in bulk up to each of `--sizes` (default 1,000, 5,000 and 20,000 snapshots); at each
size, alternating rounds of snapshot_list (recursive, details=false) and dataset_list (recursive) through the
in-process app vs the raw `zfs list` each runs, so the growth is visible: the ratio (target <= 1.2), the cost per
1,000 rows, this process's peak RSS after each size, and what snapshot_list's time grew by per 1,000 snapshots
added since the size before (level when the growth is linear).

Made cheaply: the filesystems with canmount=off (never mounted) by `--parallel` `zfs create` at a time; the
snapshots by one `zfs snapshot` naming one snapshot of every filesystem (ZFS takes them in one transaction
group). The pool lives on tmpfs (bench_zfs.scratch_pool) and is destroyed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

import msgspec

from bench.bench_zfs import rpc_body, scratch_pool
from bench.common import asgi_post, bench_app
from zfsapi.adapters.outbound.zfs import commands
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import DatasetName


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def create_filesystems(parent: str, count: int, parallel: int) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with gate:
            proc = await asyncio.create_subprocess_exec("zfs", "create", "-o", "canmount=off", f"{parent}/f{i:04d}")
            assert await proc.wait() == 0

    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


def snapshot_all(children: list[str], index: int) -> None:
    subprocess.run(["zfs", "snapshot", *(f"{c}@s{index:03d}" for c in children)], check=True)


async def timed_rpc(app, body: bytes, key: str, rows: int) -> float:
    started = time.perf_counter()
    status, out = await asgi_post(app, body)
    took = time.perf_counter() - started
    answer = msgspec.json.decode(out)
    assert status == 200 and "result" in answer, out[:500]
    got = len(answer["result"][key])
    assert got == rows, (got, rows)
    return took


def timed_raw(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return time.perf_counter() - started


async def measure(app, parent: str, snapshots: int, datasets: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Each method's best round, ours and raw, in seconds."""
    best: dict[str, tuple[float, float]] = {}
    root = DatasetName.parse(parent)
    cases = {
        "snapshot_list": (rpc_body("snapshot_list", dataset=parent, recursive=True, details=False),
                          commands.list_snapshots(root, True, False), snapshots),
        "dataset_list": (rpc_body("dataset_list", dataset=parent, recursive=True),
                         commands.list_datasets(root, True, (DatasetType.FILESYSTEM, DatasetType.VOLUME), ["name"]),
                         datasets + 1),
    }
    for method, (body, argv, rows) in cases.items():
        ours, raw = [], []
        for _ in range(rounds):
            raw.append(timed_raw(argv))
            ours.append(await timed_rpc(app, body, method.split("_")[0] + "s", rows))
        o, r = min(ours), min(raw)
        print(f"{snapshots} snapshots, {datasets} filesystems: {method} ({rows} rows) {o:.3f} s vs raw "
              f"`{' '.join(argv[:4])} ...` {r:.3f} s: ratio {o / r:.2f} (per round "
              f"{' '.join(f'{a / b:.2f}' for a, b in zip(ours, raw))}; target <= 1.2); {o / rows * 1000:.3f} s "
              f"per 1,000 rows; peak RSS {rss_mib():.0f} MiB", flush=True)
        best[method] = (o, r)
    return best


Point = tuple[int, dict[str, tuple[float, float]]]  # snapshots, best (ours, raw) per method


def growth(before: Point, after: Point) -> str:
    """What snapshot_list's time grew by per 1,000 snapshots added, ours and raw: linear growth keeps it level."""
    (n0, t0), (n1, t1) = before, after
    per = [(t1["snapshot_list"][i] - t0["snapshot_list"][i]) / (n1 - n0) * 1000 for i in (0, 1)]
    return (f"from {n0} to {n1} snapshots: snapshot_list grew {per[0]:.3f} s per 1,000 snapshots added "
            f"(raw {per[1]:.3f} s)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, "
          f"zfs {subprocess.run(['zfs', 'version'], capture_output=True, text=True).stdout.split()[0]}; "
          f"peak RSS before the app {rss_mib():.0f} MiB", flush=True)
    # a listing of 20,000 snapshots over 1,000 filesystems outlasts the default zfs timeout (300 s) in the
    # emulated test host
    app = bench_app(zfs={"timeout": 3600})
    with scratch_pool() as pool:
        parent = f"{pool}/tree"
        subprocess.run(["zfs", "create", "-o", "canmount=off", parent], check=True)
        took = await create_filesystems(parent, args.datasets, args.parallel)
        print(f"{args.datasets} filesystems created in {took:.1f} s ({args.parallel} zfs create at a time)",
              flush=True)
        children = [f"{parent}/f{i:04d}" for i in range(args.datasets)]
        made = 0
        points: list[Point] = []
        for size in sorted(args.sizes):
            started = time.perf_counter()
            while made + len(children) <= size:
                snapshot_all(children, made // len(children))
                made += len(children)
            print(f"snapshots up to {made} in {time.perf_counter() - started:.1f} s", flush=True)
            points.append((made, await measure(app, parent, made, args.datasets, args.rounds)))
            if len(points) > 1 and points[-2][0] < made:
                print(growth(points[-2], points[-1]), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
