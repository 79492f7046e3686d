"""Users from the configuration, and the in-place upgrade of a hash in the config file that holds it."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable

from zfsapi.application.auth import UserDirectory, UserRecord

log = logging.getLogger("zfsapi.auth")


class ConfigUsers(UserDirectory):
    """Users by name. `config_file` is where hashes may be upgraded; without it upgrades stay in memory."""

    def __init__(self, users: Iterable[UserRecord], config_file: str | None = None) -> None:
        self._users = {u.name: u for u in users}
        self._config_file = config_file
        self._lock = asyncio.Lock()

    def get(self, name: str) -> UserRecord | None:
        return self._users.get(name)

    def replace(self, users: Iterable[UserRecord]) -> None:
        """Swap in a new set of users (a reload): a removed user can no longer log in or use its tokens."""
        self._users = {u.name: u for u in users}

    async def replace_hash(self, name: str, old_hash: str, new_hash: str) -> bool:
        user = self._users.get(name)
        if user is None:
            return False
        self._users[name] = UserRecord(user.name, new_hash, user.role, user.prefixes)
        if self._config_file is None:
            return False
        async with self._lock:
            written = await asyncio.to_thread(replace_in_file, Path(self._config_file), old_hash, new_hash)
        log.info("password hash upgraded" if written else "password hash upgraded in memory only",
                 extra={"user": name, "config": self._config_file})
        return written


def replace_in_file(path: Path, old: str, new: str) -> bool:
    """Swap one exact occurrence of `old` for `new`, atomically (same mode, comments and layout kept).
    False when the file cannot be written or does not hold `old` exactly once (e.g. the hash came from the
    environment, or another server already upgraded it)."""
    try:
        text = path.read_text()
        if text.count(old) != 1:
            return False
        st = path.stat()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text.replace(old, new))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, st.st_mode & 0o7777)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return False
    return True
