"""The SendFileDirs port on the local filesystem: each user's subdirectory of a transfer directory; and the sweep
of partial send files that a killed server left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
from typing import Iterable

from zfsapi.application.ports import SendFileDirs
from zfsapi.domain.errors import InvalidArgument, NotFound

from .zfs.pipelines import PARTIAL, file_errors


class LocalSendFileDirs(SendFileDirs):
    async def ensure(self, root: str, name: str, param: str) -> None:
        await asyncio.to_thread(_ensure, root, name, param)


def _ensure(root: str, name: str, param: str) -> None:
    """mkdir and lstat relative to the root's directory fd: a symlink planted as `name` is never followed."""
    try:
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("directory", root) from None
    try:
        try:
            with file_errors(param, os.path.join(root, name), "create"):  # e.g. a read-only transfer directory
                os.mkdir(name, 0o700, dir_fd=dfd)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
            raise InvalidArgument(param, f"{os.path.join(root, name)} is not a directory (a symlink is never followed)")
    finally:
        os.close(dfd)


# Our partial send file, exactly as ZfsPipelines names it: `.` + the final name's first 200 characters + PARTIAL +
# 8 hex digits (4 random bytes)
PARTIAL_NAME = re.compile(r"\.(.{1,200})" + re.escape(PARTIAL) + r"[0-9a-f]{8}", re.DOTALL)


def sweep_partials(directories: Iterable[str], before: float, held: frozenset[str]) -> list[str]:
    """Remove the partial send files a killed server left under `directories` (blocking: run it in a thread):
    only files named by our exact pattern, last written before `before`, open in no process on this host, and not
    of a final name in `held` (the output files of jobs still running somewhere). The paths removed."""
    candidates: list[tuple[str, tuple[int, int]]] = []
    for root in directories:
        for parent, _, names in os.walk(root):  # never follows a symlink into a directory
            for name in names:
                found = PARTIAL_NAME.fullmatch(name)
                if found is None or found.group(1) in held:
                    continue
                path = os.path.join(parent, name)
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    if stat.S_ISREG(st.st_mode) and st.st_mtime < before:
                        candidates.append((path, (st.st_dev, st.st_ino)))
    if not candidates:
        return []
    in_use = _open_files()
    removed = []
    for path, identity in candidates:
        if identity not in in_use:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
    return removed


def _open_files() -> set[tuple[int, int]]:
    """(device, inode) of every file some process on this host holds open (its writer, while a send runs)."""
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                    found.add((st.st_dev, st.st_ino))
    return found
