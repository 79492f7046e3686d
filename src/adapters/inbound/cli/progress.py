"""Progress of one long transfer on the command line: a live bar (bytes, rate, ETA) when the output is a
terminal, else a plain line per update, at most one every `every` seconds (logs and pipes stay readable)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class TransferProgress:
    """`with TransferProgress("send tank/a@s", out) as p: p.update(done, total, rate, eta)`.

    `rate` (bytes/s) and `eta` (seconds) are the server's figures when it has them; the bar measures its own.
    """

    def __init__(self, label: str, out: TextIO | None = None, *, live: bool | None = None,
                 every: float = 5.0) -> None:
        self._label, self._out, self._every = label, out or sys.stderr, every
        self._live = self._out.isatty() if live is None else live
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = float("-inf")
        self._last: tuple[int, int | None, float | None, float | None] | None = None
        self._finished = False

    def __enter__(self) -> TransferProgress:
        if self._live:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(file=self._out), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self._label, total=None)
        return self

    def update(self, done: int, total: int | None = None, rate: float | None = None,
               eta: float | None = None, *, last: bool = False) -> None:
        """The figures now; `last`: the final ones, shown by `finish` (no plain line of their own)."""
        self._last = (done, total, rate, eta)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)
            return
        now = time.monotonic()
        if not last and now - self._last_line >= self._every:
            self._last_line = now
            self._line(done, total, rate, eta)

    def _line(self, done: int, total: int | None, rate: float | None, eta: float | None, end: str = "") -> None:
        parts = [f"{self._label}: {human_bytes(done)}"]
        if total:
            parts.append(f"/ {human_bytes(total)} ({100 * done / total:.0f}%)")
        if rate is not None:
            parts.append(f"at {human_bytes(rate)}/s")
        if eta is not None:
            parts.append(f"ETA {eta:.0f} s")
        print(" ".join(parts) + end, file=self._out, flush=True)

    def finish(self, outcome: str) -> None:
        """The last figures and how it ended (e.g. "done", "failed: ..."), whatever the throttle."""
        self._finished = True
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            print(f"{self._label}: {outcome}", file=self._out, flush=True)
        else:
            done, total, rate, _ = self._last or (0, None, None, None)
            self._line(done, total, rate, None, f", {outcome}")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._finished:
            self.finish("interrupted" if kind is not None else "done")
