"""The replica side on this host: the destination is another dataset here (usually in another pool)."""

from __future__ import annotations

from typing import Mapping, Sequence

from zfsapi.application.ports import Pipelines, ReceivePipe, ReplicaSide, Snapshots, Transfers
from zfsapi.domain.errors import AlreadyExists, Busy, HasDependents, NotFound, StateConflict, ZfsCommandFailed
from zfsapi.domain.models import Snapshot
from zfsapi.domain.names import DatasetName, HoldTag, SnapshotName
from zfsapi.domain.transfer import Compression, ReceiveSpec, ResumeToken


class LocalReplica(ReplicaSide):
    """Receives here, through the same gateway and pipelines as every other zfs command (the stream never
    leaves the host, so `compression` does not apply)."""

    def __init__(self, snapshots: Snapshots, transfers: Transfers, pipelines: Pipelines) -> None:
        self._snapshots, self._t, self._p = snapshots, transfers, pipelines

    async def snapshots(self, dataset: DatasetName, *, details: bool = False) -> list[Snapshot] | None:
        try:
            return await self._snapshots.list_snapshots(dataset, recursive=False, details=details)
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

    async def destroy_snapshots(self, dataset: DatasetName, shorts: Sequence[str]) -> Mapping[str, str]:
        """One `zfs destroy ds@short` each, through the gateway (a target's retention destroys few at a time, and
        each refusal is then ZFS's own answer for that snapshot)."""
        refused: dict[str, str] = {}
        for short in shorts:
            try:
                await self._snapshots.destroy_snapshot(dataset.snapshot(short), recursive=False)
            except NotFound:
                continue
            except (HasDependents, Busy, StateConflict, ZfsCommandFailed) as exc:
                refused[short] = exc.message
        return refused
