"""Policies created over the API and their ledger (the scheduler's last slot per schedule, status notes), surviving
a restart without Redis: a SQLite file (WAL) under state_dir, shared safely by every process that opens it.

Each change is one statement or one BEGIN IMMEDIATE transaction: a name is added once, a replace is a compare-and-
set on the revision, and a slot is claimed by one upsert that writes only a later slot, so of several processes
on one file exactly one gets True for a slot. A policy is stored whole as the codec's JSON, a note as a JSON
object. SQLite runs in worker threads, never on the event loop, on one connection (opened there on first use)
that a lock gives to one thread at a time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping, TypeVar

from zfsapi.application.policy_state import PolicyLedger, PolicyStore, StoredPolicy
from zfsapi.domain.errors import AlreadyExists, ServiceUnavailable

from ..policy_codec import decode_note, decode_policy, encode_note, encode_policy
from .file import open_state_db

T = TypeVar("T")
FILE = "policies.sqlite3"
SERVICE = "policy store"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS policies (name TEXT PRIMARY KEY, revision INTEGER NOT NULL, record TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_slots (key TEXT PRIMARY KEY, policy TEXT NOT NULL, slot TEXT NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS policy_slots_policy ON policy_slots (policy);
CREATE TABLE IF NOT EXISTS policy_notes (policy TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (policy, field)) WITHOUT ROWID
"""


def slot_policy(key: str) -> str:
    """The policy a slot key belongs to: the part before the first ':' (a policy name has none)."""
    return key.partition(":")[0]


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, its lock taken before the first read."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class EmbeddedPolicyStore(PolicyStore, PolicyLedger):
    def __init__(self, state_dir: str) -> None:
        self._state_dir = state_dir
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()  # one connection, used from worker threads one at a time

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._db_lock:
            try:
                if self._db is None:
                    self._db = open_state_db(self._state_dir, FILE, _SCHEMA, check_same_thread=False)
                return work(self._db)
            except sqlite3.DatabaseError as exc:  # locked past the busy timeout, I/O error, not a database
                raise ServiceUnavailable(SERVICE, str(exc)) from None
            except OSError as exc:  # state_dir or the file cannot be made or opened
                raise ServiceUnavailable(SERVICE, exc.strerror or type(exc).__name__) from None

    def close(self) -> None:
        """Close the connection (waiting for a call in flight); a later call opens it again."""
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ---- policies ----
    async def all(self) -> list[StoredPolicy]:
        rows = await self._run(lambda db: db.execute("SELECT record FROM policies ORDER BY name").fetchall())
        return [decode_policy(record) for (record,) in rows]

    async def get(self, name: str) -> StoredPolicy | None:
        row = await self._run(lambda db: db.execute("SELECT record FROM policies WHERE name = ?", (name,)).fetchone())
        return None if row is None else decode_policy(row[0])

    async def add(self, stored: StoredPolicy) -> None:
        record = encode_policy(stored).decode()
        added = await self._run(lambda db: db.execute(
            "INSERT OR IGNORE INTO policies (name, revision, record) VALUES (?, ?, ?)",
            (stored.name, stored.revision, record)).rowcount)
        if not added:
            raise AlreadyExists("policy", stored.name)

    async def replace(self, stored: StoredPolicy, *, revision: int) -> StoredPolicy | None:
        raw = encode_policy(replace(stored, revision=revision + 1))
        changed = await self._run(lambda db: db.execute(
            "UPDATE policies SET revision = ?, record = ? WHERE name = ? AND revision = ?",
            (revision + 1, raw.decode(), stored.name, revision)).rowcount)
        return decode_policy(raw) if changed else None

    async def remove(self, name: str) -> bool:
        removed = await self._run(lambda db: db.execute("DELETE FROM policies WHERE name = ?", (name,)).rowcount)
        return bool(removed)

    # ---- ledger ----
    async def claim_slot(self, key: str, slot: str) -> bool:
        # one statement: inserted, or updated only when later (BINARY collation: the strings' code point order)
        claimed = await self._run(lambda db: db.execute(
            "INSERT INTO policy_slots (key, policy, slot) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET slot = excluded.slot WHERE slot < excluded.slot",
            (key, slot_policy(key), slot)).rowcount)
        return bool(claimed)

    async def last_slot(self, key: str) -> str | None:
        row = await self._run(lambda db: db.execute("SELECT slot FROM policy_slots WHERE key = ?",
                                                    (key,)).fetchone())
        return None if row is None else str(row[0])

    async def note(self, policy: str, field: str, value: Mapping[str, Any]) -> None:
        raw = encode_note(value).decode()
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO policy_notes (policy, field, value) VALUES (?, ?, ?)", (policy, field, raw)))

    async def notes(self, policy: str) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda db: db.execute(
            "SELECT field, value FROM policy_notes WHERE policy = ? ORDER BY field", (policy,)).fetchall())
        return {field: decode_note(value) for field, value in rows}

    async def forget(self, policy: str) -> None:
        def forget(db: sqlite3.Connection) -> None:
            with _immediate(db):
                db.execute("DELETE FROM policy_notes WHERE policy = ?", (policy,))
                db.execute("DELETE FROM policy_slots WHERE policy = ?", (policy,))
        await self._run(forget)
