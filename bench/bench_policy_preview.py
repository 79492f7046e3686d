"""Benchmark of the policy engine on real ZFS (run where ZFS is usable:
`scripts/zfs-testhost run -- python -m bench.bench_policy_preview --datasets 1000 --per-dataset 20`).

1. preview: PreviewPrune (application/policies.py over ZfsPolicyOps) of a policy over `--datasets` datasets x
   `--per-dataset` snapshots (1% of them held by a foreign tag, so the holds are read too) vs the one raw
   `zfs list -t snapshot -H -p -o name,creation,userrefs,zfsapi:policy -r ROOT` of them; best of `--rounds`,
   as a ratio (target <= 1.5, issue 19).
2. prune (`--prune`): the prune at keep_last 1 of the same snapshots, timed, with the zfs children it ran by
   verb (target: one destroy child per dataset, e.g. at most 100 for 10,000 snapshots over 100 datasets).

The bench makes its own pool (bench_zfs.scratch_pool) and destroys it at the end. Figures are from one run.
In the emulated test host a user property costs about 30 ms per snapshot to list (the raw listing of 400
snapshots took 12 s there), so the default scale takes hours in the guest: `--datasets 20 --per-dataset 20
--rounds 2 --prune` gives a figure in about two minutes (there: ratio 1.07; prune 376 destroyed in 20 destroy
children, 22 in all).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter

from bench.bench_zfs import scratch_pool
from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.zfs.executor import Completed, ZfsExecutor
from zfsapi.adapters.outbound.zfs.policy_ops import ZfsPolicyOps
from zfsapi.application.policies import PreviewPrune, Prune
from zfsapi.domain.policies import Policy, parse_policy

POLICY = "bench"
BATCH = 500  # snapshot names per `zfs snapshot` (one txg each)


class CountingExecutor(ZfsExecutor):
    def __init__(self) -> None:
        super().__init__(timeout=3600)
        self.children: Counter[str] = Counter()

    async def run(self, argv: list[str], *, timeout: float | None = None) -> Completed:
        self.children[argv[1]] += 1
        return await super().run(argv, timeout=timeout)


def zfs(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def populate(root: str, datasets: int, per_dataset: int) -> list[str]:
    zfs("zfs", "create", "-o", "canmount=off", root)
    children = [f"{root}/d{i:04d}" for i in range(datasets)]
    for child in children:  # never mounted: mounting is most of the setup time in the guest
        zfs("zfs", "create", "-o", "canmount=off", child)
    for s in range(per_dataset):
        for i in range(0, len(children), BATCH):
            zfs("zfs", "snapshot", "-o", f"zfsapi:policy={POLICY}", *(f"{c}@auto-{s:05d}" for c in children[i:i + BATCH]))
    held = [f"{c}@auto-{s:05d}" for n, c in enumerate(children) for s in range(per_dataset)
            if (n * per_dataset + s) % 100 == 0]
    for i in range(0, len(held), BATCH):
        zfs("zfs", "hold", "keep", *held[i:i + BATCH])
    return held


async def timed_preview(policy: Policy) -> tuple[float, int]:
    preview = PreviewPrune(ZfsPolicyOps(ZfsExecutor(timeout=3600)), SystemClock())
    started = time.perf_counter()
    plans = await preview(policy)
    return time.perf_counter() - started, sum(len(p.decisions) for p in plans)


def timed_raw(root: str) -> float:
    started = time.perf_counter()
    zfs("zfs", "list", "-t", "snapshot", "-H", "-p", "-o", "name,creation,userrefs,zfsapi:policy", "-r", root)
    return time.perf_counter() - started


async def bench(pool: str, datasets: int, per_dataset: int, rounds: int, prune: bool) -> None:
    root = f"{pool}/policy"
    started = time.perf_counter()
    held = populate(root, datasets, per_dataset)
    total = datasets * per_dataset
    print(f"created {total} snapshots on {datasets} datasets ({len(held)} held) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    policy = parse_policy({"name": POLICY, "datasets": [root], "retention": {"keep_last": 1}})
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(timed_raw(root))
        elapsed, seen = await timed_preview(policy)
        assert seen == total, (seen, total)
        ours.append(elapsed)
    print(f"preview of {total} snapshots (best of {rounds}): {min(ours):.3f} s, raw `zfs list -t snapshot -H -p -o "
          f"name,creation,userrefs,zfsapi:policy -r` {min(raw):.3f} s: ratio {min(ours) / min(raw):.2f} "
          f"(target <= 1.5; per round: {' '.join(f'{o / r:.2f}' for o, r in zip(ours, raw))})", flush=True)
    if prune:
        executor = CountingExecutor()
        started = time.perf_counter()
        run = await Prune(ZfsPolicyOps(executor), SystemClock())(policy)
        print(f"prune at keep_last 1: {len(run.destroyed)} destroyed, {len(run.failed)} failed, {run.kept} kept in "
              f"{time.perf_counter() - started:.1f} s, zfs children {dict(executor.children)} (target: destroy "
              f"<= {datasets}, one per dataset)", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--per-dataset", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prune", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {zfs('zfs', 'version').split()[0]}", flush=True)
    with scratch_pool() as pool:
        await bench(pool, args.datasets, args.per_dataset, args.rounds, args.prune)


if __name__ == "__main__":
    asyncio.run(main())
