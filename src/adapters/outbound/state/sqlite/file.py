"""The one way this server opens a SQLite file under state_dir (the SQLite revocation and job stores)."""

from __future__ import annotations

import os
import sqlite3
import time

BUSY_TIMEOUT = 30.0  # seconds a connection waits for another's write lock (SQLite's busy_timeout)


def open_state_db(state_dir: str, file: str, schema: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """`<state_dir>/<file>`, made 0600 (state_dir 0700) on first use, in WAL mode, with `schema` applied (a script
    of idempotent statements, run in one write transaction so servers starting together apply it once).
    Autocommit: callers open their own transactions."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, file)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)  # created 0600 before SQLite opens it (its own default honours the umask; -wal/-shm copy this mode)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=check_same_thread)
    try:
        _wal(db)
        db.execute("PRAGMA synchronous=FULL")  # a change acknowledged is a change kept
        db.executescript(f"BEGIN IMMEDIATE; {schema}; COMMIT;")
    except BaseException:
        db.close()
        raise
    return db


def _wal(db: sqlite3.Connection) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once, without waiting out the busy timeout, when
    another connection is switching the same new file at that moment (servers or workers starting together):
    try again for up to BUSY_TIMEOUT. Runs on the store's own thread, never on the event loop."""
    deadline, pause = time.monotonic() + BUSY_TIMEOUT, 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
