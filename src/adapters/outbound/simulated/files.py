"""Send files of the simulated ZFS: real files in the transfer directories, written and read as the real
pipelines do (confined to the directory, a hidden partial file linked under its name once complete, the job's
mark in an extended attribute), compressed and decompressed by the real gzip/zstd started through the executor.
Only the stream inside is simulated. Each function blocks: run it in a worker thread."""

from __future__ import annotations

import hashlib
import os
import tempfile

from zfsapi.adapters.outbound.send_file_dirs import PARTIAL, check_path, file_errors, open_in
from zfsapi.adapters.outbound.zfs.executor import Pipeline
from zfsapi.adapters.outbound.zfs.pipelines import COMPRESSORS, publish_send_file
from zfsapi.domain.errors import ZfsCommandFailed, ZfsUnavailable
from zfsapi.domain.transfer import Compression

READ_SIZE = 1 << 20


def write_send_file(pipeline: Pipeline | None, stream: bytes, path: str, root: str, compression: Compression,
                    mark: str | None) -> tuple[int, str]:
    """`stream` (compressed) into a new file at `path` inside `root`: (size, sha256 hex). A failure leaves no
    file; an existing one is never replaced (AlreadyExists)."""
    check_path(root, path, "output_file", exists=False)
    partial_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)[:200]}{PARTIAL}{os.urandom(4).hex()}")
    with file_errors("output_file", path, "create"):
        fd = open_in(root, partial_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "output_file")
    try:
        body = stream if compression is Compression.NONE else filtered(pipeline, COMPRESSORS[compression][0], stream)
        digest = hashlib.sha256(body).hexdigest()
        with file_errors("output_file", path, "write"):
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
        publish_send_file(fd, partial_path, path, mark, len(body), digest)
        return len(body), digest
    finally:
        os.close(fd)
        try:
            os.unlink(partial_path)
        except OSError:
            pass


def read_send_file(pipeline: Pipeline | None, path: str, root: str, compression: Compression) -> tuple[bytes, int]:
    """The stream in the file at `path` inside `root` (decompressed), and the file's size."""
    with file_errors("input_file", path, "open"):
        fd = open_in(root, path, os.O_RDONLY, "input_file")
    try:
        chunks = []
        while chunk := os.read(fd, READ_SIZE):
            chunks.append(chunk)
    finally:
        os.close(fd)
    body = b"".join(chunks)
    if compression is not Compression.NONE:
        return filtered(pipeline, COMPRESSORS[compression][1], body), len(body)
    return body, len(body)


def filtered(pipeline: Pipeline | None, argv: list[str], data: bytes) -> bytes:
    """`data` through the command `argv` (gzip or zstd, compressing or not), started by the pipeline's executor:
    its output; ZfsCommandFailed when it fails (a corrupt file), ZfsUnavailable when nothing can start it."""
    if pipeline is None:
        raise ZfsUnavailable(f"cannot run {argv[0]}: the simulated ZFS was given no executor")
    with tempfile.TemporaryFile() as source:
        source.write(data)
        source.flush()
        source.seek(0)
        r = pipeline.spawn_into_pipe(argv, source.fileno())
        try:
            chunks = []
            while chunk := os.read(r, READ_SIZE):
                chunks.append(chunk)
        finally:
            os.close(r)
    for done in pipeline.reap():
        if not done.ok:
            raise ZfsCommandFailed(done.argv, done.exit_code, done.stderr)
    return b"".join(chunks)


def decompressed(pipeline: Pipeline | None, data: bytes, compression: Compression) -> bytes:
    """`data` (a compressed stream written into a receive) decompressed."""
    return filtered(pipeline, COMPRESSORS[compression][1], data)
