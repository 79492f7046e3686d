#!/usr/bin/python3
"""A fake `zfs`/`zpool` for the fault drills (installed as both names): enough of them for /health, send_estimate
and send_to_file. Its knobs are files beside it: `send_bytes` (how much a send writes, default 1 MiB) and
`send_seconds` (how long it takes, default 0). Every send appends "pid argv" to `sends.log` when it starts and
"done pid" when it ends, so a drill can tell whether a job's send ran twice or outlived its server."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def knob(name: str, default: float) -> float:
    try:
        with open(os.path.join(HERE, name)) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return default


def note(line: str) -> None:
    with open(os.path.join(HERE, "sends.log"), "a") as f:
        f.write(line + "\n")


def send(args: list[str]) -> int:
    size = int(knob("send_bytes", 1 << 20))
    if "-n" in args:
        print(f"full\t{args[-1]}\t{size}\nsize\t{size}")
        return 0
    note(f"{os.getpid()} {' '.join(args)}")
    chunks = max(1, size // 65536)
    pause = knob("send_seconds", 0) / chunks
    block = b"\0" * 65536
    out = sys.stdout.buffer
    for i in range(chunks):
        out.write(block if i < chunks - 1 else b"\0" * (size - 65536 * (chunks - 1)))
        out.flush()
        if pause:
            time.sleep(pause)
    note(f"done {os.getpid()}")
    return 0


def main() -> int:
    prog, args = os.path.basename(sys.argv[0]), sys.argv[1:]
    if prog == "zpool" and args[:1] == ["list"]:
        print("tank\t1000000000\t1000\t999999000\t0\tONLINE\t0")
        return 0
    if prog == "zfs" and args[:1] == ["version"]:
        print("zfs-2.3.2-1\nzfs-kmod-2.3.2-1")
        return 0
    if prog == "zfs" and args[:1] == ["get"]:  # zfs get -H -p -o <columns> <props> <names>: nothing encrypted
        columns = args[args.index("-o") + 1].split(",")
        props, names = args[args.index("-o") + 2].split(","), args[args.index("-o") + 3:]
        for name in names:
            for prop in props:
                row = {"name": name, "property": prop, "value": "off" if prop == "encryption" else "-", "source": "-"}
                print("\t".join(row[c] for c in columns))
        return 0
    if prog == "zfs" and args[:1] == ["send"]:
        return send(args[1:])
    print(f"fake {prog}: not supported: {' '.join(args)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(1)
