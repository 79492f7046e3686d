"""The job store contract (tests/job_store_contract.py) over stores that several workers share: Redis (a real
redis-server on a loopback port, each store on its own connection pool) and two embedded stores on one SQLite
file; then what only these stores have: the keys Redis keeps, Redis being down, and separate processes claiming
from one file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import msgspec
import pytest
from redis.asyncio import Redis

from tests.conftest import free_port
from tests.job_store_contract import OWNER, PROGRESS, T0, JobStoreContract, Stores, ids, make
from tests.unit.test_job_kinds import OLD, RENDERED
from .conftest import redis_port
from zfsapi.adapters.inbound.jsonrpc.job_methods import record
from zfsapi.adapters.outbound.state.job_codec import decode_job
from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore
from zfsapi.adapters.outbound.state.redis.jobs import RedisJobStore
from zfsapi.adapters.outbound.state.redis.client import PREFIX, connect
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import JobState




class TestRedisJobStore(JobStoreContract):
    @pytest.fixture
    def stores(self, clients: list[Redis], redis_url: str) -> Stores:
        def another() -> RedisJobStore:
            clients.append(connect("127.0.0.1", redis_port(redis_url), 0, None))
            return RedisJobStore(clients[-1])

        return Stores(RedisJobStore(clients[0]), another(), another)


class TestSharedEmbeddedJobStore(JobStoreContract):
    @pytest.fixture
    def stores(self, tmp_path: Path) -> Iterator[Stores]:
        opened: list[EmbeddedJobStore] = []

        def another() -> EmbeddedJobStore:
            opened.append(EmbeddedJobStore(str(tmp_path)))
            return opened[-1]

        yield Stores(another(), another(), another)
        for s in opened:
            s.close()


async def keys(client: Redis) -> set[str]:
    return {k.decode() if isinstance(k, bytes) else k for k in await client.keys(PREFIX + "*")}


async def test_redis_reads_a_record_the_version_before_wrote(clients: list[Redis]) -> None:
    """A record with the JSON-RPC code in its error and the wire params (as the version before wrote it)."""
    store = RedisJobStore(clients[0])
    await store.add(decode_job(json.dumps({**OLD, "state": "queued", "error": None})))
    await clients[0].set(PREFIX + "job:" + OLD["job_id"], json.dumps(OLD))
    job = await store.get(OLD["job_id"])
    assert job is not None and msgspec.to_builtins(record(job)) == RENDERED


async def test_redis_keeps_records_until_purged_and_no_index_outlives_them(clients: list[Redis]) -> None:
    client = clients[0]
    store = RedisJobStore(client)
    await store.add(make("a:b c", kind="scrub"))
    await store.add(make("d", T0 + 1))
    assert await keys(client) == {PREFIX + "job:a:b c", PREFIX + "job:d", PREFIX + "jobs", PREFIX + "jobs:state:queued",
                                  PREFIX + "jobs:kind:scrub", PREFIX + "jobs:kind:send_to_file",
                                  PREFIX + "jobs:owner:ops: night shift", PREFIX + "jobs:queued:owner:ops: night shift",
                                  PREFIX + "jobs:queued-owners", PREFIX + "jobs:names", PREFIX + "jobs:version"}
    assert await client.ttl(PREFIX + "job:d") == -1  # no expiry: purge() decides, with the indexes
    await store.query(kind="scrub", owner="ops: night shift")  # its scratch key goes with its MULTI
    for worker in ("w1", "w2"):
        assert await store.claim(worker, T0, T0 + 1) is not None
    assert await store.claim("w3", T0, T0 + 1) is None  # the owner's queue is empty: its entry goes
    assert PREFIX + "jobs:running:owner:ops: night shift" in await keys(client)
    assert await store.finish("a:b c", "w1", JobState.SUCCEEDED, T0 + 2, fence=1, progress=PROGRESS) is not None
    assert PREFIX + "jobs:leases" in await keys(client)
    [lapsed] = await store.interrupt_lapsed(T0 + 5)
    assert lapsed.job_id == "d"
    assert await store.purge(T0 + 10) == 2
    assert await keys(client) == {PREFIX + "jobs:version"}  # (the indexes cover every record)


async def test_redis_claim_drops_a_queued_id_without_a_record(clients: list[Redis]) -> None:
    client = clients[0]
    store = RedisJobStore(client)
    await store.add(make("real", T0 + 1))
    queued = PREFIX + "jobs:queued:owner:" + OWNER.name
    await client.zadd(queued, {"ghost": T0})  # older, its record deleted by hand
    claimed = await store.claim("w", T0 + 2, T0 + 3)
    assert claimed is not None and claimed.job_id == "real"
    assert await client.zrange(queued, 0, -1) == []


async def test_redis_down_is_the_job_store_unavailable() -> None:
    client = connect("127.0.0.1", free_port(), 0, None)  # nothing listens there
    store = RedisJobStore(client)
    calls = (store.get("j"), store.add(make("j")), store.query(), store.claim("w", T0, T0 + 1),
             store.renew("j", "w", T0, PROGRESS, fence=1), store.cancel("j", T0), store.interrupt_lapsed(T0),
             store.requeue("j"), store.purge(T0))
    for call in calls:
        with pytest.raises(ServiceUnavailable) as down:
            await call
        assert (down.value.service, down.value.reason) == ("job store", "ConnectionError")
    await client.aclose()


CLAIMER = textwrap.dedent("""
    import asyncio, json, os, sys
    from zfsapi.adapters.outbound.state.sqlite.jobs import EmbeddedJobStore

    async def main(state_dir, name):
        store = EmbeddedJobStore(state_dir)
        await store.get("-")  # opened
        open(os.path.join(state_dir, "ready-" + name), "w").close()
        while not os.path.exists(os.path.join(state_dir, "go")):
            await asyncio.sleep(0.01)

        async def worker(n):
            won = []
            while (job := await store.claim(f"{name}/{n}", 1.0, 2.0)) is not None:
                won.append(job.job_id)
            return won
        print(json.dumps([i for won in await asyncio.gather(*(worker(n) for n in range(4))) for i in won]))
        store.close()

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_processes_sharing_the_file_claim_each_job_once(tmp_path: Path) -> None:
    store = EmbeddedJobStore(str(tmp_path))
    job_ids = [f"job {n:03}" for n in range(60)]
    for n, job_id in enumerate(job_ids):
        await store.add(make(job_id, T0 + n % 7))
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path), f"p{p}"], stdout=subprocess.PIPE,
                              text=True) for p in range(3)]
    deadline = time.monotonic() + 60  # all three start claiming at once
    while len(list(tmp_path.glob("ready-*"))) < 3:
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs), "claimers not ready"
        await asyncio.sleep(0.02)
    (tmp_path / "go").touch()
    won = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    print("claims per process:", [len(w) for w in won])
    assert sorted(i for w in won for i in w) == job_ids  # each once, none lost
    running, total = await store.query(state=JobState.RUNNING, limit=100)
    assert total == 60 and {j.attempts for j in running} == {1}
    assert {j.job_id: (j.lease_owner or "").split("/")[0] for j in running} == {
        i: f"p{p}" for p, w in enumerate(won) for i in w}  # each record names the process that won it
    store.close()


class TestTwoWorkers:
    """Two job runners sharing one store (two uvicorn workers or two servers): a job runs on one, exactly once;
    the other sees it and cancels it; records outlive both."""

    async def test_the_other_worker_sees_and_cancels_a_running_job(self, clients: list[Redis], redis_url: str,
                                                                  tmp_path: Path) -> None:
        from tests.unit.test_jobs import ADMIN, Work, runner, until

        for store_a, store_b in ((RedisJobStore(clients[0]), RedisJobStore(connect("127.0.0.1", redis_port(redis_url),
                                                                                   0, None))),
                                 (EmbeddedJobStore(str(tmp_path)), EmbeddedJobStore(str(tmp_path)))):
            work_a, work_b = Work(), Work()
            jobs_a, runner_a = runner(store_a, work_a, lease=6.0)
            jobs_b, runner_b = runner(store_b, work_b, lease=6.0)
            await runner_a.start()
            await runner_b.start()
            try:
                job = await jobs_a.submit("copy", ADMIN, {"n": 1}, ())
                await until(lambda: work_a.running | work_b.running, "one worker started the job")
                seen = await jobs_b.get(ADMIN, job.job_id)
                assert seen.state is JobState.RUNNING and seen.lease_owner in (runner_a.worker_id,
                                                                               runner_b.worker_id)
                await (jobs_b if seen.lease_owner == runner_a.worker_id else jobs_a).cancel(ADMIN, job.job_id)
                done = await jobs_b.wait(ADMIN, job.job_id, 30)
                assert done.state is JobState.CANCELLED
                assert work_a.cleaned + work_b.cleaned == [job.job_id]
                assert work_a.runs + work_b.runs == [job.job_id]  # exactly once
            finally:
                await runner_a.stop()
                await runner_b.stop()
            later = store_b.__class__(clients[0]) if isinstance(store_b, RedisJobStore) \
                else EmbeddedJobStore(str(tmp_path))  # a restart: a new store on the same data
            assert (await later.get(job.job_id)).state is JobState.CANCELLED


async def test_redis_data_written_before_the_owner_and_name_indexes_gets_them_once(clients: list[Redis],
                                                                                  redis_url: str) -> None:
    from zfsapi.domain.errors import TooManyJobs

    client = clients[0]
    old = RedisJobStore(client)
    for n in range(3):
        await old.add(make(f"q{n}", T0 + n))
    assert await old.claim("w", T0, T0 + 1) is not None
    new_keys = [PREFIX + "jobs:" + k for k in ("queued:owner:" + OWNER.name, "running:owner:" + OWNER.name,
                                               "queued-owners", "names", "version")]
    assert set(new_keys) <= await keys(client)
    await client.delete(*new_keys)  # what an older version left: none of these
    clients.append(connect("127.0.0.1", redis_port(redis_url), 0, None))
    store = RedisJobStore(clients[-1])
    with pytest.raises(TooManyJobs) as refused:  # the running and queued jobs count
        await store.add(make("q3", T0 + 3), max_per_owner=3)
    assert refused.value.count == 3
    assert await ids(store, scope=("tank/a b",)) == (["q2", "q1", "q0"], 3)
    claimed = await store.claim("w2", T0, T0 + 1)
    assert claimed is not None and claimed.job_id == "q1"
    assert await client.get(PREFIX + "jobs:version") == b"1"
