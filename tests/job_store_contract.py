"""The JobStore port's contract (application/ports.py): every call answered the same way by the memory store,
the embedded SQLite store and the Redis store, including the races a store shared by several workers must win.

`JobStoreContract` holds the cases; a subclass provides the `stores` fixture (a Stores). tests/unit runs them
over the memory and embedded stores, tests/integration/service over Redis and over two embedded stores on one
file. Times are made-up epoch seconds: the port takes `now` from its caller, so nothing here waits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any, Callable

import pytest

from zfsapi.application.ports import JobStore
from zfsapi.domain.jobs import Job, JobError, JobOwner, JobProgress, JobState

T0 = 1_764_650_000.123456789  # no float of 14 digits: a store that rounds loses it
OWNER = JobOwner("ops: night shift", "operator", ("tank/a b", "tank/x.y:z"))
PARAMS: dict[str, Any] = {"snapshot": "tank/a b@2026-12-02 03:00", "ratio": 1 / 3, "levels": [1, 2.5, None],
                          "nested": {"ü": True, "big": 2**53 + 1}}
PROGRESS = JobProgress("sending", 123_456_789_012, 987_654_321_098, 0.1 + 0.2, 1e-300)
LEASE = 30.0


@dataclass
class Stores:
    store: JobStore
    other: JobStore  # another worker's view of the same records (another process); memory: the same store
    reopen: Callable[[], JobStore] | None  # a new instance on the same records (a restart); None: none survive


def make(job_id: str, created_at: float = T0, *, kind: str = "send_to_file", owner: JobOwner = OWNER,
         **fields: Any) -> Job:
    return Job(job_id, kind, owner, PARAMS, ("tank/a b",), created_at, **fields)


async def ids(store: JobStore, **filters: Any) -> tuple[list[str], int]:
    jobs, total = await store.query(**filters)
    return [j.job_id for j in jobs], total


class JobStoreContract:
    """The cases; a subclass provides the `stores` fixture."""

    async def test_add_and_get_keep_every_field_exactly(self, stores: Stores) -> None:
        job = make("job 1", error=JobError(-32010, "boom", {"stderr": "x\ny", "rate": 2 / 3}), progress=PROGRESS,
                   result={"bytes": 10, "ratio": 0.7}, started_at=T0 + 1 / 7, cancel_requested=True, attempts=2)
        await stores.store.add(job)
        assert await stores.store.get("job 1") == job
        assert await stores.other.get("job 1") == job
        assert await stores.store.get("job 2") is None
        with pytest.raises(ValueError, match="^job job 1 exists$"):
            await stores.other.add(make("job 1", T0 + 5))
        assert await stores.store.get("job 1") == job

    async def test_query_filters_newest_first_with_total(self, stores: Stores) -> None:
        bob = JobOwner("bob", "admin")
        for job in (make("a", T0 + 1), make("b", T0 + 3, kind="scrub"), make("c", T0 + 3, owner=bob),
                    make("d", T0 + 2, state=JobState.SUCCEEDED, finished_at=T0 + 9),
                    make("e", T0, kind="scrub", owner=bob, state=JobState.FAILED, finished_at=T0 + 8)):
            await stores.store.add(job)
        s = stores.other
        assert await ids(s) == (["c", "b", "d", "a", "e"], 5)  # equal created_at: the greater id first
        assert await ids(s, limit=2) == (["c", "b"], 5)
        assert await ids(s, limit=2, offset=2) == (["d", "a"], 5)
        assert await ids(s, limit=2, offset=4) == (["e"], 5)
        assert await ids(s, offset=5) == ([], 5)
        assert await ids(s, limit=0) == ([], 5)
        assert await ids(s, state=JobState.QUEUED) == (["c", "b", "a"], 3)
        assert await ids(s, kind="scrub") == (["b", "e"], 2)
        assert await ids(s, owner="bob") == (["c", "e"], 2)
        assert await ids(s, kind="scrub", owner="bob") == (["e"], 1)
        assert await ids(s, state=JobState.QUEUED, kind="send_to_file", owner=OWNER.name) == (["a"], 1)
        assert await ids(s, state=JobState.QUEUED, owner=OWNER.name, limit=1, offset=1) == (["a"], 2)
        assert await ids(s, state=JobState.RUNNING) == ([], 0)
        assert await ids(s, kind="scrub", state=JobState.SUCCEEDED) == ([], 0)
        assert await ids(s, owner="nobody") == ([], 0)
        jobs, _ = await s.query(kind="scrub", owner="bob")
        assert jobs == [await s.get("e")]

    async def test_claim_takes_the_oldest_queued_job(self, stores: Stores) -> None:
        for job in (make("late", T0 + 2), make("b", T0 + 1), make("a", T0 + 1), make("done", T0,
                    state=JobState.SUCCEEDED, finished_at=T0 + 1), make("running", T0 - 1, state=JobState.RUNNING,
                    lease_owner="w0", lease_until=T0 + 99, started_at=T0, attempts=1)):
            await stores.store.add(job)
        now = T0 + 10
        first = await stores.other.claim("worker 1", now, now + LEASE)
        assert first == replace(make("a", T0 + 1), state=JobState.RUNNING, started_at=now, lease_owner="worker 1",
                                lease_until=now + LEASE, attempts=1)
        assert await stores.store.get("a") == first
        assert [(await stores.store.claim("worker 2", now, now + LEASE) or make("none")).job_id
                for _ in range(3)] == ["b", "late", "none"]
        assert await stores.other.claim("worker 1", now, now + LEASE) is None
        assert await ids(stores.store, state=JobState.RUNNING) == (["late", "b", "a", "running"], 4)

    async def test_concurrent_claims_hand_each_job_to_one_worker(self, stores: Stores) -> None:
        for n in range(10):
            await stores.store.add(make(f"job {n:02}", T0 + n % 3))
        now = T0 + 10
        claims = await asyncio.gather(*(
            (stores.store if n % 2 else stores.other).claim(f"worker {n}", now, now + LEASE) for n in range(20)))
        won = {job.job_id: job.lease_owner for job in claims if job is not None}
        assert sorted(won) == [f"job {n:02}" for n in range(10)]
        assert sum(job is None for job in claims) == 10
        for job_id, worker in won.items():
            stored = await stores.store.get(job_id)
            assert stored is not None and (stored.state, stored.lease_owner, stored.attempts) == (
                JobState.RUNNING, worker, 1)

    async def test_only_the_lease_holder_renews_and_finishes(self, stores: Stores) -> None:
        await stores.store.add(make("j"))
        now = T0 + 10
        claimed = await stores.store.claim("w1", now, now + LEASE)
        assert claimed is not None
        assert await stores.other.renew("j", "w2", now + 99, PROGRESS) is None
        assert await stores.other.finish("j", "w2", JobState.SUCCEEDED, now, progress=PROGRESS) is None
        assert await stores.store.renew("missing", "w1", now + 99, PROGRESS) is None
        assert await stores.store.get("j") == claimed
        renewed = await stores.other.renew("j", "w1", now + 60.25, PROGRESS)
        assert renewed == replace(claimed, lease_until=now + 60.25, progress=PROGRESS)
        assert await stores.store.get("j") == renewed
        with pytest.raises(ValueError, match="^a job cannot finish as running$"):
            await stores.store.finish("j", "w1", JobState.RUNNING, now, progress=PROGRESS)
        done = await stores.store.finish("j", "w1", JobState.SUCCEEDED, now + 1.5, progress=PROGRESS,
                                         result={"bytes": 1 / 3})
        assert done == replace(renewed, state=JobState.SUCCEEDED, finished_at=now + 1.5, result={"bytes": 1 / 3},
                               lease_owner=None, lease_until=None)
        assert await stores.other.get("j") == done
        assert await stores.store.renew("j", "w1", now + 99, PROGRESS) is None  # over: the lease went with it
        assert await stores.store.finish("j", "w1", JobState.FAILED, now, progress=PROGRESS) is None
        assert await stores.store.get("j") == done

    async def test_a_failure_keeps_its_error(self, stores: Stores) -> None:
        await stores.store.add(make("f"))
        claimed = await stores.store.claim("w", T0, T0 + LEASE)
        assert claimed is not None
        error = JobError(-32011, "receive failed: cannot receive", {"exit_code": 1, "ratio": 0.1 + 0.7})
        failed = await stores.other.finish("f", "w", JobState.FAILED, T0 + 2, progress=JobProgress("receiving"),
                                           error=error)
        assert failed == replace(claimed, state=JobState.FAILED, finished_at=T0 + 2, error=error,
                                 progress=JobProgress("receiving"), lease_owner=None, lease_until=None)
        assert await stores.store.get("f") == failed

    async def test_cancel(self, stores: Stores) -> None:
        s, now = stores.store, T0 + 10
        for n, job_id in enumerate(("done", "running", "queued")):
            await s.add(make(job_id, T0 + n))
        assert await s.claim("w1", now, now + LEASE) is not None
        done = await s.finish("done", "w1", JobState.SUCCEEDED, now + 1, progress=PROGRESS)
        running = await s.claim("w2", now, now + LEASE)
        assert done is not None and running is not None and running.job_id == "running"
        cancelled = await stores.other.cancel("queued", now + 2)
        assert cancelled == replace(make("queued", T0 + 2), state=JobState.CANCELLED, finished_at=now + 2,
                                    cancel_requested=True)
        assert await s.get("queued") == cancelled
        assert await s.cancel("queued", now + 3) == cancelled  # finished now: left as it is
        assert await s.claim("w3", now, now + LEASE) is None  # never claimed
        asked = await stores.other.cancel("running", now + 2)
        assert asked == replace(running, cancel_requested=True)  # still running: its worker stops it
        assert await s.cancel("running", now + 4) == asked
        assert await s.get("running") == asked
        renewed = await s.renew("running", "w2", now + 90, PROGRESS)  # how the worker learns it
        assert renewed == replace(asked, lease_until=now + 90, progress=PROGRESS)
        stopped = await s.finish("running", "w2", JobState.CANCELLED, now + 5, progress=PROGRESS)
        assert stopped == replace(renewed, state=JobState.CANCELLED, finished_at=now + 5, lease_owner=None,
                                  lease_until=None)
        assert await stores.other.cancel("done", now + 6) == done
        assert await s.get("done") == done
        assert await s.cancel("missing", now) is None

    async def test_interrupt_lapsed_leases(self, stores: Stores) -> None:
        now = T0 + 100
        for job_id, lease_until in (("lapsed", now - 0.001), ("asked", now - 5), ("edge", now), ("alive", now + 1)):
            await stores.store.add(make(job_id, T0 + len(job_id)))
            job = await stores.store.claim("w " + job_id, T0, lease_until)
            assert job is not None and job.job_id == job_id
        await stores.store.cancel("asked", T0 + 1)
        await stores.store.add(make("queued", T0))
        before = {j.job_id: j for j in (await stores.store.query())[0]}
        lapsed = await stores.other.interrupt_lapsed(now)
        assert sorted(lapsed, key=lambda j: j.job_id) == [before["asked"].lapse(now), before["lapsed"].lapse(now)]
        assert [(j.state, j.finished_at, j.lease_owner) for j in sorted(lapsed, key=lambda j: j.job_id)] == [
            (JobState.CANCELLED, now, None), (JobState.INTERRUPTED, now, None)]
        for job in lapsed:
            assert await stores.store.get(job.job_id) == job
        for job_id in ("edge", "alive", "queued"):  # a lease ending at `now` has not ended before it
            assert await stores.store.get(job_id) == before[job_id]
        assert await stores.store.renew("lapsed", "w lapsed", now + LEASE, PROGRESS) is None  # too late
        assert await stores.store.finish("lapsed", "w lapsed", JobState.SUCCEEDED, now, progress=PROGRESS) is None
        assert await stores.other.interrupt_lapsed(now) == []

    async def test_requeue_only_an_interrupted_job(self, stores: Stores) -> None:
        s = stores.store
        await s.add(make("r", T0 + 5))
        first = await s.claim("w1", T0 + 10, T0 + 20)
        assert first is not None
        await s.renew("r", "w1", T0 + 20, PROGRESS)
        [interrupted] = await s.interrupt_lapsed(T0 + 30)
        assert await s.claim("w2", T0 + 31, T0 + 40) is None  # interrupted is not queued
        requeued = await stores.other.requeue("r")
        assert requeued == replace(interrupted, state=JobState.QUEUED, finished_at=None)
        assert requeued.progress == PROGRESS  # where it got to: the job resumes from there
        assert await s.get("r") == requeued
        assert await s.requeue("r") is None  # queued
        await s.add(make("newer", T0 + 6))
        again = await s.claim("w2", T0 + 50, T0 + 80)  # the oldest queued: the requeued job, created first
        assert again == replace(requeued, state=JobState.RUNNING, lease_owner="w2", lease_until=T0 + 80,
                                attempts=2, started_at=T0 + 10)
        assert await s.requeue("r") is None  # running
        assert await s.finish("r", "w2", JobState.SUCCEEDED, T0 + 60, progress=PROGRESS) is not None
        assert await s.requeue("r") is None  # succeeded
        assert await s.requeue("missing") is None
        # a worker that stops (server shutdown) after a cancel was asked for: interrupted, but not to resume
        stopping = await s.claim("w3", T0 + 61, T0 + 90)
        assert stopping is not None and stopping.job_id == "newer"
        await s.cancel("newer", T0 + 62)
        await s.finish("newer", "w3", JobState.INTERRUPTED, T0 + 63, progress=PROGRESS)
        assert await stores.other.requeue("newer") is None
        stored = await s.get("newer")
        assert stored is not None and (stored.state, stored.cancel_requested) == (JobState.INTERRUPTED, True)

    async def test_purge_only_jobs_finished_before_the_time(self, stores: Stores) -> None:
        s = stores.store
        for n, (state, finished_at) in enumerate(((JobState.SUCCEEDED, T0 + 1), (JobState.FAILED, T0 + 2),
                                                   (JobState.CANCELLED, T0 + 3), (JobState.INTERRUPTED, T0 + 4),
                                                   (JobState.SUCCEEDED, T0 + 5))):
            await s.add(make(f"f{n}", T0 + n, kind="scrub" if n % 2 else "send_to_file", state=state,
                             finished_at=finished_at))
        await s.add(make("running", T0 - 10))
        await s.add(make("queued", T0 - 9))
        running = await s.claim("w", T0, T0 + 1)
        assert running is not None and running.job_id == "running"
        assert await stores.other.purge(T0 + 5) == 4  # f4 finished at T0 + 5: not before it
        assert await ids(s) == (["f4", "queued", "running"], 3)
        assert await ids(s, kind="scrub") == ([], 0)
        assert await ids(s, state=JobState.SUCCEEDED) == (["f4"], 1)
        for n in range(4):
            assert await s.get(f"f{n}") is None
        assert await s.purge(T0 + 5) == 0
        assert await s.purge(T0 + 1000) == 1  # the lease of "running" lapsed long ago, but it is not finished
        assert await ids(s) == (["queued", "running"], 2)
        claimed = await s.claim("w", T0, T0 + 1)
        assert claimed is not None and claimed.job_id == "queued"
        await s.add(make("f0", T0))  # its id is free again

    async def test_records_survive_a_restart(self, stores: Stores) -> None:
        if stores.reopen is None:
            pytest.skip("the memory store keeps nothing past its process")
        await stores.store.add(make("q", T0 + 1 / 3))
        await stores.store.add(make("r", T0 + 2 / 3))
        await stores.store.add(make("old", T0, state=JobState.FAILED, finished_at=T0 + 0.1,
                                    error=JobError(1, "no", {"f": 1e-7})))
        running = await stores.store.claim("w", T0 + 0.5, T0 + 0.75)  # "old" is not queued: "q"
        assert running is not None and running.job_id == "q"
        renewed = await stores.store.renew("q", "w", T0 + 0.875, PROGRESS)
        before = await stores.store.query()
        restarted = stores.reopen()
        assert await restarted.query() == before
        assert await restarted.get("q") == renewed
        assert [j.job_id for j in await restarted.interrupt_lapsed(T0 + 1)] == ["q"]
        assert await restarted.requeue("q") is not None
        claimed = await restarted.claim("w2", T0 + 2, T0 + 3)
        assert claimed is not None and (claimed.job_id, claimed.attempts, claimed.progress) == ("q", 2, PROGRESS)
        assert await restarted.purge(T0 + 1) == 1
