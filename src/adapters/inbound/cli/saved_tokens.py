"""Tokens saved by `zfsapi login`, one per server URL, as gh keeps its hosts: a JSON file only its user may read
(`$XDG_CONFIG_HOME/zfsapi/tokens.json`, default ~/.config; directory 0700, file 0600), replaced whole on every
change (written to a temporary file beside it, then renamed), so a reader never sees half a file. A token past
its expiry is not offered (the server would refuse it anyway) and is dropped at the next change."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


def token_file(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "zfsapi" / "tokens.json"


def _key(url: str) -> str:
    """One entry per server, however its URL is written (`http://h:1/` and `http://h:1` are one)."""
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class SavedToken:
    token: str
    user: str
    expires_at: float  # seconds since the epoch


class SavedTokens:
    """The saved tokens of one file (`token_file()` unless given)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or token_file()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable or damaged: as if none were saved (a login writes it anew)
        return data if isinstance(data, dict) else {}

    def get(self, url: str, now: float | None = None) -> SavedToken | None:
        """The token saved for `url` while it has not expired."""
        entry: Any = self._read().get(_key(url))
        try:
            saved = SavedToken(str(entry["token"]), str(entry["user"]), float(entry["expires_at"]))
        except (TypeError, KeyError, ValueError):
            return None
        return saved if saved.expires_at > (time.time() if now is None else now) else None

    def save(self, url: str, saved: SavedToken) -> None:
        data = self._live(self._read())
        data[_key(url)] = {"token": saved.token, "user": saved.user, "expires_at": saved.expires_at}
        self._write(data)

    def remove(self, url: str) -> SavedToken | None:
        """Forget the token of `url`; the one forgotten (expired or not), or None."""
        data = self._read()
        entry = data.pop(_key(url), None)
        self._write(self._live(data))
        if not isinstance(entry, dict) or "token" not in entry:
            return None
        return SavedToken(str(entry["token"]), str(entry.get("user", "")), float(entry.get("expires_at", 0)))

    @staticmethod
    def _live(data: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        return {k: v for k, v in data.items() if isinstance(v, dict) and float(v.get("expires_at", 0)) > now}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)  # 0600 by mkstemp
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            os.unlink(temp)
            raise
