"""The token signing key: configured, or 32 random bytes generated once into the state directory (0600)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

KEY_FILE = "jwt.key"
KEY_BYTES = 32


class SecretError(Exception):
    """Why no usable signing key could be had (one line)."""


def load_or_create_key(configured: str | None, state_dir: str) -> bytes:
    if configured is not None:
        key = configured.encode()
        if len(key) < KEY_BYTES:
            raise SecretError(f"auth.secret_key has {len(key)} bytes; at least {KEY_BYTES} random bytes are required")
        return key
    path = Path(state_dir) / KEY_FILE
    if path.exists() or path.is_symlink():
        return _read(path)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        # written to a private temp file, then linked into place: never a half-written key, and when
        # two workers start at once exactly one key wins (link fails on an existing name)
        fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".jwt.key.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise SecretError(f"cannot create {path}: {exc.strerror}; set state_dir or auth.secret_key") from None
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_mode & 0o077:
            raise SecretError(f"{path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
        key = f.read()
    if len(key) < KEY_BYTES:
        raise SecretError(f"{path} holds {len(key)} bytes; at least {KEY_BYTES} are required")
    return key
