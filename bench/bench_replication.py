"""Replication throughput vs `zfs send | zfs receive` piped directly, same snapshot, same run, alternating rounds,
on real ZFS (run it where ZFS is, e.g. the guest):

    scripts/zfs-testhost run -- python -m bench.bench_replication [MiB] [rounds]

Pool A holds a filesystem of MiB random data and its snapshot; each round receives it into pool B three times:
by `zfs send -L -e -c A@s1 | zfs receive B/base<i>` (two processes joined by a kernel pipe, no shell), the same
with `zfs receive -v -s` (the flags ours receives with), and by the
Replicate use case (full, sync off) into B/ours<i>: its planning commands, the estimate, and the relay of every
chunk (spliced in a worker thread). Both pools live on tmpfs, so the disk is not what is measured. The ratio is the
pipe's time over ours (1.0: as fast as the pipe). Ours also pays a fixed cost per run, the lookups before the
first byte (two zfs children, one `zfs list` and one `zfs get`: about 0.1 s in the emulated test host), so small
streams understate the relay: 256 MiB by default. 1 GiB needs a guest of 8 GiB
(`ZFSAPI_TESTHOST_MEM=8192 scripts/zfs-testhost up`): /dev/shm is half of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Iterator

from zfsapi.adapters.outbound.clock import SystemClock
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.gateway import ZfsCliGateway
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.application.ports import ReplicaSide
from zfsapi.application.replication import Replicate
from zfsapi.domain.authz import LOCALHOST
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.authz import Principal
from zfsapi.domain.replication import NamedRemote, ReplicationSpec


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def piped(source: str, target: str, *receive_flags: str) -> float:
    t = time.perf_counter()
    send = subprocess.Popen(["zfs", "send", "-L", "-e", "-c", source], stdout=subprocess.PIPE)
    receive = subprocess.Popen(["zfs", "receive", *receive_flags, target], stdin=send.stdout,
                               stdout=subprocess.DEVNULL)
    assert send.stdout is not None
    send.stdout.close()
    assert receive.wait() == 0 and send.wait() == 0
    return time.perf_counter() - t


class Here:
    """The Replicas port with this host as the only side (no remotes)."""

    def __init__(self, side: ReplicaSide) -> None:
        self._side = side

    def resolve(self, remote: str, who: Principal) -> NamedRemote:
        raise AssertionError(f"the bench names no remote ({remote})")

    def side(self, target: NamedRemote | None, who: Principal) -> ReplicaSide:
        return self._side


class CountingExecutor(ZfsExecutor):
    """Counts the children it spawns (commands and pipeline stages)."""

    spawned = 0

    def _spawn(self, argv: list[str], **kwargs: Any) -> Any:
        CountingExecutor.spawned += 1
        return super()._spawn(argv, **kwargs)


class Phases(ProgressMeter):
    """Records when each phase began (to show where the time goes)."""

    def __init__(self) -> None:
        super().__init__()
        self.began: list[tuple[str, float]] = []
        self.steps = 0
        self.before_send = 0  # zfs children spawned before the sending phase
        self.spawned_at_start = 0

    def add(self, nbytes: int) -> None:
        self.steps += 1
        super().add(nbytes)

    def phase(self, name: str) -> None:
        if name == "sending" and not self.before_send:
            self.before_send = CountingExecutor.spawned - self.spawned_at_start
        self.began.append((name, time.perf_counter()))
        super().phase(name)


async def ours(uc: Replicate, source: str, target: str, *, recursive: bool = False) -> tuple[float, int, str]:
    t = time.perf_counter()
    spec = ReplicationSpec.parse(source=source, destination=target, recursive=recursive, sync=False)
    progress = Phases()
    progress.spawned_at_start = CountingExecutor.spawned
    result = await uc.execute(who=LOCALHOST, spec=spec, progress=progress)
    end = time.perf_counter()
    marks = [*progress.began, ("end", end)]
    phases = " ".join(f"{name} {b - a:.2f}" for (name, a), (_, b) in zip(marks, marks[1:]))
    phases += f"; {progress.before_send} zfs children before the first byte"
    phases += f"; {progress.steps} relay steps of {result.bytes / max(progress.steps, 1) / 1024:.0f} KiB on average"
    return end - t, result.bytes, phases


@contextlib.contextmanager
def two_pools(mib: int, prefix: str = "zb") -> Iterator[list[str]]:
    """Two pools on tmpfs with room for `mib` MiB each (a quarter more, plus ZFS's slop), destroyed after."""
    work = tempfile.mkdtemp(prefix="zfsapi-bench-", dir="/dev/shm")
    pools = [f"{prefix}{side}{uuid.uuid4().hex[:6]}" for side in "ab"]
    try:
        for pool in pools:
            image = os.path.join(work, f"{pool}.img")
            with open(image, "wb") as f:
                f.truncate((mib * 5 // 4 + 512) << 20)
            run("zpool", "create", "-o", "cachefile=none", "-O", "compression=off", "-R", os.path.join(work, "root"),
                pool, image)
        yield pools
    finally:
        for pool in pools:
            subprocess.run(["zpool", "destroy", "-f", pool], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def local_replicate() -> Replicate:
    """The Replicate use case with this host as both sides, its zfs children counted."""
    executor = CountingExecutor()
    gateway, pipelines = ZfsCliGateway(executor), ZfsPipelines(executor)
    return Replicate(gateway, gateway, gateway, pipelines, Here(LocalReplica(gateway, gateway, pipelines)),
                     SystemClock())


async def main(mib: int, rounds: int) -> None:
    with two_pools(mib) as pools:
        src = f"{pools[0]}/src"
        run("zfs", "create", src)
        with open(os.path.join(run("zfs", "get", "-H", "-o", "value", "mountpoint", src).strip(), "data.bin"),
                  "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        run("zfs", "snapshot", f"{src}@s1")
        uc = local_replicate()
        base: list[float] = []
        resumable: list[float] = []
        mine: list[float] = []
        phases = ""
        size = 0
        for i in range(rounds):
            # each copy destroyed before the next is made: a 1 GiB stream's copies would not fit in the guest's
            # /dev/shm (half its memory) together
            base.append(piped(f"{src}@s1", f"{pools[1]}/base{i}"))
            run("zfs", "destroy", "-r", f"{pools[1]}/base{i}")
            resumable.append(piped(f"{src}@s1", f"{pools[1]}/resumable{i}", "-v", "-s"))
            run("zfs", "destroy", "-r", f"{pools[1]}/resumable{i}")
            took, size, phases = await ours(uc, f"{src}@s1", f"{pools[1]}/ours{i}")
            mine.append(took)
            run("zfs", "destroy", "-r", f"{pools[1]}/ours{i}")
        b, o = statistics.median(base), statistics.median(mine)
        print(f"stream of {size / 1e6:.1f} MB, {rounds} rounds (alternating), medians: "
              f"zfs send | zfs receive {size / b / 1e6:.1f} MB/s ({b:.2f} s), "
              f"Replicate {size / o / 1e6:.1f} MB/s ({o:.2f} s), ratio {b / o:.2f}")
        print(f"zfs send | zfs receive -v -s (the flags ours receives with): "
              f"{size / statistics.median(resumable) / 1e6:.1f} MB/s")
        print("rounds (pipe, pipe -v -s, ours):", ", ".join(f"({x:.2f}, {z:.2f}, {y:.2f})"
                                                            for x, z, y in zip(base, resumable, mine)))
        print("the last round's phases (s):", phases)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 256, int(sys.argv[2]) if len(sys.argv) > 2 else 3))
