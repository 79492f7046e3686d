"""A replication's last step with `sync`: holds and a bookmark keep the next incremental's base on both sides.

Its own step (not the transfer's): which base each target keeps is a policy of its own."""

from __future__ import annotations

from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import BookmarkName, HoldTag, SnapshotName
from zfsapi.domain.replication import BOOKMARK_PREFIX, HOLD_TAG

from .replication_steps import Run, named

HOLD = HoldTag(HOLD_TAG)


class KeepBase:
    """Hold the replicated snapshot on both sides, release the previous base's holds, bookmark it on the source."""

    async def keep(self, run: Run, snapshot: SnapshotName) -> None:
        """Hold `snapshot` on both sides (and its children's with `recursive`), release the holds of the
        previous base (the one this run's first transfer started from), bookmark it on the source."""
        recursive = run.spec.recursive
        source = await run.sender.snapshots(snapshot.dataset, recursive=recursive)
        family = [SnapshotName.parse(s.name) for s in source if s.short == snapshot.short]
        await run.sender.hold(snapshot, HOLD, recursive=recursive)
        for member in family:
            await run.side.hold(run.target(member.dataset.value).snapshot(member.short), HOLD)
        previous = run.first.base_guid if run.first is not None else None
        if previous is not None:
            await self._release(run, snapshot, previous, source, family)
        await self._bookmark(run, snapshot, named(source, snapshot.value).guid, previous)

    async def _release(self, run: Run, snapshot: SnapshotName, previous: int, source: list[Snapshot],
                       family: list[SnapshotName]) -> None:
        """Release the holds of the previous base (by guid) on both sides: on the source unless only its bookmark
        is left, on the destination for the whole family (by the base's name there)."""
        old = next((s for s in source if s.guid == previous and s.dataset == snapshot.dataset.value), None)
        if old is not None:
            await run.sender.release(SnapshotName.parse(old.name), HOLD, recursive=run.spec.recursive)
        twin = next((d for d in await run.side.snapshots(run.spec.destination) or [] if d.guid == previous), None)
        if twin is not None:
            for member in family:
                await run.side.release(run.target(member.dataset.value).snapshot(twin.short), HOLD)

    async def _bookmark(self, run: Run, snapshot: SnapshotName, guid: int, previous: int | None) -> None:
        """Bookmark the snapshot on the source (`zfsapi-repl-<short>`, by guid when that name is too long) and
        destroy the replication bookmark of the previous base."""
        try:
            mark = snapshot.dataset.bookmark(BOOKMARK_PREFIX + snapshot.short)
        except InvalidArgument:
            mark = snapshot.dataset.bookmark(f"{BOOKMARK_PREFIX}{guid:016x}")
        await run.sender.bookmark(snapshot, mark)
        for old in await run.sender.bookmarks(snapshot.dataset):
            short = old.name.split("#", 1)[1]
            if old.guid == previous and old.name != mark.value and short.startswith(BOOKMARK_PREFIX):
                await run.sender.destroy_bookmark(BookmarkName.parse(old.name))
