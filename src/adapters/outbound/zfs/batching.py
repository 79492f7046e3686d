"""One child for a read of many datasets asked at once (a JSON-RPC batch runs its entries concurrently; a
replication looks up both of its sides at once): the space (`zfs list -o <space> a b c`), the properties
(`zfs get <props> a b c`), the own snapshots (`zfs list -t snapshot -d 1 a b c`) or what a replication plans with
(`zfs get encryption,receive_resume_token a b c`) of the names asked before the drain task runs (the same
event-loop turn) share one child per key (the property asked; whether snapshot details are asked), and each
waiter still gets exactly the result or error a single call would give. A single name runs the single call's
argv."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from zfsapi.domain.models import PropertyEntry, Snapshot, SpaceUsage
from zfsapi.domain.names import DatasetName, PropertyName

from . import commands, parsers
from .executor import Completed

MAX_NAMES = 200  # names per child: bounds the argv
_CANNOT = re.compile(r"^cannot open '([^']*)'")
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Batcher(Generic[K, T]):
    """Coalesces concurrent reads with the same key into children of at most MAX_NAMES names.

    `argv(key, names)` is the command for those names (for one name: exactly the single call's);
    `parse_one(key, done)` reads a single call's output, `parse_many(key, done)` a several-name one's rows by
    name."""

    def __init__(self, read: Callable[[list[str]], Awaitable[Completed]],
                 argv: Callable[[K, list[str]], list[str]], parse_one: Callable[[K, Completed], T],
                 parse_many: Callable[[K, Completed], dict[str, T]]) -> None:
        self._read, self._argv, self._one, self._many = read, argv, parse_one, parse_many
        self._pending: dict[K, list[tuple[str, asyncio.Future[T]]]] = {}
        self._running: set[asyncio.Future[None]] = set()  # the loop keeps only weak references to tasks

    async def get(self, key: K, name: str) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._drain)
        self._pending.setdefault(key, []).append((name, future))
        return await future

    def _drain(self) -> None:
        taken, self._pending = self._pending, {}
        for key, waiters in taken.items():
            for start in range(0, len(waiters), MAX_NAMES):
                task = asyncio.ensure_future(self._run(key, waiters[start:start + MAX_NAMES]))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run(self, key: K, waiters: list[tuple[str, asyncio.Future[T]]]) -> None:
        names = list(dict.fromkeys(name for name, _ in waiters))
        try:
            done = await self._read(self._argv(key, names))
            results = self._split(key, done, names)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for _, future in waiters:
                if not future.done():
                    future.set_exception(exc)
            return
        for name, future in waiters:
            if not future.done():
                outcome = results[name]
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _split(self, key: K, done: Completed, names: list[str]) -> dict[str, T | Exception]:
        """Each name's result, or the error a single call of it would have raised."""
        if len(names) == 1:  # a single call: exactly what it always gave
            return {names[0]: self._one(key, done) if done.ok else parsers.classify(done, name=names[0])}
        out: dict[str, T | Exception] = dict(self._many(key, Completed(done.argv, 0, done.stdout, "")))
        if done.ok:
            return {name: out[name] if name in out else self._one(key, Completed(done.argv, 0, b"", ""))
                    for name in names}
        named: dict[str, list[str]] = {}
        general: list[str] = []
        for line in done.stderr.splitlines():
            m = _CANNOT.match(line)
            (named.setdefault(m.group(1), []) if m and m.group(1) in names else general).append(line)
        for name in names:
            if name not in out:
                lines = named.get(name) or general
                if not lines:  # no row and nothing said of it: nothing to list (a dataset without snapshots)
                    out[name] = self._one(key, Completed(done.argv, 0, b"", ""))
                    continue
                single = Completed(done.argv[:-len(names)] + [name], done.exit_code or 1, b"",
                                   "\n".join(lines) + "\n")
                out[name] = parsers.classify(single, name=name)
        return out


def space_batcher(read: Callable[[list[str]], Awaitable[Completed]]) -> Batcher[None, SpaceUsage]:
    """get_space: `zfs list -H -p -o <space columns> a b c ...` (the name is a column)."""
    def many(done: Completed) -> dict[str, SpaceUsage]:
        return {row[0]: parsers.space(Completed(done.argv, 0, ("\t".join(row) + "\n").encode(), ""))
                for row in parsers.rows(done, len(commands.SPACE_COLUMNS))}

    return Batcher(read, lambda _key, names: commands.space_of(names), lambda _key, done: parsers.space(done),
                   lambda _key, done: many(done))


PropertyKey = PropertyName | None  # None: all properties


def properties_batcher(read: Callable[[list[str]], Awaitable[Completed]]
                       ) -> Batcher[PropertyKey, dict[str, PropertyEntry]]:
    """get_properties: one `zfs get -H -p -o property,value,source <prop> <name>` for a single name, and
    `-o name,property,value,source <prop> a b c ...` (rows grouped by name) for several."""
    return Batcher(read, commands.get_of, _properties_of_one, _properties_by_name)


def _properties_of_one(_key: object, done: Completed) -> dict[str, PropertyEntry]:
    return parsers.properties(done)


def _properties_by_name(_key: object, done: Completed) -> dict[str, dict[str, PropertyEntry]]:
    out: dict[str, dict[str, PropertyEntry]] = {}
    for name, prop, value, source in parsers.rows(done, 4):
        out.setdefault(name, {})[prop] = PropertyEntry(parsers.property_value(prop, value), source)
    return out


def snapshots_batcher(read: Callable[[list[str]], Awaitable[Completed]]) -> Batcher[bool, list[Snapshot]]:
    """list_snapshots of one dataset's own snapshots (not recursive), keyed by `details`: `zfs list -t snapshot
    -s createtxg -d 1 a b c` (oldest first within each dataset; a dataset without snapshots has no row)."""
    def argv(details: bool, names: list[str]) -> list[str]:
        return commands.list_snapshots(DatasetName(names[0]), False, details) + names[1:]

    def many(details: bool, done: Completed) -> dict[str, list[Snapshot]]:
        out: dict[str, list[Snapshot]] = {}
        for snapshot in parsers.snapshots(done, details):
            out.setdefault(snapshot.dataset, []).append(snapshot)
        return out

    return Batcher(read, argv, lambda details, done: parsers.snapshots(done, details), many)


PLANNING_PROPERTIES = ("encryption", "receive_resume_token")


def planning_batcher(read: Callable[[list[str]], Awaitable[Completed]]
                     ) -> Batcher[None, dict[str, PropertyEntry]]:
    """What a replication reads of a dataset before its first byte, the source's encryption and the
    destination's receive_resume_token, both asked of every name: `zfs get encryption,receive_resume_token a b`
    (one child for both sides on this host, and for every target of a recursive replication)."""
    props = ",".join(PLANNING_PROPERTIES)
    return Batcher(read, lambda _key, names: commands.get_each(props, names), _properties_of_one,
                   _properties_by_name)

