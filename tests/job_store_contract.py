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
from zfsapi.domain.errors import TooManyJobs
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
        job = make("job 1", error=JobError("boom", {"stderr": "x\ny", "rate": 2 / 3}, error="NotFound"), progress=PROGRESS,
                   result={"bytes": 10, "ratio": 0.7}, started_at=T0 + 1 / 7, cancel_requested=True, attempts=2,
                   fence=7)
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
                    lease_owner="w0", lease_until=T0 + 99, started_at=T0, attempts=1, fence=1)):
            await stores.store.add(job)
        now = T0 + 10
        first = await stores.other.claim("worker 1", now, now + LEASE)
        assert first == replace(make("a", T0 + 1), state=JobState.RUNNING, started_at=now, lease_owner="worker 1",
                                lease_until=now + LEASE, attempts=1, fence=1)
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
            assert stored is not None and (stored.state, stored.lease_owner, stored.attempts, stored.fence) == (
                JobState.RUNNING, worker, 1, 1)

    async def test_only_the_lease_holder_renews_and_finishes(self, stores: Stores) -> None:
        await stores.store.add(make("j"))
        now = T0 + 10
        claimed = await stores.store.claim("w1", now, now + LEASE)
        assert claimed is not None
        assert await stores.other.renew("j", "w2", now + 99, PROGRESS, fence=1) is None
        assert await stores.other.finish("j", "w2", JobState.SUCCEEDED, now, fence=1, progress=PROGRESS) is None
        assert await stores.store.renew("missing", "w1", now + 99, PROGRESS, fence=1) is None
        assert await stores.store.get("j") == claimed
        renewed = await stores.other.renew("j", "w1", now + 60.25, PROGRESS, fence=1)
        assert renewed == replace(claimed, lease_until=now + 60.25, progress=PROGRESS)
        assert await stores.store.get("j") == renewed
        with pytest.raises(ValueError, match="^a job cannot finish as running$"):
            await stores.store.finish("j", "w1", JobState.RUNNING, now, fence=1, progress=PROGRESS)
        done = await stores.store.finish("j", "w1", JobState.SUCCEEDED, now + 1.5, fence=1, progress=PROGRESS,
                                         result={"bytes": 1 / 3})
        assert done == replace(renewed, state=JobState.SUCCEEDED, finished_at=now + 1.5, result={"bytes": 1 / 3},
                               lease_owner=None, lease_until=None)
        assert await stores.other.get("j") == done
        assert await stores.store.renew("j", "w1", now + 99, PROGRESS, fence=1) is None  # over: the lease went with it
        assert await stores.store.finish("j", "w1", JobState.FAILED, now, fence=1, progress=PROGRESS) is None
        assert await stores.store.get("j") == done

    async def test_a_failure_keeps_its_error(self, stores: Stores) -> None:
        await stores.store.add(make("f"))
        claimed = await stores.store.claim("w", T0, T0 + LEASE)
        assert claimed is not None
        error = JobError("receive failed: cannot receive", {"exit_code": 1, "ratio": 0.1 + 0.7}, error="ReceiveFailed")
        failed = await stores.other.finish("f", "w", JobState.FAILED, T0 + 2, fence=1, progress=JobProgress("receiving"),
                                           error=error)
        assert failed == replace(claimed, state=JobState.FAILED, finished_at=T0 + 2, error=error,
                                 progress=JobProgress("receiving"), lease_owner=None, lease_until=None)
        assert await stores.store.get("f") == failed

    async def test_cancel(self, stores: Stores) -> None:
        s, now = stores.store, T0 + 10
        for n, job_id in enumerate(("done", "running", "queued")):
            await s.add(make(job_id, T0 + n))
        assert await s.claim("w1", now, now + LEASE) is not None
        done = await s.finish("done", "w1", JobState.SUCCEEDED, now + 1, fence=1, progress=PROGRESS)
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
        renewed = await s.renew("running", "w2", now + 90, PROGRESS, fence=1)  # how the worker learns it
        assert renewed == replace(asked, lease_until=now + 90, progress=PROGRESS)
        stopped = await s.finish("running", "w2", JobState.CANCELLED, now + 5, fence=1, progress=PROGRESS)
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
        assert await stores.store.renew("lapsed", "w lapsed", now + LEASE, PROGRESS, fence=1) is None  # too late
        assert await stores.store.finish("lapsed", "w lapsed", JobState.FAILED, now, fence=1, progress=PROGRESS) is None
        assert await stores.other.interrupt_lapsed(now) == []

    async def test_requeue_only_an_interrupted_job(self, stores: Stores) -> None:
        s = stores.store
        await s.add(make("r", T0 + 5))
        first = await s.claim("w1", T0 + 10, T0 + 20)
        assert first is not None
        await s.renew("r", "w1", T0 + 20, PROGRESS, fence=1)
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
                                attempts=2, started_at=T0 + 10, fence=2)
        assert await s.requeue("r") is None  # running
        assert await s.finish("r", "w2", JobState.SUCCEEDED, T0 + 60, fence=2, progress=PROGRESS) is not None
        assert await s.requeue("r") is None  # succeeded
        assert await s.requeue("missing") is None
        # a worker that stops (server shutdown) after a cancel was asked for: interrupted, but not to resume
        stopping = await s.claim("w3", T0 + 61, T0 + 90)
        assert stopping is not None and stopping.job_id == "newer"
        await s.cancel("newer", T0 + 62)
        await s.finish("newer", "w3", JobState.INTERRUPTED, T0 + 63, fence=1, progress=PROGRESS)
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
                                    error=JobError("no", {"f": 1e-7}, error="Busy")))
        running = await stores.store.claim("w", T0 + 0.5, T0 + 0.75)  # "old" is not queued: "q"
        assert running is not None and running.job_id == "q"
        renewed = await stores.store.renew("q", "w", T0 + 0.875, PROGRESS, fence=1)
        before = await stores.store.query()
        restarted = stores.reopen()
        assert await restarted.query() == before
        assert await restarted.get("q") == renewed
        assert [j.job_id for j in await restarted.interrupt_lapsed(T0 + 1)] == ["q"]
        assert await restarted.requeue("q") is not None
        claimed = await restarted.claim("w2", T0 + 2, T0 + 3)
        assert claimed is not None and (claimed.job_id, claimed.attempts, claimed.progress) == ("q", 2, PROGRESS)
        assert await restarted.purge(T0 + 1) == 1


    async def test_fencing_refuses_every_write_of_a_holder_whose_token_moved(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        await s.add(make("j"))
        first = await s.claim("w", T0, T0 + 10)
        assert first is not None and first.fence == 1
        [lapsed] = await o.interrupt_lapsed(T0 + 11)  # the holder stalled past its lease
        assert lapsed.fence == 1 and await o.requeue("j", fence=1) is not None
        again = await o.claim("w", T0 + 12, T0 + 40)  # the same worker id: only the token tells the runs apart
        assert again is not None and (again.fence, again.attempts, again.lease_owner) == (2, 2, "w")
        assert await s.renew("j", "w", T0 + 99, PROGRESS, fence=1) is None
        for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED):
            assert await s.finish("j", "w", state, T0 + 13, fence=1, progress=PROGRESS, result={"old": 1}) is None
        assert await o.get("j") == again  # nothing of the old run was written
        await s.cancel("j", T0 + 14)
        asked = await s.get("j")
        assert asked is not None and asked.cancel_requested
        assert await s.finish("j", "w", JobState.CANCELLED, T0 + 15, fence=1, progress=PROGRESS) is None
        [lapsed2] = await s.interrupt_lapsed(T0 + 41)  # cancel requested: lapses as cancelled, never requeued
        assert lapsed2.state is JobState.CANCELLED and await o.requeue("j", fence=2) is None
        await s.add(make("k", T0 + 1))
        k1 = await s.claim("w", T0 + 50, T0 + 51)
        assert k1 is not None and k1.job_id == "k"
        await s.interrupt_lapsed(T0 + 60)
        assert await o.requeue("k", fence=0) is None  # a requeue under a token that is not the job's
        assert await o.requeue("k", fence=1) is not None
        k2 = await s.claim("w2", T0 + 61, T0 + 90)
        assert k2 is not None and k2.fence == 2
        assert await s.renew("k", "w2", T0 + 91, PROGRESS, fence=2) == replace(k2, lease_until=T0 + 91,
                                                                               progress=PROGRESS)

    async def test_a_late_success_counts_while_nobody_claimed_since(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        for n, job_id in enumerate(("interrupted", "requeued", "taken", "failed", "cancelled")):
            await s.add(make(job_id, T0 + n))
            assert (await s.claim("w " + job_id, T0, T0 + 10) or make("none")).job_id == job_id
        await s.cancel("cancelled", T0 + 1)
        assert len(await o.interrupt_lapsed(T0 + 11)) == 5  # the holders stalled (or the store was away)
        assert await o.requeue("requeued", fence=1) is not None
        assert await o.requeue("taken", fence=1) is not None
        taken = await o.claim("w2", T0 + 12, T0 + 40)  # "requeued" is older: claimed first
        assert taken is not None and taken.job_id == "requeued"
        taken = await o.claim("w2", T0 + 12, T0 + 40)
        assert taken is not None and taken.job_id == "taken"
        late = await s.finish("interrupted", "w interrupted", JobState.SUCCEEDED, T0 + 20, fence=1,
                              progress=PROGRESS, result={"size_bytes": 10})
        assert late is not None and (late.state, late.result, late.finished_at, late.progress) == (
            JobState.SUCCEEDED, {"size_bytes": 10}, T0 + 20, PROGRESS)
        assert await o.get("interrupted") == late
        assert await s.finish("taken", "w taken", JobState.SUCCEEDED, T0 + 20, fence=1, progress=PROGRESS) is None
        assert await s.finish("failed", "w failed", JobState.FAILED, T0 + 20, fence=1, progress=PROGRESS) is None
        assert await s.finish("cancelled", "w cancelled", JobState.SUCCEEDED, T0 + 20, fence=1,
                              progress=PROGRESS) is None
        stored = {j.job_id: j.state for j in (await o.query())[0]}
        assert stored == {"interrupted": JobState.SUCCEEDED, "requeued": JobState.RUNNING, "taken": JobState.RUNNING,
                          "failed": JobState.INTERRUPTED, "cancelled": JobState.CANCELLED}
        await s.add(make("queued-late", T0 + 9))
        assert await s.claim("w3", T0 + 21, T0 + 22) is not None
        await s.interrupt_lapsed(T0 + 30)
        assert await s.requeue("queued-late", fence=1) is not None
        done = await o.finish("queued-late", "w3", JobState.SUCCEEDED, T0 + 31, fence=1, progress=PROGRESS)
        assert done is not None and done.state is JobState.SUCCEEDED  # queued again, never claimed: done
        assert await s.claim("w4", T0 + 32, T0 + 40) is None

    async def test_a_lease_lapses_only_after_the_grace(self, stores: Stores) -> None:
        await stores.store.add(make("g"))
        claimed = await stores.store.claim("w", T0, T0 + 10)
        assert claimed is not None
        assert await stores.other.interrupt_lapsed(T0 + 14, grace=5) == []
        assert await stores.other.interrupt_lapsed(T0 + 15, grace=5) == []  # ended exactly grace ago: not more
        [lapsed] = await stores.other.interrupt_lapsed(T0 + 15.5, grace=5)
        assert lapsed == claimed.lapse(T0 + 15.5)

    async def test_queued_and_running_jobs_per_owner_are_bounded(self, stores: Stores) -> None:
        s, o = stores.store, stores.other
        bob = JobOwner("bob", "operator")
        for n in range(3):
            await s.add(make(f"a{n}", T0 + n), max_per_owner=3)
        with pytest.raises(TooManyJobs) as refused:
            await o.add(make("a3", T0 + 3), max_per_owner=3)
        assert (refused.value.owner, refused.value.limit, refused.value.count) == (OWNER.name, 3, 3)
        assert await s.get("a3") is None
        await o.add(make("b0", T0, owner=bob), max_per_owner=3)  # another owner's bound is its own
        await o.add(make("a-unbounded", T0 + 4))  # no bound given: none applies
        running = await s.claim("w", T0 + 5, T0 + 50)
        assert running is not None
        with pytest.raises(TooManyJobs) as refused:  # running jobs count as well
            await s.add(make("a4", T0 + 5), max_per_owner=4)
        assert (refused.value.limit, refused.value.count) == (4, 4)
        await s.finish(running.job_id, "w", JobState.SUCCEEDED, T0 + 6, fence=1, progress=PROGRESS)
        await s.cancel("a1", T0 + 7)
        await s.add(make("a4", T0 + 8), max_per_owner=4)  # finished jobs do not count (a0 done, a1 cancelled)
        await s.add(make("a5", T0 + 9), max_per_owner=4)
        with pytest.raises(TooManyJobs) as refused:
            await o.add(make("a6", T0 + 9), max_per_owner=4)
        assert refused.value.count == 4

    async def test_concurrent_submits_never_pass_the_bound(self, stores: Stores) -> None:
        async def add(n: int) -> bool:
            try:
                await (stores.store if n % 2 else stores.other).add(make(f"c{n:02}", T0 + n), max_per_owner=5)
            except TooManyJobs:
                return False
            return True
        admitted = await asyncio.gather(*(add(n) for n in range(20)))
        assert sum(admitted) == 5
        assert (await stores.store.query(owner=OWNER.name))[1] == 5

    async def test_claims_are_fair_across_owners(self, stores: Stores) -> None:
        s = stores.store
        bob, eve = JobOwner("bob", "operator"), JobOwner("eve: x", "admin")
        for n in range(6):  # the busy owner queued first, many
            await s.add(make(f"ops {n}", T0 + n))
        await s.add(make("bob 0", T0 + 10, owner=bob))
        await s.add(make("bob 1", T0 + 11, owner=bob))
        await s.add(make("eve 0", T0 + 12, owner=eve))
        order = []
        for n in range(9):
            job = await stores.other.claim(f"w{n}", T0 + 20, T0 + 50)
            assert job is not None
            order.append(job.job_id)
        # the fewest running first, then the oldest queued job among those owners
        assert order == ["ops 0", "bob 0", "eve 0", "ops 1", "bob 1", "ops 2", "ops 3", "ops 4", "ops 5"]
        assert await s.claim("w", T0 + 20, T0 + 50) is None
        await s.finish("bob 0", "w1", JobState.SUCCEEDED, T0 + 21, fence=1, progress=PROGRESS)
        await s.add(make("bob 2", T0 + 30, owner=bob))
        await s.add(make("ops 6", T0 + 13))  # older than bob 2, but ops runs 6 jobs, bob 1
        job = await s.claim("w", T0 + 31, T0 + 50)
        assert job is not None and job.job_id == "bob 2"

    async def test_a_scoped_query_reads_the_candidates_of_its_scope(self, stores: Stores) -> None:
        s = stores.store
        for job_id, names in (("a", ("tank/a b",)), ("a-snap", ("tank/a b/c@s 1",)), ("ab", ("tank/a bc",)),
                              ("both", ("tank/a b/x", "vault/y")), ("vault", ("vault/y#bm",)), ("none", ()),
                              ("pool", ("tank",)), ("x", ("tank/x.y:z/deep",))):
            await s.add(Job(job_id, "send_to_file", OWNER, PARAMS, names, T0 + len(job_id)))
        o = stores.other
        assert await ids(o, scope=("tank/a b",)) == (["a-snap", "none", "both", "a"], 4)
        assert await ids(o, scope=("tank/a b", "tank/x.y:z")) == (["a-snap", "none", "both", "x", "a"], 5)
        assert await ids(o, scope=("vault",)) == (["vault", "none", "both"], 3)
        assert await ids(o, scope=("tank",)) == (["a-snap", "pool", "none", "both", "ab", "x", "a"], 7)
        assert await ids(o, scope=("tank/a",)) == (["none"], 1)  # "tank/a b" is not under "tank/a"
        assert await ids(o, scope=()) == (["none"], 1)
        assert await ids(o, scope=("tank/a b",), limit=2, offset=1) == (["none", "both"], 4)
        assert await ids(o, scope=("tank/a b",), state=JobState.QUEUED, kind="scrub") == ([], 0)
        claimed = await s.claim("w", T0, T0 + 1)
        assert claimed is not None and claimed.job_id == "a"
        assert await ids(o, scope=("tank/a b",), state=JobState.RUNNING) == (["a"], 1)
        assert await ids(o, scope=("tank/a b",), owner="bob") == ([], 0)
        await s.finish("a", "w", JobState.SUCCEEDED, T0 + 1, fence=1, progress=PROGRESS)
        assert await s.purge(T0 + 2) == 1
        assert await ids(o, scope=("tank/a b",)) == (["a-snap", "none", "both"], 3)
