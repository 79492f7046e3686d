"""Fencing and outcomes of the job runner, over the memory and the embedded SQLite store: two runners on one
store, the first stalled past its lease (its renewals held back), the second takes the job; the first's child is
killed before the second's starts and nothing the first writes afterwards lands. An outcome the store cannot
take (down, locked, full) is kept and written when it comes back, even after the lease lapsed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.job_drills import ChildWork, Faulty, Sampler, runner
from tests.unit.test_jobs import ADMIN, until
from zfsapi.adapters.outbound.state.sqlite import file as sqlite_file
from zfsapi.adapters.outbound.state.sqlite.jobs import FILE, EmbeddedJobStore
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.domain.jobs import JobProgress, JobState


@pytest.fixture(params=["memory", "embedded"])
def store(request, tmp_path: Path):
    if request.param == "memory":
        yield MemoryJobStore()
        return
    s = EmbeddedJobStore(str(tmp_path))
    yield s
    s.close()


async def test_a_stalled_holder_is_fenced_before_another_worker_takes_its_job(store) -> None:
    work = ChildWork()
    first_store = Faulty(store)
    jobs_a, a = runner(first_store, work, "a")
    jobs_b, b = runner(store, work, "b")
    await a.start()
    try:
        job = await jobs_a.submit("copy", ADMIN, {}, ())
        await until(lambda: work.holders() == {"a"}, "the first worker's child runs")
        await b.start()
        with Sampler(work) as sampler:
            first_store.stall.clear()  # its renewals hang from now on: stalled past the lease
            await until(lambda: work.holders() == {"b"}, "the second worker took the job and runs its child")
            taken = await store.get(job.job_id)
            assert (taken.state, taken.lease_owner, taken.fence, taken.attempts) == (
                JobState.RUNNING, b.worker_id, 2, 2)
            first_store.stall.set()  # the first comes back: its renewal must be refused, nothing of it lands
            await asyncio.sleep(1.0)
            assert a.running == 0 and work.holders() == {"b"}
            print(f"samples: {sampler.samples}, most holders with a live child at once: {sorted(sampler.most)}")
            assert len(sampler.most) == 1
        assert await store.renew(job.job_id, a.worker_id, 1e12, JobProgress("old"), fence=1) is None
        assert await store.finish(job.job_id, a.worker_id, JobState.SUCCEEDED, 1.0, fence=1,
                                  progress=JobProgress("old")) is None
        assert (await store.get(job.job_id)).lease_owner == b.worker_id
        work.gate.set()
        done = await jobs_b.wait(ADMIN, job.job_id, 30)
        assert (done.state, done.result) == (JobState.SUCCEEDED, {"fence": 2, "worker": "b"})
        assert work.started == [(job.job_id, 1), (job.job_id, 2)]
    finally:
        work.gate.set()
        await a.stop()
        await b.stop()
    assert work.alive == {}


async def test_the_same_runner_never_mistakes_an_old_run_for_its_new_one(store) -> None:
    """A runner that lost a job and claims it again holds a new token: a write of the old run is refused."""
    work = ChildWork()
    faulty = Faulty(store)
    jobs, r = runner(faulty, work, "a")
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        faulty.stall.clear()
        await until(lambda: r.running == 0, "the stalled run was fenced")
        faulty.stall.set()
        await until(lambda: len(work.started) == 2, "the same runner claimed it again (resumable)")
        assert [f for _, f in work.started] == [1, 2]
        assert await store.renew(job.job_id, r.worker_id, 1e12, JobProgress(), fence=1) is None
        work.gate.set()
        done = await jobs.wait(ADMIN, job.job_id, 30)
        assert (done.state, done.result["fence"], done.fence) == (JobState.SUCCEEDED, 2, 2)
    finally:
        work.gate.set()
        await r.stop()


async def test_an_outcome_waits_in_memory_until_the_store_takes_it(store) -> None:
    work = ChildWork()
    faulty = Faulty(store)
    jobs, r = runner(faulty, work, "a", lease=30.0)
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        faulty.down = True
        work.gate.set()  # the work is done while the store is away
        await until(lambda: r.unwritten == 1 and "finish" in faulty.refused, "the outcome kept, its write refused")
        assert (await store.get(job.job_id)).state is JobState.RUNNING
        await store.interrupt_lapsed(1e12)  # meanwhile another server saw the lease lapse
        assert (await store.get(job.job_id)).state is JobState.INTERRUPTED
        faulty.down = False
        await until(lambda: r.unwritten == 0, "the outcome written once the store is back")
        done = await store.get(job.job_id)
        print(f"finish refused {faulty.refused.count('finish')} times before it was written")
        assert (done.state, done.result) == (JobState.SUCCEEDED, {"fence": 1, "worker": "a"})
    finally:
        await r.stop()


async def test_an_outcome_survives_a_locked_and_a_full_embedded_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_file, "BUSY_TIMEOUT", 0.2)
    store = EmbeddedJobStore(str(tmp_path))
    work = ChildWork()
    jobs, r = runner(store, work, "a", lease=30.0)
    await r.start()
    locker = None
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        locker = sqlite3.connect(tmp_path / FILE, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock: "database is locked"
        work.gate.set()
        await until(lambda: r.unwritten == 1 and not work.alive, "the job ended, its outcome kept")
        await asyncio.sleep(1.0)
        assert r.unwritten == 1
        locker.execute("ROLLBACK")
        await until(lambda: r.unwritten == 0, "the outcome written once the lock is gone")
        assert (await store.get(job.job_id)).state is JobState.SUCCEEDED
    finally:
        if locker is not None:
            locker.close()
        await r.stop()
        store.close()


async def test_an_outcome_survives_a_full_disk(tmp_path: Path) -> None:
    store = EmbeddedJobStore(str(tmp_path))
    work = ChildWork()
    jobs, r = runner(store, work, "a", lease=30.0)
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: work.started, "the job started")
        await store._run(lambda db: db.execute("PRAGMA max_page_count = 1").fetchall())  # no page more: full
        work.pad = "x" * 200_000  # a result that needs pages the full file does not have
        work.gate.set()
        await until(lambda: r.unwritten == 1, "the outcome kept")
        await asyncio.sleep(1.0)
        assert r.unwritten == 1 and (await store.get(job.job_id)).state is JobState.RUNNING
        await store._run(lambda db: db.execute("PRAGMA max_page_count = 1073741823").fetchall())
        await until(lambda: r.unwritten == 0, "the outcome written once there is room")
        done = await store.get(job.job_id)
        assert done.state is JobState.SUCCEEDED and done.result == {"fence": 1, "worker": "a", "pad": work.pad}
    finally:
        await r.stop()
        store.close()
