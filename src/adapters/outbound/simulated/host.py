"""A simulated host: one SimulatedZfs filling every one-shot port the real gateway fills (Datasets, Snapshots,
Bookmarks, Pools and Transfers), its SimulatedStreams the Pipelines port, and the seed `zfsapi serve --simulate`
starts from."""

from __future__ import annotations

from typing import Sequence

from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.domain.models import ChangeKind, DiffEntry
from zfsapi.domain.names import DatasetName, PropertyName, PropertyValue, SnapshotName
from zfsapi.domain.transfer import ResumeToken, ResumeTokenContents, SendSpec

from .streams import CHUNK, SimulatedStreams
from .zfs import SimulatedZfs

POOLS = ("tank", "backup")
PADDING = 8 << 20  # bytes of a simulated send stream: a migration's progress has something to show
PACE = 0.03  # seconds per 64 KiB chunk: a seeded dataset migrates in about four seconds
HISTORY = 8  # streams kept whole (for resuming): the memory a served simulation holds stays bounded


class SimulatedHost(SimulatedZfs):
    """The ZFS ports of one simulated host, as ZfsCliGateway and ZfsPipelines are of a real one: itself for the
    one-shot ports (Transfers answered by `streams`), `streams` for Pipelines."""

    def __init__(self, pools: Sequence[str] = POOLS, *, padding: int = 3 * CHUNK, pace: float = 0.0,
                 executor: ZfsExecutor | None = None, history: int | None = None) -> None:
        super().__init__(pools)
        self.streams = SimulatedStreams(self, padding, pace=pace, executor=executor, history=history)

    # ---- Transfers ----
    async def estimate(self, spec: SendSpec) -> int:
        return await self.streams.estimate(spec)

    async def is_encrypted(self, dataset: DatasetName) -> bool:
        return await self.streams.is_encrypted(dataset)

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents:
        return await self.streams.decode_resume_token(token)

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        return await self.streams.resume_token(dataset)

    async def abort_receive(self, dataset: DatasetName) -> None:
        await self.streams.abort_receive(dataset)


def seeded_host(executor: ZfsExecutor | None = None) -> SimulatedHost:
    """The host `serve --simulate` starts with: pool tank (home, home/alice, home/bob, data with two snapshots,
    home with one taken recursively, a 1 GiB sparse volume vol) and pool backup, empty; sends paced (PACE) and
    padded (PADDING) so that a migration's progress is there to watch."""
    host = SimulatedHost(POOLS, padding=PADDING, pace=PACE, executor=executor, history=HISTORY)
    lz4 = {PropertyName("compression"): PropertyValue("lz4")}
    for name in ("tank/home", "tank/home/alice", "tank/home/bob", "tank/data"):
        host.make_dataset(DatasetName.parse(name), lz4 if name == "tank/data" else {}, False)
    host.make_volume(DatasetName.parse("tank/vol"), 1 << 30, {}, True)
    host.write("tank/data", DiffEntry(ChangeKind.NEW, "/tank/data/report.txt", "file"))
    host.write_bytes("tank/data", 1 << 20)
    host.take_snapshot(SnapshotName.parse("tank/data@monday"), False, {})
    host.write("tank/data", DiffEntry(ChangeKind.MODIFIED, "/tank/data/report.txt", "file"))
    host.take_snapshot(SnapshotName.parse("tank/data@tuesday"), False, {})
    host.take_snapshot(SnapshotName.parse("tank/home@initial"), True, {})
    return host
