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

from zfsapi.adapters.outbound.sqlite_file import open_state_db
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import FINISHED, Job, JobState

from . import rules
from .codec import decode_job, encode_job

T = TypeVar("T")
FILE = "jobs.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, lease_until REAL, finished_at REAL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_kind ON jobs (kind, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL
"""
_FINISHED = tuple(s.value for s in FINISHED)


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
                self._db = open_state_db(self._state_dir, FILE, _SCHEMA)
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
    async def add(self, job: Job) -> None:
        def add(db: sqlite3.Connection) -> bool:
            with _immediate(db):
                cur = db.execute(
                    "INSERT OR IGNORE INTO jobs (job_id, kind, owner, state, created_at, lease_until, finished_at,"
                    " record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.job_id, job.kind, job.owner.name, job.state.value, job.created_at, job.lease_until,
                     job.finished_at, encode_job(job).decode()))
                return cur.rowcount == 1
        if not await self._run(add):
            raise ValueError(f"job {job.job_id} exists")

    async def get(self, job_id: str) -> Job | None:
        found = await self._run(lambda db: _records(db, "SELECT record FROM jobs WHERE job_id = ?", (job_id,)))
        return found[0] if found else None

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   limit: int = 100, offset: int = 0) -> tuple[list[Job], int]:
        filters = {column: value for column, value in
                   (("state", None if state is None else state.value), ("kind", kind), ("owner", owner))
                   if value is not None}
        where = " WHERE " + " AND ".join(f"{column} = ?" for column in filters) if filters else ""
        args = tuple(filters.values())

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
                oldest = _records(db, "SELECT record FROM jobs WHERE state = ? ORDER BY created_at, job_id LIMIT 1",
                                  (JobState.QUEUED.value,))
                if not oldest:
                    return None
                job = rules.claimed(oldest[0], worker, now, lease_until)
                _store(db, job)
                return job
        return await self._run(claim)

    async def interrupt_lapsed(self, now: float) -> list[Job]:
        def interrupt(db: sqlite3.Connection) -> list[Job]:
            with _immediate(db):
                running = _records(db, "SELECT record FROM jobs WHERE state = ? AND lease_until < ?",
                                   (JobState.RUNNING.value, now))
                lapsed = [new for new in (rules.lapsed(j, now) for j in running) if new is not None]
                for job in lapsed:
                    _store(db, job)
                return lapsed
        return await self._run(interrupt)

    async def requeue(self, job_id: str) -> Job | None:
        return await self._change(job_id, rules.requeued)

    async def purge(self, finished_before: float) -> int:
        def purge(db: sqlite3.Connection) -> int:
            with _immediate(db):
                marks = ", ".join("?" * len(_FINISHED))
                # +state: rows are found by finished_at (its index), the state only checked
                return db.execute(f"DELETE FROM jobs WHERE finished_at < ? AND +state IN ({marks})",
                                  (finished_before, *_FINISHED)).rowcount
        return await self._run(purge)
