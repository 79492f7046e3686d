"""A recursive migration of a tree vs `zfs send -R | zfs receive`, on real ZFS (in the guest:
`scripts/zfs-testhost run -- python -m bench.bench_tree_migration [--children 200] [--kib 256] [--rounds 2]`).

Pool A holds a filesystem with `--children` child filesystems of `--kib` KiB of random data each, snapshotted
recursively (one `zfs snapshot -r`); each round copies the tree into pool B twice, alternating: by
`zfs send -R -L -e -c A/src@s1 | zfs receive -s B/pipe<i>` (two processes joined by a kernel pipe) and by the
Replicate use case a migration job runs (recursive, sync off) into B/ours<i>: its lookups before the first byte
(source snapshots, the destination, every target's resume token: one `zfs get` for all), the estimate, the relay.
The ratio is the pipe's time over ours (target >= 0.9). Both pools live on tmpfs; each copy is destroyed before
the next is made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid

from bench.bench_replication import CountingExecutor, Here, Phases, run
from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.application.replication import Replicate
from zfsapi.domain.authz import LOCALHOST
from zfsapi.domain.replication import ReplicationSpec


def piped(source: str, target: str) -> float:
    t = time.perf_counter()
    send = subprocess.Popen(["zfs", "send", "-R", "-L", "-e", "-c", source], stdout=subprocess.PIPE)
    receive = subprocess.Popen(["zfs", "receive", "-s", target], stdin=send.stdout, stdout=subprocess.DEVNULL)
    assert send.stdout is not None
    send.stdout.close()
    assert receive.wait() == 0 and send.wait() == 0
    return time.perf_counter() - t


async def ours(uc: Replicate, source: str, target: str) -> tuple[float, int, str]:
    t = time.perf_counter()
    spec = ReplicationSpec.parse(source=source, destination=target, recursive=True, sync=False)
    progress = Phases()
    progress.spawned_at_start = CountingExecutor.spawned
    result = await uc.execute(who=LOCALHOST, spec=spec, progress=progress)
    end = time.perf_counter()
    marks = [*progress.began, ("end", end)]
    phases = " ".join(f"{name} {b - a:.2f}" for (name, a), (_, b) in zip(marks, marks[1:]))
    return end - t, result.bytes, f"{phases}; {progress.before_send} zfs children before the first byte"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="zfsapi-bench-", dir="/dev/shm")
    pools = [f"zt{side}{uuid.uuid4().hex[:6]}" for side in "ab"]
    mib = args.children * args.kib // 1024 + 1
    try:
        for pool in pools:
            image = os.path.join(work, f"{pool}.img")
            with open(image, "wb") as f:
                f.truncate((mib * 3 + 512) << 20)
            run("zpool", "create", "-o", "cachefile=none", "-O", "compression=off", "-R", os.path.join(work, "root"),
                pool, image)
        src = f"{pools[0]}/src"
        run("zfs", "create", src)
        started = time.perf_counter()
        for i in range(args.children):
            child = f"{src}/c{i:04d}"
            run("zfs", "create", child)
            with open(os.path.join(run("zfs", "get", "-H", "-o", "value", "mountpoint", child).strip(), "data"),
                      "wb") as f:
                f.write(os.urandom(args.kib << 10))
        run("zfs", "snapshot", "-r", f"{src}@s1")
        print(f"{args.children} children of {args.kib} KiB made in {time.perf_counter() - started:.1f} s")
        executor = CountingExecutor()
        gateway, pipelines = ZfsCliGateway(executor), ZfsPipelines(executor)
        uc = Replicate(gateway, gateway, gateway, pipelines, Here(LocalReplica(gateway, gateway, pipelines)),
                       SystemClock())
        pipe: list[float] = []
        mine: list[float] = []
        phases, size = "", 0
        for i in range(args.rounds):
            pipe.append(piped(f"{src}@s1", f"{pools[1]}/pipe{i}"))
            copied = run("zfs", "list", "-H", "-o", "name", "-r", f"{pools[1]}/pipe{i}").split()
            assert len(copied) == args.children + 1, len(copied)
            run("zfs", "destroy", "-r", f"{pools[1]}/pipe{i}")
            took, size, phases = await ours(uc, f"{src}@s1", f"{pools[1]}/ours{i}")
            mine.append(took)
            copied = run("zfs", "list", "-H", "-o", "name", "-r", f"{pools[1]}/ours{i}").split()
            assert len(copied) == args.children + 1, len(copied)
            run("zfs", "destroy", "-r", f"{pools[1]}/ours{i}")
        p, o = statistics.median(pipe), statistics.median(mine)
        ratios = [a / b for a, b in zip(pipe, mine)]
        print(f"tree of {args.children} children, stream {size / 1e6:.1f} MB, {args.rounds} alternating rounds: "
              f"zfs send -R | zfs receive {p:.2f} s, recursive Replicate {o:.2f} s (medians), ratio {p / o:.2f} "
              f"(per round {' '.join(f'{r:.2f}' for r in ratios)}; minimum {min(ratios):.2f}; target >= 0.9)")
        print("the last round's phases (s):", phases)
    finally:
        for pool in pools:
            subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
