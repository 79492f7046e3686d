"""Send and receive use cases: estimates, send files in confined transfer directories, and (from
application.streams, where they live) single-use HTTP stream sessions."""

from __future__ import annotations

import time
from dataclasses import dataclass

from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import FileFailed
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.names import DatasetName
from zfsapi.domain.transfer import (
    Compression,
    Confined,
    ReceiveSpec,
    SendSpec,
    confine,
    file_owner,
)

from .ports import Pipelines, SendFileDirs, Transfers
from .sending import plan_send as plan_send  # re-exported: the stream use cases' and their callers' names here
from .streams import Received as Received
from .streams import SendStream as SendStream
from .streams import StreamLimits as StreamLimits
from .streams import StreamService as StreamService


@dataclass(frozen=True, slots=True)
class Estimate:
    spec: SendSpec  # as it will run (raw for encrypted datasets)
    size_bytes: int


class SendEstimate:
    """The size of a full or incremental send (from a snapshot or a bookmark), from `zfs send -nvP`.

    Raises:
        NotFound: no such snapshot or bookmark.
    """

    def __init__(self, transfers: Transfers) -> None:
        self._t = transfers

    async def execute(self, *, spec: SendSpec) -> Estimate:
        spec = await plan_send(self._t, spec)
        return Estimate(spec, await self._t.estimate(spec))


def _suffixed(output_file: str, compression: Compression) -> str:
    """The send file's name with its compression's suffix (`.gz`, `.zst`) added unless the caller gave it."""
    return output_file + compression.suffix if compression.suffix and not output_file.endswith(compression.suffix) \
        else output_file


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    size_bytes: int
    sha256: str
    duration: float


@dataclass(frozen=True, slots=True)
class TransferRoots:
    """The directories send files may live in (transfer.directories); the first takes relative paths."""

    paths: tuple[str, ...]

    async def locate(self, dirs: SendFileDirs, who: Principal, path: str, param: str) -> Confined:
        """Where `path` lies for `who` (an admin without a scope: anywhere in the directories; anyone else: in
        its own subdirectory, made on first use)."""
        confined = confine(path, self.paths, param, file_owner(who))
        if confined.owner is not None:
            await dirs.ensure(confined.root, confined.owner, param)
        return confined


@dataclass(frozen=True, slots=True)
class _PlannedSend:
    where: Confined
    spec: SendSpec  # as it will run
    estimate: int


class SendToFile:
    """Write a send to a new send file inside a transfer directory (never overwriting), compressed by a
    separate gzip/zstd process; a failed send leaves no file behind. Callers other than an unscoped admin
    write in their own subdirectory of it.

    Raises:
        InvalidArgument: the path lies outside the caller's transfer directory, is not a new name the
            filesystem can take, or an impossible send.
        PermissionDenied: the caller's name cannot name a transfer subdirectory.
        NotFound: no such snapshot, bookmark or directory.
        AlreadyExists: the file exists.
        FileFailed: the filesystem refused the file (full, read-only, I/O error), with the path as given.
    """

    def __init__(self, transfers: Transfers, pipelines: Pipelines, dirs: SendFileDirs, roots: TransferRoots) -> None:
        self._t, self._p, self._dirs, self._roots = transfers, pipelines, dirs, roots

    async def check(self, *, who: Principal, output_file: str, compression: Compression) -> Confined:
        """Every check of the file `execute` makes before the first byte (where it lies, that it is a new name
        the filesystem can take), without asking zfs: a call queued as a job is refused now rather than by its
        job, and still answered at once. Where the file lies."""
        where = await self._roots.locate(self._dirs, who, _suffixed(output_file, compression), "output_file")
        await self._dirs.check(where.directory, where.path, "output_file", exists=False)
        return where

    async def _done_before(self, who: Principal, output_file: str, compression: Compression,
                           mark: str) -> FileResult | None:
        where = await self._roots.locate(self._dirs, who, _suffixed(output_file, compression), "output_file")
        found = await self._p.sent_file(where.path, where.directory, mark)
        return None if found is None else FileResult(where.path, found[0], found[1], 0.0)

    async def _plan(self, who: Principal, spec: SendSpec, output_file: str, compression: Compression) -> _PlannedSend:
        where = await self.check(who=who, output_file=output_file, compression=compression)
        spec = await plan_send(self._t, spec)
        estimate = await self._t.estimate(spec)  # validates snapshots and flags before any file exists
        return _PlannedSend(where, spec, estimate)

    async def execute(self, *, who: Principal, spec: SendSpec, output_file: str, compression: Compression,
                      progress: ProgressMeter | None = None, mark: str | None = None) -> FileResult:
        """The file written. `mark`: the job this send runs as; a run of that job that finds the complete file
        an earlier run of it wrote (its outcome lost to a crash or a store outage) answers that file, unsent."""
        started = time.monotonic()
        try:
            if mark is not None and (done := await self._done_before(who, output_file, compression, mark)):
                return done
            plan = await self._plan(who, spec, output_file, compression)
            if progress is not None:
                progress.phase("sending")
                progress.expect(plan.estimate)
            size, digest = await self._p.send_to_file(plan.spec, plan.where.path, plan.where.directory, compression,
                                                      progress, mark)
        except FileFailed as exc:  # named as the caller named it, not as this server resolved it
            raise exc.named(output_file) from None
        return FileResult(plan.where.path, size, digest, time.monotonic() - started)


class ReceiveFromFile:
    """Receive a send file from a transfer directory (compression by suffix unless given). Callers other than
    an unscoped admin read only from their own subdirectory of it.

    Raises:
        InvalidArgument: the path lies outside the caller's transfer directory, or is not a regular file.
        PermissionDenied: the caller's name cannot name a transfer subdirectory.
        NotFound: no such file.
        AlreadyExists: the target exists (and no force), or is being received into.
        FileFailed: the filesystem refused to open the file, with the path as given.
    """

    def __init__(self, pipelines: Pipelines, dirs: SendFileDirs, roots: TransferRoots) -> None:
        self._p, self._dirs, self._roots = pipelines, dirs, roots

    async def check(self, *, who: Principal, input_file: str) -> Confined:
        """Every check `execute` makes before zfs receive starts (the file, where it lies and what it is): a
        call queued as a job is refused now rather than by its job. Where the file lies."""
        where = await self._roots.locate(self._dirs, who, input_file, "input_file")
        await self._dirs.check(where.directory, where.path, "input_file", exists=True)
        return where

    async def execute(self, *, who: Principal, spec: ReceiveSpec, input_file: str,
                      compression: Compression | None, progress: ProgressMeter | None = None
                      ) -> tuple[str, str | None, float]:
        try:
            where = await self.check(who=who, input_file=input_file)
            started = time.monotonic()
            if progress is not None:
                progress.phase("receiving")
            snapshot = await self._p.receive_from_file(spec, where.path, where.directory,
                                                       compression or Compression.by_suffix(where.path), progress)
        except FileFailed as exc:
            raise exc.named(input_file) from None
        return where.path, snapshot, time.monotonic() - started


class AbortReceive:
    """Discard a partially received stream (`zfs receive -A`), dropping its resume token.

    Raises:
        NotFound: no such dataset.
        StateConflict: it holds no partial receive.
    """

    def __init__(self, transfers: Transfers) -> None:
        self._t = transfers

    async def execute(self, *, dataset: DatasetName) -> None:
        await self._t.abort_receive(dataset)
