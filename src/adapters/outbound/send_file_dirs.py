"""The SendFileDirs port on the local filesystem: each user's subdirectory of a transfer directory."""

from __future__ import annotations

import asyncio
import os
import stat

from zfsapi.application.ports import SendFileDirs
from zfsapi.domain.errors import InvalidArgument, NotFound


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
            os.mkdir(name, 0o700, dir_fd=dfd)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
            raise InvalidArgument(param, f"{os.path.join(root, name)} is not a directory (a symlink is never followed)")
    finally:
        os.close(dfd)
