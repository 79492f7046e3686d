"""Jobs in Redis, shared by every worker and server using it.

A record is the codec's JSON under `zfsapi:job:<id>`, kept until purge() deletes it; sorted sets index the ids:
every job, each state, kind and owner by created_at (listing, filters, and the queued set is the claim order), the
running ones by lease_until and the finished ones by finished_at. A change is decided in Python on the record as
read, and stored with the index updates in one MULTI under WATCH (compare-and-set, retried when another writer
came first): Lua's cjson would round the floats to 14 digits, so no script ever re-encodes a record. A sorted set
orders equal scores by member, so jobs created at the same instant order by id, as in the other stores."""

from __future__ import annotations

import uuid
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from zfsapi.adapters.outbound.sessions.redis_store import PREFIX, guarded
from zfsapi.domain.jobs import Job, JobState

from . import rules
from .codec import decode_job, encode_job

T = TypeVar("T")
Writes = Callable[[Pipeline], None]  # queues commands after MULTI
SERVICE = "job store"
JOBS = PREFIX + "jobs"  # every id by created_at
LEASES = PREFIX + "jobs:leases"  # running ids by lease_until
ENDED = PREFIX + "jobs:finished"  # finished ids by finished_at
PURGE_BATCH = 500


def _key(job_id: str) -> str:
    return PREFIX + "job:" + job_id


def _index(field: str, value: str) -> str:
    """The ids of the jobs with this state, kind or owner (name), by created_at."""
    return PREFIX + "jobs:" + field + ":" + value


def _ids(raw: Sequence[Any]) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else i for i in raw]


def _stage(pipe: Pipeline, job: Job, old: Job | None) -> None:
    """Queue (after MULTI) the writes that store `job` over `old` (None: a new job) with its index entries."""
    i = job.job_id
    pipe.set(_key(i), encode_job(job))
    if old is None:
        for index in (JOBS, _index("kind", job.kind), _index("owner", job.owner.name)):
            pipe.zadd(index, {i: job.created_at})
    elif old.state is not job.state:
        pipe.zrem(_index("state", old.state.value), i)
    pipe.zadd(_index("state", job.state.value), {i: job.created_at})
    if job.state is JobState.RUNNING and job.lease_until is not None:
        pipe.zadd(LEASES, {i: job.lease_until})
    else:
        pipe.zrem(LEASES, i)
    if job.state.finished and job.finished_at is not None:
        pipe.zadd(ENDED, {i: job.finished_at})
    else:
        pipe.zrem(ENDED, i)


def _unstage(pipe: Pipeline, job: Job) -> None:
    """Queue the deletion of `job` and every index entry it has."""
    pipe.delete(_key(job.job_id))
    for index in (JOBS, _index("kind", job.kind), _index("owner", job.owner.name), _index("state", job.state.value),
                  LEASES, ENDED):
        pipe.zrem(index, job.job_id)


class RedisJobStore(rules.ChangesByRules):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def _transact(self, attempt: Callable[[Pipeline], Awaitable[tuple[T, Writes | None]]]) -> T:
        """Compare-and-set: `attempt` WATCHes the keys it reads and returns its answer and the writes to make
        (None: none); retried from the start until no watched key changed before the writes were made."""
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                answer, writes = await attempt(pipe)
                if writes is None:
                    return answer
                pipe.multi()  # type: ignore[no-untyped-call]
                writes(pipe)
                try:
                    await pipe.execute()
                    return answer
                except WatchError:
                    continue

    async def add(self, job: Job) -> None:
        async def attempt(pipe: Pipeline) -> tuple[bool, Writes | None]:
            await pipe.watch(_key(job.job_id))
            if await pipe.exists(_key(job.job_id)):
                return False, None
            return True, lambda p: _stage(p, job, None)
        if not await guarded(self._transact(attempt), SERVICE):
            raise ValueError(f"job {job.job_id} exists")

    async def get(self, job_id: str) -> Job | None:
        raw = await guarded(self._client.get(_key(job_id)), SERVICE)
        return None if raw is None else decode_job(raw)

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   limit: int = 100, offset: int = 0) -> tuple[list[Job], int]:
        filters = {"state": None if state is None else state.value, "kind": kind, "owner": owner}
        keys = [_index(field, value) for field, value in filters.items() if value is not None] or [JOBS]
        return await guarded(self._query(keys, max(0, limit), max(0, offset)), SERVICE)

    async def _query(self, keys: list[str], limit: int, offset: int) -> tuple[list[Job], int]:
        pipe = self._client.pipeline(transaction=True)
        if len(keys) == 1:
            source = keys[0]
            pipe.zcard(source)
        else:  # the ids in every filter's index, in a key of this query's own, deleted in the same MULTI
            source = PREFIX + "jobs:query:" + uuid.uuid4().hex
            pipe.zinterstore(source, keys, aggregate="MAX")
        if limit:  # (ZREVRANGE 0 -1 would be every id)
            pipe.zrevrange(source, offset, offset + limit - 1)
        if len(keys) > 1:
            pipe.delete(source)
        total, *page = await pipe.execute()
        ids = _ids(page[0]) if limit else []
        raws = await self._client.mget([_key(i) for i in ids]) if ids else []
        return [decode_job(r) for r in raws if r is not None], int(total)  # a job purged since: left out

    async def _change(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        """Store `change(the record)` (None, or the record itself, stores nothing): the outcome as stored."""
        async def attempt(pipe: Pipeline) -> tuple[Job | None, Writes | None]:
            await pipe.watch(_key(job_id))
            raw = await pipe.get(_key(job_id))
            old = None if raw is None else decode_job(raw)
            new = None if old is None else change(old)
            if new is None or new is old:
                return new, None
            return new, lambda p: _stage(p, new, old)
        return await guarded(self._transact(attempt), SERVICE)

    async def claim(self, worker: str, now: float, lease_until: float) -> Job | None:
        queued = _index("state", JobState.QUEUED.value)

        async def attempt(pipe: Pipeline) -> tuple[Job | None, Writes | None]:
            while True:
                await pipe.watch(queued)
                first = _ids(await pipe.zrange(queued, 0, 0))
                if not first:
                    return None, None
                await pipe.watch(_key(first[0]))
                raw = await pipe.get(_key(first[0]))
                if raw is not None:
                    old = decode_job(raw)
                    job = rules.claimed(old, worker, now, lease_until)
                    return job, lambda p: _stage(p, job, old)
                await pipe.unwatch()  # type: ignore[no-untyped-call]
                await self._client.zrem(queued, first[0])  # an id without a record (deleted by hand)
        return await guarded(self._transact(attempt), SERVICE)

    async def interrupt_lapsed(self, now: float) -> list[Job]:
        ids = _ids(await guarded(self._client.zrangebyscore(LEASES, "-inf", f"({now!r}"), SERVICE))
        lapsed = [await self._change(i, lambda j: rules.lapsed(j, now)) for i in ids]
        return [job for job in lapsed if job is not None]

    async def requeue(self, job_id: str) -> Job | None:
        return await self._change(job_id, rules.requeued)

    async def purge(self, finished_before: float) -> int:
        async def batch(pipe: Pipeline) -> tuple[int | None, Writes | None]:
            await pipe.watch(ENDED)  # with the records: the ids read are the finished ones until the writes
            ids = _ids(await pipe.zrangebyscore(ENDED, "-inf", f"({finished_before!r}", start=0, num=PURGE_BATCH))
            if not ids:
                return None, None
            await pipe.watch(*(_key(i) for i in ids))
            raws = await pipe.mget([_key(i) for i in ids])
            old = [j for j in (decode_job(r) for r in raws if r is not None) if rules.purgeable(j, finished_before)]

            def writes(p: Pipeline) -> None:
                p.zrem(ENDED, *ids)  # an id without a finished record (an index gone wrong) must not come back
                for job in old:
                    _unstage(p, job)
            return len(old), writes

        purged = 0
        while (count := await guarded(self._transact(batch), SERVICE)) is not None:
            purged += count
        return purged
