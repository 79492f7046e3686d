"""This host as a replication's sender (the ReplicaSender port), through its own ports."""

from __future__ import annotations

from typing import Callable

from zfsapi.domain.errors import AlreadyExists, NotFound
from zfsapi.domain.models import Bookmark, Snapshot
from zfsapi.domain.names import BookmarkName, DatasetName, HoldTag, SnapshotName
from zfsapi.domain.transfer import ResumeSend, ResumeToken, ResumeTokenContents, SendSpec

from .ports import Bookmarks, Pipelines, ReceivePipe, ReplicaSender, SendPipe, Snapshots, Transfers
from .sending import plan_send


class LocalSender(ReplicaSender):
    """The source datasets on this host."""

    def __init__(self, snapshots: Snapshots, bookmarks: Bookmarks, transfers: Transfers,
                 pipelines: Pipelines) -> None:
        self._snapshots, self._bookmarks, self._t, self._p = snapshots, bookmarks, transfers, pipelines

    async def snapshots(self, dataset: DatasetName, *, recursive: bool = False) -> list[Snapshot]:
        return await self._snapshots.list_snapshots(dataset, recursive=recursive, details=False)

    async def bookmarks(self, dataset: DatasetName) -> list[Bookmark]:
        return await self._bookmarks.list_bookmark_ids(dataset)

    async def plan_send(self, spec: SendSpec) -> SendSpec:
        return await plan_send(self._t, spec)

    async def estimate(self, spec: SendSpec) -> int:
        return await self._t.estimate(spec)

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents:
        return await self._t.decode_resume_token(token)

    async def open_send(self, source: SendSpec | ResumeSend) -> SendPipe:
        return await self._p.open_send(source)

    async def relay(self, send: SendPipe, receive: ReceivePipe, moved: Callable[[int], float]) -> None:
        await self._p.relay(send, receive, moved)

    async def hold(self, snapshot: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        try:
            await self._snapshots.hold(snapshot, tag, recursive=recursive)
        except AlreadyExists:
            pass

    async def release(self, snapshot: SnapshotName, tag: HoldTag, *, recursive: bool) -> None:
        try:
            await self._snapshots.release(snapshot, tag, recursive=recursive)
        except NotFound:
            pass

    async def bookmark(self, snapshot: SnapshotName, mark: BookmarkName) -> None:
        try:
            await self._bookmarks.create_bookmark(snapshot, mark)
        except AlreadyExists:
            pass

    async def destroy_bookmark(self, mark: BookmarkName) -> None:
        await self._bookmarks.destroy_bookmark(mark)
