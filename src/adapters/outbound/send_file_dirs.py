"""Send files on the local filesystem: each user's subdirectory of a transfer directory (the SendFileDirs port),
and the one set of rules for a send file's path, used before a job is queued and when the file is opened.

A path is checked against its directory's real location (symlinks resolved), then used relative to that
directory's fd: its final component is never followed, and only a regular file is read or a new name written.
Whatever the filesystem says of the path (a component that is not a directory, a symlink loop, a name too long,
no permission) is InvalidArgument naming the parameter, never an internal error.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat

from zfsapi.application.ports import SendFileDirs
from zfsapi.domain.errors import AlreadyExists, InvalidArgument, NotFound

# what the filesystem may say of a path that the caller named: its reason, as -32602 gives it
_PATH_ERRORS = {errno.ENOTDIR: "a component of its path is not a directory",
                errno.ELOOP: "too many levels of symlinks in its path",
                errno.ENAMETOOLONG: "a component of its path is too long",
                errno.EACCES: "permission denied on its path",
                errno.EPERM: "permission denied on its path"}


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
