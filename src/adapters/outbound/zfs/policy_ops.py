"""The PolicyZfs port on the zfs command line: listings of many datasets in one child (`zfs list -H -p -r` of
the policy's roots), snapshots taken with `-o zfsapi:policy=<name>`, destroys batched per dataset, holds and
releases of many snapshots in one child. Argument lists longer than one child can take are split."""

from __future__ import annotations

from typing import Awaitable, Callable, Iterator, Mapping, Sequence, TypeVar

from zfsapi.application.policy_ports import ListedSnapshot, PolicyZfs, TreeEntry
from zfsapi.domain.errors import NotFound, ZfsApiError
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, PropertyName, PropertyValue, SnapshotName
from zfsapi.domain.policies import MAX_ARGV_BYTES, check_policy_name
from zfsapi.domain.retention import SnapshotInfo, destroy_arguments

from . import commands, parsers
from .executor import Completed, ZfsExecutor

N = TypeVar("N", DatasetName, SnapshotName)
_MISSING = "dataset does not exist"
_OWNER = PropertyName(commands.OWNER_PROPERTY)


def _batches(names: Sequence[N], limit: int) -> Iterator[list[N]]:
    """`names` in runs whose argv strings (each with its NUL and pointer) fit in `limit` bytes."""
    batch: list[N] = []
    size = 0
    for name in names:
        cost = len(name.value.encode()) + 9
        if batch and size + cost > limit:
            yield batch
            batch, size = [], 0
        batch.append(name)
        size += cost
    if batch:
        yield batch


def _unless_only(done: Completed, *ignored: str) -> None:
    """Raise the classified error of a failed command over many names, unless each line of its stderr is
    one of the `ignored` answers (ZFS goes on with the other names after each)."""
    if done.ok:
        return
    rest = parsers.other_errors(done.stderr, *ignored)
    if rest or not done.stderr:
        raise parsers.classify(Completed(done.argv, done.exit_code, done.stdout, rest or done.stderr),
                               name=done.argv[-1], kind="snapshot" if "@" in done.argv[-1] else "dataset")


async def destroy_batched(run: Callable[[list[str]], Awaitable[Completed]], dataset: DatasetName,
                          shorts: Sequence[str],
                          failure: Callable[[Completed], ZfsApiError] | None = None) -> dict[str, str]:
    """Destroy snapshots of one dataset with `zfs destroy ds@a,b,c` (one child per argument that fits), run by
    `run` (here, or on an SSH host); when ZFS refuses some (and so destroys none of that call), again without
    them. The refused ones with the reason; `failure` classifies any other failure (default: as zfs's here)."""
    refused: dict[str, str] = {}
    for argument in destroy_arguments(dataset, list(shorts)):
        refused.update(await _destroy_batch(run, dataset, argument.split("@", 1)[1].split(","), failure))
    return refused


async def _destroy_batch(run: Callable[[list[str]], Awaitable[Completed]], dataset: DatasetName, names: list[str],
                         failure: Callable[[Completed], ZfsApiError] | None) -> dict[str, str]:
    head = f"{dataset.value}@"
    refused: dict[str, str] = {}
    while names:
        done = await run(commands.destroy_snapshots(head + ",".join(names)))
        if done.ok or "could not find any snapshots to destroy" in done.stderr:
            break  # none of them exists any more: ZFS skips missing snapshots, and finds none here
        named = {n[len(head):]: why for n, why in parsers.refused_snapshots(done.stderr).items()
                 if n.startswith(head) and n[len(head):] in names}
        if not named:
            raise failure(done) if failure is not None else parsers.classify(done, name=dataset.value)
        refused.update(named)
        names = [n for n in names if n not in named]
    return refused


class ZfsPolicyOps(PolicyZfs):
    """See PolicyZfs; `max_argv_bytes` bounds the names of one child (tests make it small)."""

    def __init__(self, executor: ZfsExecutor, *, max_argv_bytes: int = MAX_ARGV_BYTES) -> None:
        self._exec = executor
        self._limit = max_argv_bytes

    async def _read_all(self, argv_of: Callable[[list[N]], list[str]], names: Sequence[N]) -> list[Completed]:
        return [await self._exec.read(argv_of(batch)) for batch in _batches(names, self._limit)]

    async def tree(self, roots: Sequence[DatasetName]) -> list[TreeEntry]:
        found: dict[str, int] = {}
        for done in await self._read_all(commands.policy_tree, roots):
            _unless_only(done, _MISSING)
            for name, written in parsers.rows(done, len(commands.POLICY_TREE_COLUMNS)):
                found[name] = int(written) if written.isdigit() else 0
        return [TreeEntry(DatasetName.parse(name), written) for name, written in sorted(found.items())]

    async def snapshots(self, roots: Sequence[DatasetName]) -> list[ListedSnapshot]:
        rows: list[list[str]] = []
        for done in await self._read_all(commands.policy_snapshots, roots):
            _unless_only(done, _MISSING)
            rows += parsers.rows(done, len(commands.POLICY_SNAPSHOT_COLUMNS))
        # a dataset with a value of its own (or inherited) lends it to every snapshot that has none
        lending = sorted({row[0] for row in rows if "@" not in row[0] and row[5] != "-"})
        local = await self._local_owners([DatasetName.parse(d) for d in lending]) if lending else {}
        lenders = set(lending)
        datasets: dict[str, DatasetName] = {}
        out = []
        for name, guid, txg, creation, userrefs, owner, clones in rows:
            dataset, at, short = name.partition("@")
            if not at:
                continue
            if dataset in lenders:
                owner = local.get(name, "-")
            ds = datasets.get(dataset) or datasets.setdefault(dataset, DatasetName.parse(dataset))
            info = SnapshotInfo(short, int(guid), int(creation), None if owner == "-" else owner, (),
                                clones not in ("", "-"), int(txg))
            out.append(ListedSnapshot(ds, info, int(userrefs) if userrefs.isdigit() else 0))
        out.sort(key=lambda s: (s.dataset.value, s.info.createtxg))
        return out

    async def _local_owners(self, datasets: Sequence[DatasetName]) -> dict[str, str]:
        def argv(batch: Sequence[DatasetName]) -> list[str]:
            return commands.local_values(commands.OWNER_PROPERTY, batch)

        out: dict[str, str] = {}
        for done in await self._read_all(argv, datasets):
            _unless_only(done, _MISSING)
            out.update((name, value) for name, value in parsers.rows(done, 2))
        return out

    async def holds(self, snapshots: Sequence[SnapshotName]) -> Mapping[SnapshotName, tuple[str, ...]]:
        by_name = {s.value: s for s in snapshots}
        tags: dict[SnapshotName, list[str]] = {}
        for done in await self._read_all(commands.holds_of, snapshots):
            _unless_only(done, _MISSING)  # a snapshot destroyed since the listing
            for name, tag, _ in parsers.rows(done, 3):
                tags.setdefault(by_name[name], []).append(tag)
        return {s: tuple(t) for s, t in tags.items()}

    async def take(self, snapshots: Sequence[SnapshotName], *, recursive: bool, policy: str) -> None:
        if not snapshots:
            return
        properties = {_OWNER: PropertyValue.parse(check_policy_name(policy, "policy"))}
        done = await self._exec.run(commands.snapshot_many(snapshots, recursive, properties))
        if not done.ok:
            raise parsers.classify(done, name=snapshots[0].value, kind="snapshot")

    async def destroy(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        return await destroy_batched(self._exec.run, dataset, shorts)

    async def hold(self, tag: HoldTag, snapshots: Sequence[SnapshotName]) -> None:
        for batch in _batches(snapshots, self._limit):
            _unless_only(await self._exec.run(commands.hold_many(tag, batch)), "tag already exists on this dataset")

    async def release(self, tag: HoldTag, snapshots: Sequence[SnapshotName]) -> None:
        for batch in _batches(snapshots, self._limit):
            _unless_only(await self._exec.run(commands.release_many(tag, batch)), "no such tag on this dataset",
                         _MISSING)

    async def bookmark(self, snapshot: SnapshotName, bookmark: BookmarkName) -> None:
        await self.unbookmark(bookmark)
        done = await self._exec.run(commands.bookmark(snapshot, bookmark))
        if not done.ok:
            raise parsers.classify(done, name=snapshot.value, kind="snapshot")

    async def unbookmark(self, bookmark: BookmarkName) -> bool:
        done = await self._exec.run(commands.destroy(bookmark))
        if done.ok:
            return True
        error = parsers.classify(done, name=bookmark.value, kind="bookmark")
        if isinstance(error, NotFound):
            return False
        raise error
