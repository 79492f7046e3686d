"""The ZFS command-line gateway: implements the Datasets, Snapshots, Bookmarks, Pools and Transfers ports
(one-shot commands; the send/receive pipelines are in `pipelines`)."""

from __future__ import annotations

from typing import Sequence

from zfsapi.application.ports import Bookmarks, Datasets, Pools, Properties, Snapshots
from zfsapi.domain.errors import AlreadyExists, NotFound, StateConflict
from zfsapi.domain.models import (
    Bookmark,
    DatasetType,
    DiffEntry,
    Hold,
    Pool,
    PoolStatus,
    PropertyEntry,
    Snapshot,
    SpaceUsage,
)
from zfsapi.domain.names import (
    BookmarkName,
    DatasetName,
    HoldTag,
    PoolName,
    PropertyName,
    PropertyValue,
    SnapshotName,
)
from zfsapi.domain.planning import DestroyFlags
from zfsapi.domain.transfer import ResumeToken, ResumeTokenContents, SendSpec

from . import commands, parsers
from .batching import planning_batcher, properties_batcher, snapshots_batcher, space_batcher
from .executor import Completed, ZfsExecutor

_GUID = PropertyName.parse("guid")


class ZfsCliGateway(Datasets, Snapshots, Bookmarks, Pools):
    """Every port method is one (rarely two) zfs/zpool commands; failures are classified in `parsers`."""

    def __init__(self, executor: ZfsExecutor) -> None:
        self._exec = executor
        self._version: tuple[int, int] | None = None
        self._space = space_batcher(executor.read)
        self._properties = properties_batcher(executor.read)
        self._snapshots = snapshots_batcher(executor.read)
        self._planning = planning_batcher(executor.read)

    async def _ok(self, argv: list[str], *, name: str, kind: str = "dataset") -> Completed:
        return self._checked(await self._exec.run(argv), name=name, kind=kind)

    async def _read(self, argv: list[str], *, name: str, kind: str = "dataset") -> Completed:
        """A read-only command: identical reads in flight share one child (`ZfsExecutor.read`)."""
        return self._checked(await self._exec.read(argv), name=name, kind=kind)

    @staticmethod
    def _checked(done: Completed, *, name: str, kind: str) -> Completed:
        if not done.ok:
            raise parsers.classify(done, name=name, kind=kind)
        return done

    async def _series(self) -> tuple[int, int]:
        if self._version is None:
            major, minor, *_ = (await self.version()).split(".")
            self._version = (int(major), int(minor))
        return self._version

    # ---- datasets ----

    async def create_dataset(self, name: DatasetName, *, properties: Properties, parents: bool) -> None:
        await self._ok(commands.create(name, properties, parents), name=name.value)

    async def create_volume(self, name: DatasetName, *, size_bytes: int, properties: Properties, sparse: bool) -> None:
        await self._ok(commands.create_volume(name, size_bytes, properties, sparse), name=name.value)

    async def create_clone(self, source: SnapshotName, target: DatasetName, *, properties: Properties) -> None:
        await self._ok(commands.clone(source, target, properties), name=target.value)

    async def destroy_dataset(self, name: DatasetName, *, flags: DestroyFlags) -> None:
        await self._ok(commands.destroy(name, flags), name=name.value)

    async def preview_destroy(self, name: DatasetName, *, flags: DestroyFlags) -> list[str]:
        return parsers.destroyed(await self._ok(commands.destroy(name, flags, dry_run=True), name=name.value))

    async def list_datasets(
        self,
        root: DatasetName | None,
        *,
        recursive: bool,
        types: Sequence[DatasetType],
        properties: Sequence[PropertyName],
    ) -> list[tuple[str, dict[str, int | str]]]:
        columns = ["name", *(p.value for p in properties)]
        done = await self._read(commands.list_datasets(root, recursive, types, columns), name=str(root or ""))
        return [
            (row[0], {col: parsers.property_value(col, val) for col, val in zip(columns[1:], row[1:])})
            for row in parsers.rows(done, len(columns))
        ]

    async def get_properties(
        self, name: DatasetName | SnapshotName, *, property: PropertyName | None
    ) -> dict[str, PropertyEntry]:
        """Concurrent calls (a JSON-RPC batch) asking the same property share one `zfs get` child; see batching."""
        return await self._properties.get(property, name.value)

    async def set_property(self, name: DatasetName, prop: PropertyName, value: PropertyValue) -> None:
        await self._ok(commands.set_property(name, prop, value), name=name.value)

    async def get_space(self, name: DatasetName) -> SpaceUsage:
        """Concurrent calls (a JSON-RPC batch) share one `zfs list` child; see batching."""
        return await self._space.get(None, name.value)

    async def _change(self, argv: list[str], *, name: str, unchanged: str) -> bool:
        """Run a state change; False when stderr says the state was already so (`unchanged` text)."""
        done = await self._exec.run(argv)
        if done.ok:
            return True
        if unchanged in done.stderr:
            return False
        raise parsers.classify(done, name=name)

    async def mount(self, name: DatasetName) -> bool:
        return await self._change(commands.mount(name), name=name.value, unchanged="filesystem already mounted")

    async def unmount(self, name: DatasetName) -> bool:
        return await self._change(commands.unmount(name), name=name.value, unchanged="not currently mounted")

    async def rename(self, old: DatasetName, new: DatasetName) -> None:
        done = await self._exec.run(commands.rename(old, new))
        if not done.ok:
            error = parsers.classify(done, name=old.value)
            # ZFS names the dataset being renamed ("cannot rename 'old'"); the one that exists is the target
            raise AlreadyExists("dataset", new.value) if isinstance(error, AlreadyExists) else error

    # ---- snapshots ----

    async def create_snapshot(self, name: SnapshotName, *, recursive: bool, properties: Properties) -> None:
        await self._ok(commands.snapshot(name, recursive, properties), name=name.value, kind="snapshot")

    async def list_snapshots(self, dataset: DatasetName, *, recursive: bool, details: bool = True) -> list[Snapshot]:
        """A dataset's own snapshots: concurrent calls (a replication's two sides, a JSON-RPC batch) share one
        `zfs list` child; see batching."""
        if not recursive:
            return await self._snapshots.get(details, dataset.value)
        done = await self._read(commands.list_snapshots(dataset, recursive, details), name=dataset.value)
        return parsers.snapshots(done, details)

    async def destroy_snapshot(self, name: SnapshotName, *, recursive: bool) -> None:
        flags = DestroyFlags(recursive=recursive, dependents=False)
        await self._ok(commands.destroy(name, flags), name=name.value, kind="snapshot")

    async def rollback(self, name: SnapshotName, *, destroy_newer: bool) -> None:
        await self._ok(commands.rollback(name, destroy_newer), name=name.value, kind="snapshot")

    async def hold(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        await self._ok(commands.hold(name, tag, recursive), name=name.value, kind="snapshot")

    async def release(self, name: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        await self._ok(commands.release(name, tag, recursive), name=name.value, kind="snapshot")

    async def list_holds(self, name: SnapshotName, *, recursive: bool) -> list[tuple[str, Hold]]:
        parsable = await self._series() >= (2, 2)
        return parsers.holds(await self._read(commands.holds(name, recursive, parsable), name=name.value, kind="snapshot"))

    async def diff(self, older: SnapshotName, newer: SnapshotName | DatasetName) -> list[DiffEntry]:
        done = await self._exec.run(commands.diff(older, newer))
        if done.ok:
            return parsers.diff(done)
        if "no such file or directory" in done.stderr.lower():
            # "Unable to obtain diffs: No such file or directory" names neither snapshot: reading each one's
            # guid raises NotFound for the one that is missing
            for snapshot in (older, newer):
                if isinstance(snapshot, SnapshotName):
                    await self.get_properties(snapshot, property=_GUID)
        raise parsers.classify(done, name=older.value, kind="snapshot")

    # ---- bookmarks ----

    async def create_bookmark(self, source: SnapshotName | BookmarkName, bookmark: BookmarkName) -> None:
        await self._ok(commands.bookmark(source, bookmark), name=source.value, kind="snapshot")

    async def list_bookmarks(self, dataset: DatasetName) -> list[str]:
        done = await self._read(commands.list_bookmarks(dataset), name=dataset.value)
        return [row[0] for row in parsers.rows(done, 1)]

    async def list_bookmark_ids(self, dataset: DatasetName) -> list[Bookmark]:
        done = await self._ok(commands.list_bookmarks(dataset, commands.SNAPSHOT_ID_COLUMNS), name=dataset.value)
        return parsers.bookmarks(done)

    async def destroy_bookmark(self, bookmark: BookmarkName) -> None:
        await self._ok(commands.destroy(bookmark), name=bookmark.value, kind="bookmark")

    # ---- pools ----

    async def list_pools(self) -> list[Pool]:
        return parsers.pools(await self._read(commands.pool_list(), name="", kind="pool"))

    async def pool_properties(self, pool: PoolName, *, property: PropertyName | None) -> dict[str, PropertyEntry]:
        return parsers.properties(await self._read(commands.pool_get(pool, property), name=pool.value, kind="pool"))

    async def scrub(self, pool: PoolName, *, stop: bool) -> None:
        await self._ok(commands.scrub(pool, stop), name=pool.value, kind="pool")

    async def pool_status(self, pool: PoolName) -> PoolStatus:
        return parsers.pool_status(await self._read(commands.pool_status(pool), name=pool.value, kind="pool"), pool.value)

    async def version(self) -> str:
        return parsers.version(await self._read(commands.version(), name="", kind="pool"))

    # ---- send/receive (one-shot) ----

    async def estimate(self, spec: SendSpec) -> int:
        done = await self._ok(commands.send(spec, dry_run=True), name=spec.snapshot.value, kind="snapshot")
        return parsers.send_size(done.stdout.decode())

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents:
        done = await self._exec.run(commands.send_resume(token, dry_run=True))
        if not done.ok:
            raise StateConflict("the resume token is not valid here (forged, corrupt or foreign)",
                                stderr=done.stderr.splitlines()[0] if done.stderr else "")
        return parsers.resume_token(done.stdout.decode() + "\n" + done.stderr)

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        """Concurrent lookups (every target of a recursive replication, the source's encryption: what a replication
        reads before its first byte) share one `zfs get` child; a dataset that is not there has none."""
        try:
            entry = (await self._planning.get(None, dataset.value)).get("receive_resume_token")
        except NotFound:
            return None
        value = str(entry.value) if entry is not None else ""
        return None if value in ("", "-") else ResumeToken(value)

    async def abort_receive(self, dataset: DatasetName) -> None:
        done = await self._exec.run(commands.receive_abort(dataset))
        if not done.ok:
            if "does not have any resumable receive state" in done.stderr:
                raise StateConflict("no partial receive to abort", dataset=dataset.value)
            raise parsers.classify(done, name=dataset.value, kind="dataset")

    async def is_encrypted(self, dataset: DatasetName) -> bool:
        """Shares its `zfs get` with the resume-token lookups running at the same time (see resume_token)."""
        entry = (await self._planning.get(None, dataset.value)).get("encryption")
        return entry is not None and str(entry.value) not in ("off", "-", "")
