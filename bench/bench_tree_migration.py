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
import statistics
import subprocess
import time

from bench.bench_replication import local_replicate, ours, run, two_pools


def piped(source: str, target: str) -> float:
    t = time.perf_counter()
    send = subprocess.Popen(["zfs", "send", "-R", "-L", "-e", "-c", source], stdout=subprocess.PIPE)
    receive = subprocess.Popen(["zfs", "receive", "-s", target], stdin=send.stdout, stdout=subprocess.DEVNULL)
    assert send.stdout is not None
    send.stdout.close()
    assert receive.wait() == 0 and send.wait() == 0
    return time.perf_counter() - t


def copied(target: str) -> int:
    return len(run("zfs", "list", "-H", "-o", "name", "-r", target).split())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # each child's data in at least a few blocks of metadata: twice the data is room enough
    with two_pools(2 * (args.children * args.kib // 1024 + 1), prefix="zt") as pools:
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
        uc = local_replicate()
        pipe: list[float] = []
        mine: list[float] = []
        phases, size = "", 0
        for i in range(args.rounds):
            pipe.append(piped(f"{src}@s1", f"{pools[1]}/pipe{i}"))
            assert copied(f"{pools[1]}/pipe{i}") == args.children + 1
            run("zfs", "destroy", "-r", f"{pools[1]}/pipe{i}")
            took, size, phases = await ours(uc, f"{src}@s1", f"{pools[1]}/ours{i}", recursive=True)
            mine.append(took)
            assert copied(f"{pools[1]}/ours{i}") == args.children + 1
            run("zfs", "destroy", "-r", f"{pools[1]}/ours{i}")
        p, o = statistics.median(pipe), statistics.median(mine)
        ratios = [a / b for a, b in zip(pipe, mine)]
        print(f"tree of {args.children} children, stream {size / 1e6:.1f} MB, {args.rounds} alternating rounds: "
              f"zfs send -R | zfs receive {p:.2f} s, recursive Replicate {o:.2f} s (medians), ratio {p / o:.2f} "
              f"(per round {' '.join(f'{r:.2f}' for r in ratios)}; minimum {min(ratios):.2f}; target >= 0.9)")
        print("the last round's phases (s):", phases)


if __name__ == "__main__":
    asyncio.run(main())
