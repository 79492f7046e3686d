"""Jobs that survive a restart without Redis: a SQLite file (WAL) under state_dir, shared safely by every process
that opens it (uvicorn workers, a second server on the same host).

Each change is one BEGIN IMMEDIATE transaction (it takes the file's write lock before reading, so two workers can
never both claim one job; a writer waits up to the busy timeout for another). The record is stored whole, as the
codec's JSON; the columns beside it exist for the indexes (listing and filters, claim order, purge). SQLite
runs on one thread of the store's own, never on the event loop: one connection, opened there on first use."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import FINISHED, Job, JobState

from .. import job_rules as rules
from ..job_codec import decode_job, encode_job
from .file import open_state_db

T = TypeVar("T")
FILE = "jobs.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, lease_until REAL, finished_at REAL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_kind ON jobs (kind, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_state_owner ON jobs (state, owner, created_at, job_id);
CREATE TABLE IF NOT EXISTS job_names (name TEXT NOT NULL, job_id TEXT NOT NULL, PRIMARY KEY (name, job_id))
    WITHOUT ROWID
"""
_NAMES_VERSION = 1  # PRAGMA user_version from which job_names indexes every job (older files are filled in once)
_FINISHED = tuple(s.value for s in FINISHED)
_QUEUED, _RUNNING = JobState.QUEUED.value, JobState.RUNNING.value


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, its lock taken before the first read."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # (SQLite rolls back on its own after some errors, a full disk among them)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _store(db: sqlite3.Connection, job: Job) -> None:
    db.execute("UPDATE jobs SET state = ?, lease_until = ?, finished_at = ?, record = ? WHERE job_id = ?",
               (job.state.value, job.lease_until, job.finished_at, encode_job(job).decode(), job.job_id))


def _records(db: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Job]:
    return [decode_job(record) for (record,) in db.execute(sql, args)]


def _name_rows(job: Job) -> list[tuple[str, str]]:
    return [(name, job.job_id) for name in rules.scope_names(job)]


def _index_names(db: sqlite3.Connection) -> None:
    """Fill job_names for the jobs of a file written before it existed (once: user_version says so)."""
    with _immediate(db):
        (version,), = db.execute("PRAGMA user_version")
        if version >= _NAMES_VERSION:
            return
        for (record,) in db.execute("SELECT record FROM jobs").fetchall():
            db.executemany("INSERT OR IGNORE INTO job_names (name, job_id) VALUES (?, ?)",
                           _name_rows(decode_job(record)))
        db.execute(f"PRAGMA user_version = {_NAMES_VERSION}")


def _where(state: JobState | None, kind: str | None, owner: str | None,
           scope: tuple[str, ...] | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause of a listing and its arguments. A scope is a range of job_names' primary key per prefix
    (the prefix itself, and names from "prefix/" up to "prefix0", "0" following "/"), plus "" (no names)."""
    filters = {column: value for column, value in
               (("state", None if state is None else state.value), ("kind", kind), ("owner", owner))
               if value is not None}
    clauses, args = [f"{column} = ?" for column in filters], list(filters.values())
    if scope is not None:
        ranges = " OR ".join("name = ? OR (name >= ? AND name < ?)" for _ in scope)
        clauses.append(f"job_id IN (SELECT job_id FROM job_names WHERE name = ''{' OR ' + ranges if scope else ''})")
        args.extend(a for p in scope for a in (p, p + "/", p + "0"))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def _claim_next(db: sqlite3.Connection) -> Job | None:
    """The fair pick (`rules.next_owner`) of the queued jobs, read in the caller's transaction."""
    running = dict(db.execute("SELECT owner, count(*) FROM jobs WHERE state = ? GROUP BY owner", (_RUNNING,)))
    heads: dict[str, tuple[float, str]] = {}
    for (owner,) in db.execute("SELECT DISTINCT owner FROM jobs WHERE state = ?", (_QUEUED,)).fetchall():
        (created_at, job_id), = db.execute("SELECT created_at, job_id FROM jobs WHERE state = ? AND owner = ?"
                                           " ORDER BY created_at, job_id LIMIT 1", (_QUEUED, owner))
        heads[owner] = (created_at, job_id)
    owner = rules.next_owner(heads, running)
    if owner is None:
        return None
    return _records(db, "SELECT record FROM jobs WHERE job_id = ?", (heads[owner][1],))[0]


class EmbeddedJobStore(rules.ChangesByRules):
    def __init__(self, state_dir: str) -> None:
        self._state_dir = state_dir
        self._db: sqlite3.Connection | None = None  # used on self._thread only
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="zfsapi-jobs")

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._db is None:
                db = open_state_db(self._state_dir, FILE, _SCHEMA)
                try:
                    _index_names(db)
                except BaseException:
                    db.close()
                    raise
                self._db = db
            return work(self._db)
        except sqlite3.DatabaseError as exc:  # locked past the busy timeout, I/O error, not a database
            raise ServiceUnavailable("job store", str(exc)) from None
        except OSError as exc:  # state_dir or the file cannot be made or opened
            raise ServiceUnavailable("job store", exc.strerror or type(exc).__name__) from None

    def close(self) -> None:
        """Close the connection and stop the store's thread (waiting for work in flight)."""
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
        self._thread.submit(close).result()
        self._thread.shutdown()

    # ---- the port ----
    async def add(self, job: Job, *, max_per_owner: int | None = None) -> None:
        def add(db: sqlite3.Connection) -> bool:
            with _immediate(db):
                if db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job.job_id,)).fetchone():
                    return False
                (active,), = db.execute("SELECT count(*) FROM jobs WHERE state IN (?, ?) AND owner = ?",
                                        (_QUEUED, _RUNNING, job.owner.name))
                rules.admit(job.owner.name, active, max_per_owner)
                db.execute(
                    "INSERT INTO jobs (job_id, kind, owner, state, created_at, lease_until, finished_at, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.job_id, job.kind, job.owner.name, job.state.value, job.created_at, job.lease_until,
                     job.finished_at, encode_job(job).decode()))
                db.executemany("INSERT OR IGNORE INTO job_names (name, job_id) VALUES (?, ?)", _name_rows(job))
                return True
        if not await self._run(add):
            raise ValueError(f"job {job.job_id} exists")

    async def get(self, job_id: str) -> Job | None:
        found = await self._run(lambda db: _records(db, "SELECT record FROM jobs WHERE job_id = ?", (job_id,)))
        return found[0] if found else None

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   scope: tuple[str, ...] | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[Job], int]:
        where, args = _where(state, kind, owner, scope)

        def query(db: sqlite3.Connection) -> tuple[list[Job], int]:
            db.execute("BEGIN")  # one snapshot for the page and the total
            try:
                (total,), = db.execute("SELECT count(*) FROM jobs" + where, args)
                page = _records(db, f"SELECT record FROM jobs{where} ORDER BY created_at DESC, job_id DESC"
                                " LIMIT ? OFFSET ?", (*args, max(0, limit), max(0, offset)))
            finally:
                db.execute("COMMIT")
            return page, total
        return await self._run(query)

    async def _change(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        def apply(db: sqlite3.Connection) -> Job | None:
            with _immediate(db):
                found = _records(db, "SELECT record FROM jobs WHERE job_id = ?", (job_id,))
                new = change(found[0]) if found else None
                if new is not None and new is not found[0]:
                    _store(db, new)
                return new
        return await self._run(apply)

    async def claim(self, worker: str, now: float, lease_until: float) -> Job | None:
        def claim(db: sqlite3.Connection) -> Job | None:
            with _immediate(db):
                queued = _claim_next(db)
                if queued is None:
                    return None
                job = rules.claimed(queued, worker, now, lease_until)
                _store(db, job)
                return job
        return await self._run(claim)

    async def interrupt_lapsed(self, now: float, *, grace: float = 0.0) -> list[Job]:
        def interrupt(db: sqlite3.Connection) -> list[Job]:
            with _immediate(db):
                running = _records(db, "SELECT record FROM jobs WHERE state = ? AND lease_until + ? < ?",
                                   (_RUNNING, grace, now))
                lapsed = [new for new in (rules.lapsed(j, now, grace) for j in running) if new is not None]
                for job in lapsed:
                    _store(db, job)
                return lapsed
        return await self._run(interrupt)

    async def purge(self, finished_before: float) -> int:
        def purge(db: sqlite3.Connection) -> int:
            with _immediate(db):
                marks = ", ".join("?" * len(_FINISHED))
                # +state: rows are found by finished_at (its index), the state only checked
                old = f"SELECT job_id FROM jobs WHERE finished_at < ? AND +state IN ({marks})"
                args = (finished_before, *_FINISHED)
                db.execute(f"DELETE FROM job_names WHERE job_id IN ({old})", args)
                return db.execute(f"DELETE FROM jobs WHERE job_id IN ({old})", args).rowcount
        return await self._run(purge)
