"""Session state that survives a restart without Redis: token revocations in a SQLite file (WAL) under state_dir.

The embedded store serves one server process (several workers or servers sharing state need Redis), so the file
is mirrored in memory: checks, on every authenticated call, read the mirror and never touch the disk; a revocation
is written through to the file (in a worker thread, never on the event loop) before the call that made it
answers, and the file is read back into the mirror on the first use after a start. Rows expire with the tokens
they outlive: the expiry is wall-clock time, so it holds across restarts.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from zfsapi.application.auth import Revocations

from ..memory.sessions import MemoryRevocations
from .file import open_state_db

FILE = "sessions.sqlite3"
_SCHEMA = "CREATE TABLE IF NOT EXISTS revocations (key TEXT PRIMARY KEY, value REAL NOT NULL, expires_at REAL NOT NULL)"


class EmbeddedRevocations(Revocations):
    def __init__(self, state_dir: str) -> None:
        self._state_dir = state_dir
        self._memory = MemoryRevocations()
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()  # one connection, used from worker threads one at a time
        self._loaded = False
        self._load_lock = asyncio.Lock()

    # ---- the port ----
    async def revoke(self, jti: str, ttl: float) -> None:
        await self._ready()
        if ttl > 0:
            await asyncio.to_thread(self._write, "jti:" + jti, 1.0, time.time() + ttl)
            await self._memory.revoke(jti, ttl)

    async def revoke_before(self, subject: str, issued_before: float, ttl: float) -> None:
        await self._ready()
        _, current = await self._memory.state("", subject)
        if current is not None and current >= issued_before:
            return
        await asyncio.to_thread(self._write, "nbf:" + subject, issued_before, time.time() + ttl)
        await self._memory.revoke_before(subject, issued_before, ttl)

    async def state(self, jti: str, subject: str) -> tuple[bool, float | None]:
        if not self._loaded:
            await self._ready()
        return await self._memory.state(jti, subject)

    # ---- the file ----
    async def _ready(self) -> None:
        if self._loaded:
            return
        async with self._load_lock:
            if not self._loaded:
                rows = await asyncio.to_thread(self._read_all)
                now = time.time()
                for key, value, expires_at in rows:
                    kind, _, name = key.partition(":")
                    if kind == "jti":
                        await self._memory.revoke(name, expires_at - now)
                    elif kind == "nbf":
                        await self._memory.revoke_before(name, value, expires_at - now)
                self._loaded = True

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_state_db(self._state_dir, FILE, _SCHEMA, check_same_thread=False)
        return self._db

    def _read_all(self) -> list[tuple[str, float, float]]:
        with self._db_lock:
            db = self._connect()
            db.execute("DELETE FROM revocations WHERE expires_at <= ?", (time.time(),))
            return list(db.execute("SELECT key, value, expires_at FROM revocations"))

    def _write(self, key: str, value: float, expires_at: float) -> None:
        with self._db_lock:
            db = self._connect()
            db.execute("INSERT OR REPLACE INTO revocations (key, value, expires_at) VALUES (?, ?, ?)",
                       (key, value, expires_at))
            db.execute("DELETE FROM revocations WHERE expires_at <= ?", (time.time(),))

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None
