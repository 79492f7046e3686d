"""Benchmark on real ZFS (`scripts/zfs-testhost run -- python -m bench.bench_batch`): one JSON-RPC batch of
`--count` (default 50) dataset_get_space, one of them missing, vs the same calls as sequential single requests,
over the in-process app; the same for dataset_get_properties (property compression) and for all properties. A
batch shares one `zfs list` or `zfs get` child (target: >= 10x the sequential calls' time).
The bench makes its own pool on a sparse file and destroys it at the end. The ratio is taken in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import msgspec

from bench.bench_zfs import scratch_pool
from bench.common import asgi_post, bench_app
from zfsapi.adapters.outbound.zfs import commands
from zfsapi.domain.names import PropertyName


CASES = {  # label: (method, params besides the dataset, the argv of the one child a batch runs, but the names)
    "dataset_get_space": ("dataset_get_space", {}, commands.space_of([])),
    "dataset_get_properties compression": ("dataset_get_properties", {"property": "compression"},
                                           commands.get_of(PropertyName("compression"), [])),
    "dataset_get_properties (all)": ("dataset_get_properties", {}, commands.get_of(None, [])),
}


def call(case: str, dataset: str, ident: int) -> dict[str, object]:
    method, params, _ = CASES[case]
    return {"jsonrpc": "2.0", "method": method, "params": {"dataset": dataset, **params}, "id": ident}


async def timed_batch(app, case: str, names: list[str]) -> tuple[float, list[dict]]:
    body = msgspec.json.encode([call(case, n, i) for i, n in enumerate(names)])
    started = time.perf_counter()
    status, out = await asgi_post(app, body)
    elapsed = time.perf_counter() - started
    assert status == 200, (status, out[:300])
    return elapsed, msgspec.json.decode(out)


async def timed_singles(app, case: str, names: list[str]) -> tuple[float, list[dict]]:
    replies = []
    started = time.perf_counter()
    for i, n in enumerate(names):
        status, out = await asgi_post(app, msgspec.json.encode(call(case, n, i)))
        assert status == 200, (status, out[:300])
        replies.append(msgspec.json.decode(out))
    return time.perf_counter() - started, replies


def outcomes(replies: list[dict]) -> list[object]:
    """Per id: the result's name, or the error code (the batch and the singles must agree)."""
    by_id = {r["id"]: r["result"]["dataset"] if "result" in r else r["error"]["code"] for r in replies}
    return [by_id[i] for i in sorted(by_id)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="dataset_get_space calls (one names a missing dataset)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each side is kept")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, "
          f"zfs {subprocess.run(['zfs', 'version'], capture_output=True, text=True).stdout.split()[0]}")
    app = bench_app()
    with scratch_pool() as pool:
        names = [f"{pool}/d{i}" for i in range(args.count - 1)]
        for n in names:
            subprocess.run(["zfs", "create", n], check=True)
        names.insert(args.count // 2, f"{pool}/missing")
        for case in CASES:
            batch, singles = float("inf"), float("inf")
            for _ in range(args.rounds):
                b, batch_replies = await timed_batch(app, case, names)
                s, single_replies = await timed_singles(app, case, names)
                batch, singles = min(batch, b), min(singles, s)
            assert outcomes(batch_replies) == outcomes(single_replies), "the batch answered differently"
            assert outcomes(batch_replies).count(-32010) == 1
            argv = [*CASES[case][2], *names]
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True)
            raw = time.perf_counter() - started
            print(f"{args.count} {case}: batch {batch * 1000:.1f} ms, {args.count} single calls "
                  f"{singles * 1000:.1f} ms, ratio {singles / batch:.1f}x (target >= 10x); the batch's one child "
                  f"run alone (`{' '.join(argv[:7])} ...`) {raw * 1000:.1f} ms", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
