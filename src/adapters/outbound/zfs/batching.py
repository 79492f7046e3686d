"""One `zfs list` child for the space of many datasets asked at once (a JSON-RPC batch runs its entries
concurrently): names asked before the drain task runs (the same event-loop turn) share one child, and each
waiter still gets exactly the row or error a single call would give."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from zfsapi.domain.models import SpaceUsage
from zfsapi.domain.names import DatasetName

from . import commands, parsers
from .executor import Completed

MAX_NAMES = 200  # names per child: bounds the argv
_CANNOT = re.compile(r"^cannot open '([^']*)'")


class SpaceBatcher:
    """Coalesces concurrent get_space calls into `zfs list -H -p -o <space> a b c ...` children."""

    def __init__(self, read: Callable[[list[str]], Awaitable[Completed]]) -> None:
        self._read = read
        self._pending: list[tuple[DatasetName, asyncio.Future[SpaceUsage]]] = []
        self._running: set[asyncio.Future[None]] = set()  # the loop keeps only weak references to tasks

    async def get(self, name: DatasetName) -> SpaceUsage:
        future: asyncio.Future[SpaceUsage] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._drain)
        self._pending.append((name, future))
        return await future

    def _drain(self) -> None:
        taken, self._pending = self._pending, []
        for start in range(0, len(taken), MAX_NAMES):
            task = asyncio.ensure_future(self._run(taken[start:start + MAX_NAMES]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, waiters: list[tuple[DatasetName, asyncio.Future[SpaceUsage]]]) -> None:
        names = list(dict.fromkeys(n.value for n, _ in waiters))
        argv = commands.space(waiters[0][0])[:-1] + names
        try:
            done = await self._read(argv)
            results = split(done, names)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
            return
        for name, future in waiters:
            if not future.done():
                outcome = results[name.value]
                if isinstance(outcome, SpaceUsage):
                    future.set_result(outcome)
                else:
                    future.set_exception(outcome)


def split(done: Completed, names: list[str]) -> dict[str, SpaceUsage | Exception]:
    """Each name's row, or the error a single `zfs list` of it would have raised."""
    if len(names) == 1 and not done.ok:  # a single call: exactly the error it always gave
        return {names[0]: parsers.classify(done, name=names[0])}
    out: dict[str, SpaceUsage | Exception] = {}
    for row in parsers.rows(Completed(done.argv, 0, done.stdout, ""), 7):
        out[row[0]] = parsers.space(Completed(done.argv, 0, ("\t".join(row) + "\n").encode(), ""))
    if done.ok and len(out) == len(names):
        return out
    named: dict[str, list[str]] = {}
    general: list[str] = []
    for line in done.stderr.splitlines():
        m = _CANNOT.match(line)
        (named.setdefault(m.group(1), []) if m and m.group(1) in names else general).append(line)
    for name in names:
        if name in out:
            continue
        lines = named.get(name) or general
        single = Completed(done.argv[:-len(names)] + [name], done.exit_code or 1, b"", "\n".join(lines) + "\n")
        out[name] = parsers.classify(single, name=name)
    return out
