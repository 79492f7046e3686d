"""SimulatedStreams: the Transfers and Pipelines ports over a SimulatedZfs (send and receive between its
datasets, over HTTP streams, replication and send files), held to the real pipelines by the replication and
transfer unit tests (as tests.fakes.FakeStreams)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, Callable, TypeVar

from zfsapi.adapters.outbound.zfs import commands
from zfsapi.adapters.outbound.zfs.executor import Pipeline, ZfsExecutor
from zfsapi.adapters.outbound.zfs.pipelines import _sent_file
from zfsapi.application.ports import ReceivePipe, SendPipe
from zfsapi.domain.errors import StateConflict, ZfsCommandFailed
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.names import DatasetName
from zfsapi.domain.transfer import (
    Compression,
    ReceiveSpec,
    ResumeSend,
    ResumeToken,
    ResumeTokenContents,
    SendSpec,
)

from .files import decompressed, read_send_file, write_send_file
from .zfs import FS, TXG, DatasetRecord, SimulatedZfs, SnapshotRecord, refused

T = TypeVar("T")
CHUNK = 64 * 1024


class SimulatedStreams:
    """The Transfers and Pipelines ports over a SimulatedZfs: a send stream is a JSON header (the snapshots it
    carries: dataset, short, guid, creation; its base's guid) padded to `padding` bytes; a receive applies it as zfs
    does (full into a missing dataset, incremental onto its base, snapshots a dataset has skipped, the creation
    time kept), and a resumable receive cut off keeps the bytes it got and a token from which `zfs send -t` sends
    the rest. Each chunk of a send takes `pace` seconds (a simulated server's transfers last long enough to watch
    their progress). Send files are real files; `executor` runs gzip and zstd for the compressed ones. `history`:
    how many of the latest streams and pipes are kept whole (None: all, for tests to inspect); an older stream
    keeps its header alone (all that a receive reads), so a long-running simulated server's memory stays
    bounded."""

    def __init__(self, zfs: SimulatedZfs, padding: int = 3 * CHUNK, *, pace: float = 0.0,
                 executor: ZfsExecutor | None = None, history: int | None = None) -> None:
        self.zfs, self.padding, self.pace, self._exec, self.history = zfs, padding, pace, executor, history
        self.streams: list[bytes] = []  # every stream sent, by id
        self.tokens: dict[str, tuple[str, bytes]] = {}  # target -> (token, the bytes it got)
        self.cut_after: int | None = None  # the next send fails after this many bytes
        self.gate: asyncio.Event | None = None  # sends wait here after their first chunk, while it is unset
        # every pipe opened (to check that all were killed)
        self.pipes: list[SimulatedSendPipe | SimulatedReceivePipe] = []

    # ---- Transfers ----
    def _stream(self, spec: SendSpec) -> bytes:
        src, z = spec.snapshot.dataset.value, self.zfs
        top = z._need_snapshot(spec.snapshot.value).txg
        base_guid, base_txg = None, -1
        if spec.from_ is not None:
            base = spec.from_.value
            base_guid = z.snapshots[base].guid if "@" in base else z.bookmark_guids[base]
            base_txg = z.snapshots[base].txg if "@" in base else z.bookmarks[base]
        snaps: list[list[str | int]] = []
        for ds in [src, *(z._children(src) if spec.recursive else [])]:
            for name in z._snaps_of(ds):
                snap, short = z.snapshots[name], name.split("@")[1]
                every = spec.intermediates or spec.recursive and spec.from_ is None  # -I, or a full -R
                if base_txg < snap.txg <= top if every else snap.txg == top:
                    snaps.append([ds[len(src):], short, snap.guid, snap.creation])
        header = {"id": len(self.streams), "to": spec.snapshot.value, "from": base_guid, "snaps": snaps}
        return json.dumps(header).encode() + b"\n" + b"\0" * self.padding

    async def estimate(self, spec: SendSpec) -> int:
        return len(self._stream(spec))

    async def is_encrypted(self, dataset: DatasetName) -> bool:
        return False

    async def decode_resume_token(self, token: ResumeToken) -> ResumeTokenContents:
        got = next((g for t, g in self.tokens.values() if t == token.value), None)
        if got is None:
            raise StateConflict("the resume token is not valid here (forged, corrupt or foreign)")
        header = _header(got)
        return ResumeTokenContents(header["to"], self.zfs.snapshots[header["to"]].guid, header["from"], False, True,
                                   len(got), len(self.streams[header["id"]]))

    async def resume_token(self, dataset: DatasetName) -> ResumeToken | None:
        found = self.tokens.get(dataset.value)
        return ResumeToken(found[0]) if found else None

    async def abort_receive(self, dataset: DatasetName) -> None:
        if self.tokens.pop(dataset.value, None) is None:
            raise StateConflict("no partial receive to abort", dataset=dataset.value)

    # ---- Pipelines ----
    async def open_send(self, source: SendSpec | ResumeSend) -> SimulatedSendPipe:
        if isinstance(source, ResumeSend):
            got = next(g for t, g in self.tokens.values() if t == source.token.value)
            data = self.streams[_header(got)["id"]][len(got):]
        else:
            data = self._stream(source)
            self.streams.append(data)
        pipe = SimulatedSendPipe(self, data, self.cut_after)
        self.cut_after = None
        self._keep(pipe)
        return pipe

    def _keep(self, pipe: SimulatedSendPipe | SimulatedReceivePipe) -> None:
        """Record `pipe`; beyond `history`, forget the oldest pipe and the padding of the oldest whole stream."""
        self.pipes.append(pipe)
        if self.history is None:
            return
        del self.pipes[:-self.history]
        if len(self.streams) > self.history:
            old = len(self.streams) - self.history - 1
            self.streams[old] = self.streams[old].split(b"\n", 1)[0] + b"\n"

    async def relay(self, send: SendPipe, receive: ReceivePipe, moved: Callable[[int], float]) -> None:
        while chunk := await send.read():
            await receive.write(chunk)
            await asyncio.sleep(moved(len(chunk)))

    async def open_receive(self, spec: ReceiveSpec,
                           compression: Compression = Compression.NONE) -> SimulatedReceivePipe:
        """`compression`: what is written is compressed so (decompressed when the receive finishes)."""
        pipe = SimulatedReceivePipe(self, spec, compression)
        if spec.resume_token is not None:
            pipe.got += self.tokens[spec.target.value][1]
        self._keep(pipe)
        return pipe

    def receive(self, spec: ReceiveSpec, data: bytes) -> str:
        header, top, z = _header(data), spec.target.value, self.zfs
        argv = commands.receive(spec)
        have = z._snaps_of(top) if top in z.datasets else []
        if header["from"] is None and have:
            raise refused(argv, "cannot receive new filesystem stream", f"destination has snapshots (eg. {have[0]})")
        if header["from"] is not None and (not have or z.snapshots[have[-1]].guid != header["from"]):
            raise refused(argv, "cannot receive incremental stream",
                           f"most recent snapshot of {top} does not match incremental source")
        for rel, short, guid, creation in header["snaps"]:
            ds = top + rel
            z.datasets.setdefault(ds, DatasetRecord(FS))
            if not any(z.snapshots[s].guid == guid for s in z._snaps_of(ds)):  # else "already exists; ignoring"
                z.snapshots[f"{ds}@{short}"] = SnapshotRecord(guid, next(TXG), creation=creation)  # as zfs keeps it
        self.tokens.pop(top, None)
        return f"{top}@{header['to'].split('@')[1]}"

    # ---- send files ----
    async def send_to_file(self, spec: SendSpec, path: str, root: str, compression: Compression,
                           progress: ProgressMeter | None = None, mark: str | None = None) -> tuple[int, str]:
        pipe = await self.open_send(spec)
        chunks = []
        while chunk := await pipe.read():
            chunks.append(chunk)
            if progress is not None:
                progress.add(len(chunk))
        await pipe.finish()
        return await self._in_thread(write_send_file, b"".join(chunks), path, root, compression, mark)

    async def sent_file(self, path: str, root: str, mark: str) -> tuple[int, str] | None:
        return await asyncio.to_thread(_sent_file, path, root, mark)

    async def receive_from_file(self, spec: ReceiveSpec, path: str, root: str, compression: Compression,
                                progress: ProgressMeter | None = None) -> str | None:
        stream, size = await self._in_thread(read_send_file, path, root, compression)
        if progress is not None:
            progress.expect(size)
        for start in range(0, size, CHUNK):  # the file read at the pace of a send
            await asyncio.sleep(self.pace)
            if progress is not None:
                progress.add(min(CHUNK, size - start))
        return self.receive(spec, stream)

    async def _in_thread(self, work: Callable[..., T], *args: object) -> T:
        """`work(pipeline, *args)` in a worker thread: a pipeline of the executor's (for gzip, zstd), else none."""
        if self._exec is None:
            return await asyncio.to_thread(work, None, *args)
        pipeline: Pipeline = await self._exec.pipeline()
        try:
            return await pipeline.offload(work, pipeline, *args)
        finally:
            await pipeline.close()


def _header(stream: bytes) -> dict[str, Any]:
    return json.loads(stream.split(b"\n", 1)[0])  # type: ignore[no-any-return]


class SimulatedSendPipe:
    """A send (the SendPipe port): reads `data` in chunks, each after the streams' pace, failing after `cut`
    bytes."""

    def __init__(self, streams: SimulatedStreams, data: bytes, cut: int | None) -> None:
        self.streams, self.data, self.cut = streams, data, cut
        self.sent = 0
        self.killed = self.done = False

    async def read(self) -> bytes:
        await asyncio.sleep(self.streams.pace if self.sent else 0)
        if self.cut is not None and self.sent >= self.cut:
            raise ZfsCommandFailed(["zfs", "send"], 1, "warning: cannot send: Broken pipe")
        if self.sent and self.streams.gate is not None:
            await self.streams.gate.wait()
        chunk = self.data[self.sent:self.sent + CHUNK]
        self.sent += len(chunk)
        return chunk

    async def finish(self) -> None:
        self.done = True

    async def kill(self) -> None:
        self.killed = True


class SimulatedReceivePipe:
    """A receive (the ReceivePipe port): collects what is written (compressed so: decompressed at the end) and
    applies it on finish; cut off, a resumable one keeps what it got and a token to continue from."""

    def __init__(self, streams: SimulatedStreams, spec: ReceiveSpec, compression: Compression) -> None:
        self.streams, self.spec, self.compression = streams, spec, compression
        self.got = bytearray()
        self.killed = self.done = False

    async def write(self, data: bytes) -> None:
        self.got += data

    async def finish(self) -> str | None:
        self.done = True
        data = bytes(self.got)
        if self.compression is not Compression.NONE:
            data = await self.streams._in_thread(decompressed, data, self.compression)
        return self.streams.receive(self.spec, data)

    async def kill(self) -> None:
        if not self.done and not self.killed and self.spec.resumable and self.got:
            # cut off, a resumable receive keeps what it got, and a token to continue from (zfs receive -s)
            self.streams.tokens[self.spec.target.value] = (f"1-{random.getrandbits(32):x}-10-789c", bytes(self.got))
        self.killed = True
