"""`-j` (JSON, OpenZFS >= 2.3) against the `-H -p` tab-separated output zfsapi parses, side by side in one run:

    scripts/zfs-testhost run -- python -m bench.bench_json [SNAPSHOTS] [ROUNDS]

For the listings zfsapi runs most (snapshot_list with and without details, dataset_list, pool_list,
pool_status), each round times the command as zfsapi runs it plus its parse by `zfsapi...parsers`, then the same
listing with `-j --json-int` plus `msgspec.json.decode` of it (the least any JSON path would cost). Prints the
best time of each and the ratio json/tsv: below 1 means `-j` would be faster. The pool lives on a sparse file
in /dev/shm and is destroyed at the end. On OpenZFS < 2.3 (no `-j`) it says so and exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Callable

import msgspec

from zfsapi.adapters.outbound.zfs import commands, parsers
from zfsapi.adapters.outbound.zfs.executor import Completed
from zfsapi.domain.models import DatasetType
from zfsapi.domain.names import DatasetName, PoolName


def timed(argv: list[str], parse: Callable[[Completed], object]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr
    parse(Completed(argv, 0, done.stdout, ""))
    return time.perf_counter() - started


def as_json(argv: list[str]) -> list[str]:
    """The same listing as JSON: `-H` (and `-p`, which `--json-int` replaces) become `-j --json-int`."""
    out = [a for a in argv if a not in ("-H", "-p")]
    return [out[0], out[1], "-j", "--json-int", *out[2:]]


def main(count: int, rounds: int) -> None:
    probe = subprocess.run(["zfs", "list", "-j", "-d", "0"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"no -j here ({probe.stderr.strip()[:80]}): nothing to compare")
        return
    work = tempfile.mkdtemp(prefix="zfsapi-bench-", dir="/dev/shm")
    pool = f"zj{uuid.uuid4().hex[:6]}"
    image = os.path.join(work, "pool.img")
    with open(image, "wb") as f:
        f.truncate(2 << 30)
    subprocess.run(["zpool", "create", "-o", "cachefile=none", "-R", os.path.join(work, "root"), pool, image],
                   check=True)
    try:
        children = [f"{pool}/c{i:02d}" for i in range(50)]
        for child in children:
            subprocess.run(["zfs", "create", "-o", "canmount=off", child], check=True)
        for i in range(count // len(children)):  # one txg takes a snapshot of each child
            subprocess.run(["zfs", "snapshot", *(f"{c}@s{i:04d}" for c in children)], check=True)
        root = DatasetName.parse(pool)
        kinds = (DatasetType.FILESYSTEM, DatasetType.VOLUME)
        cases = {
            f"snapshot_list ({len(children) * (count // len(children))}, details)":
                (commands.list_snapshots(root, True, True), parsers.snapshots),
            "snapshot_list (ids only)":
                (commands.list_snapshots(root, True, False), lambda c: parsers.snapshots(c, False)),
            "dataset_list (51, 5 columns)":
                (commands.list_datasets(root, True, kinds, ["name", "used", "avail", "refer", "mountpoint"]),
                 lambda c: parsers.rows(c, 5)),
            "pool_list": (commands.pool_list(), parsers.pools),
            "pool_status": (commands.pool_status(PoolName.parse(pool)), lambda c: parsers.pool_status(c, pool)),
        }
        print(f"zfs {subprocess.run(['zfs', 'version'], capture_output=True, text=True).stdout.split()[0]}, "
              f"best of {rounds}, each spawn + parse")
        for name, (argv, parse) in cases.items():
            jargv = as_json(argv) if argv[1] != "status" else ["zpool", "status", "-j", "--json-int", "-v", pool]
            tsv, js = [], []
            for _ in range(rounds):
                tsv.append(timed(argv, parse))
                js.append(timed(jargv, lambda c: msgspec.json.decode(c.stdout)))
            print(f"{name:40s} -H -p {min(tsv) * 1000:8.1f} ms   -j {min(js) * 1000:8.1f} ms   "
                  f"ratio json/tsv {min(js) / min(tsv):.2f}", flush=True)
    finally:
        subprocess.run(["zpool", "destroy", "-f", pool], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
