"""The replica side on this host: the destination is another dataset here (usually in another pool)."""

from __future__ import annotations

from zfsapi.application.ports import Pipelines, ReceivePipe, ReplicaSide, Snapshots, Transfers
from zfsapi.domain.errors import AlreadyExists, NotFound
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeToken


class LocalReplica(ReplicaSide):
    """Receives here, through the same gateway and pipelines as every other zfs command (the stream never
    leaves the host, so `compression` does not apply)."""

    def __init__(self, snapshots: Snapshots, transfers: Transfers, pipelines: Pipelines) -> None:
        self._snapshots, self._t, self._p = snapshots, transfers, pipelines

    async def snapshots(self, dataset: DatasetName) -> list[Snapshot] | None:
        try:
            return await self._snapshots.list_snapshots(dataset, recursive=False, details=False)
        except NotFound:
            return None

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        return await self._t.resume_token(dataset)

    async def abort_receive(self, dataset: DatasetName) -> None:
        await self._t.abort_receive(dataset)

    async def open_receive(self, spec: ReceiveSpec, compression: Compression) -> ReceivePipe:
        return await self._p.open_receive(spec)

    async def hold(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        try:
            await self._snapshots.hold(snapshot, tag, recursive=False)
        except AlreadyExists:
            pass

    async def release(self, snapshot: SnapshotName, tag: HoldTag) -> None:
        try:
            await self._snapshots.release(snapshot, tag, recursive=False)
        except NotFound:
            pass
