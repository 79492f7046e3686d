"""Send files on the local filesystem: each user's subdirectory of a transfer directory (the SendFileDirs port),
and the one set of rules for a send file's path, used before a job is queued and when the file is opened.

A path is checked against its directory's real location (symlinks resolved), then used relative to that
directory's fd: its final component is never followed, and only a regular file is read or a new name written.
Whatever the filesystem says of the path (a component that is not a directory, a symlink loop, a name too long,
no permission) is InvalidArgument naming the parameter, never an internal error.


Also the sweep of partial send files that a killed server left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat
from contextlib import contextmanager
from typing import Iterable, Iterator

from zfsapi.application.ports import SendFileDirs
from zfsapi.domain.errors import AlreadyExists, FileFailed, InvalidArgument, NotFound

# what the filesystem may say of a path that the caller named: its reason, as -32602 gives it
_PATH_ERRORS = {errno.ENOTDIR: "a component of its path is not a directory",
                errno.ELOOP: "too many levels of symlinks in its path",
                errno.ENAMETOOLONG: "a component of its path is too long",
                errno.EACCES: "permission denied on its path",
                errno.EPERM: "permission denied on its path"}
PARTIAL = ".partial-"  # a send file being written: `.name.partial-XXXXXXXX` beside its final name

# What the filesystem may answer a send file's open, write or fsync with: the caller's to know, never -32603
FILE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                         errno.EFBIG})


@contextmanager
def file_errors(param: str, path: str, operation: str) -> Iterator[None]:
    """The filesystem's refusals (FILE_ERRNOS) of `operation` on the send file at `path` as FileFailed."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FILE_ERRNOS:
            raise
        raise FileFailed(param, path, operation, os.strerror(exc.errno), errno.errorcode[exc.errno]) from None


class LocalSendFileDirs(SendFileDirs):
    async def ensure(self, root: str, name: str, param: str) -> None:
        await asyncio.to_thread(_ensure, root, name, param)

    async def check(self, root: str, path: str, param: str, *, exists: bool) -> None:
        await asyncio.to_thread(check_path, root, path, param, exists=exists)


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


def path_error(exc: OSError, param: str) -> InvalidArgument | None:
    """The InvalidArgument for what the filesystem said of the caller's path, if it is about the path."""
    reason = _PATH_ERRORS.get(exc.errno or 0)
    return None if reason is None else InvalidArgument(param, reason)


def _parent(root: str, path: str, param: str) -> int:
    """The directory fd of `path`'s parent, once its real location (symlinks resolved) lies inside `root`."""
    real_root = os.path.realpath(root)
    parent = os.path.realpath(os.path.dirname(path))
    if parent != real_root and not parent.startswith(real_root.rstrip("/") + "/"):
        raise InvalidArgument(param, "resolves outside the transfer directory (symlink)")
    try:
        return os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound("directory", os.path.dirname(path)) from None
    except NotADirectoryError:
        raise InvalidArgument(param, "its parent is not a directory") from None
    except OSError as exc:
        raise path_error(exc, param) or exc from None


def _kind(dfd: int, name: str, param: str) -> bool:
    """Whether `name` exists in the directory `dfd` (never followed); a symlink, FIFO, device, socket or
    directory there is refused."""
    try:
        refuse_special(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode, param)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise path_error(exc, param) or exc from None
    return True


def check_path(root: str, path: str, param: str, *, exists: bool) -> None:
    """What opening `path` would say, without opening it: an existing regular file to read (`exists`), or a
    new name to write. Raises InvalidArgument (see the module), NotFound (its directory; the file to read) or
    AlreadyExists (the file to write)."""
    dfd = _parent(root, path, param)
    try:
        found = _kind(dfd, os.path.basename(path), param)
    finally:
        os.close(dfd)
    if exists and not found:
        raise NotFound("file", path)
    if found and not exists:
        raise AlreadyExists("file", path)


def open_in(root: str, path: str, flags: int, param: str) -> int:
    """Open `path` (its final component never followed) after checking that its parent, symlinks resolved,
    lies inside `root`; the open is relative to that parent's directory fd. Only a regular file is opened: a FIFO,
    device or socket is refused without blocking (checked before the open, which is non-blocking, and after it)."""
    dfd = _parent(root, path, param)
    name = os.path.basename(path)
    try:
        _kind(dfd, name, param)
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600, dir_fd=dfd)
    except FileExistsError:
        raise AlreadyExists("file", path) from None
    except FileNotFoundError:
        raise NotFound("file", path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidArgument(param, "is a symlink") from None
        if exc.errno == errno.ENXIO:  # a FIFO or socket that appeared after the check
            raise InvalidArgument(param, "not a regular file") from None
        raise path_error(exc, param) or exc from None
    finally:
        os.close(dfd)
    try:
        refuse_special(os.fstat(fd).st_mode, param)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def refuse_special(mode: int, param: str) -> None:
    if stat.S_ISLNK(mode):
        raise InvalidArgument(param, "is a symlink")
    if not stat.S_ISREG(mode):
        raise InvalidArgument(param, "not a regular file (a FIFO, device, socket or directory)")


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
