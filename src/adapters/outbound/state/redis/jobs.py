"""Jobs in Redis, shared by every worker and server using it.

A record is the codec's JSON under `zfsapi:job:<id>`, kept until purge() deletes it; sorted sets index the ids:
every job, each state, kind and owner by created_at (listing, filters), each owner's queued and running jobs by
created_at (the owner's bound, and the fair claim order with the set of owners that have queued jobs), the running
ones by lease_until and the finished ones by finished_at; `jobs:names` holds "<dataset>\0<id>" for every dataset
a job touches (scoped listings read a lexical range of it, not every record). A change is decided in Python on the record as
read, and stored with the index updates in one MULTI under WATCH (compare-and-set, retried when another writer
came first): Lua's cjson would round the floats to 14 digits, so no script ever re-encodes a record. A sorted set
orders equal scores by member, so jobs created at the same instant order by id, as in the other stores."""

from __future__ import annotations

import uuid
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from zfsapi.domain.jobs import Job, JobState

from .. import job_rules as rules
from ..job_codec import decode_job, encode_job
from .client import PREFIX, guarded

T = TypeVar("T")
Writes = Callable[[Pipeline], None]  # queues commands after MULTI
SERVICE = "job store"
JOBS = PREFIX + "jobs"  # every id by created_at
LEASES = PREFIX + "jobs:leases"  # running ids by lease_until
ENDED = PREFIX + "jobs:finished"  # finished ids by finished_at
QUEUED_OWNERS = PREFIX + "jobs:queued-owners"  # owners that may have queued jobs (emptied ones dropped by claim)
NAMES = PREFIX + "jobs:names"  # "<dataset>\0<id>", every score 0: a lexical index
VERSION = PREFIX + "jobs:version"  # set once the indexes above cover every record (older data: rebuilt once)
INDEX_VERSION = "1"
PURGE_BATCH = 500


def _key(job_id: str) -> str:
    return PREFIX + "job:" + job_id


def _index(field: str, value: str) -> str:
    """The ids of the jobs with this state, kind or owner (name), by created_at."""
    return PREFIX + "jobs:" + field + ":" + value


def _active(state: JobState, owner: str) -> str:
    """The ids of one owner's queued (or running) jobs, by created_at."""
    return PREFIX + "jobs:" + state.value + ":owner:" + owner


def _names(job: Job) -> list[str]:
    return [name + "\0" + job.job_id for name in rules.scope_names(job)]


def _ids(raw: Sequence[Any]) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else i for i in raw]


def _stage(pipe: Pipeline, job: Job, old: Job | None) -> None:
    """Queue (after MULTI) the writes that store `job` over `old` (None: a new job) with its index entries."""
    i = job.job_id
    pipe.set(_key(i), encode_job(job))
    if old is None:
        for index in (JOBS, _index("kind", job.kind), _index("owner", job.owner.name)):
            pipe.zadd(index, {i: job.created_at})
        pipe.zadd(NAMES, dict.fromkeys(_names(job), 0))
    elif old.state is not job.state:
        pipe.zrem(_index("state", old.state.value), i)
        if old.active:
            pipe.zrem(_active(old.state, old.owner.name), i)
    pipe.zadd(_index("state", job.state.value), {i: job.created_at})
    if job.active:
        pipe.zadd(_active(job.state, job.owner.name), {i: job.created_at})
    if job.state is JobState.QUEUED:
        pipe.sadd(QUEUED_OWNERS, job.owner.name)
    if job.state is JobState.RUNNING and job.lease_until is not None:
        pipe.zadd(LEASES, {i: job.lease_until})
    else:
        pipe.zrem(LEASES, i)
    if job.state.finished and job.finished_at is not None:
        pipe.zadd(ENDED, {i: job.finished_at})
    else:
        pipe.zrem(ENDED, i)


def _drop_owners(pipe: Pipeline, owners: list[str]) -> None:
    """Queue the removal of owners whose queue was read empty (WATCHed: a job queued since aborts the MULTI)."""
    if owners:
        pipe.srem(QUEUED_OWNERS, *owners)


def _claiming(job: Job, old: Job, empty: list[str]) -> tuple[Job, Writes]:
    def writes(pipe: Pipeline) -> None:
        _stage(pipe, job, old)
        _drop_owners(pipe, empty)
    return job, writes


def _unstage(pipe: Pipeline, job: Job) -> None:
    """Queue the deletion of `job` and every index entry it has."""
    pipe.delete(_key(job.job_id))
    for index in (JOBS, _index("kind", job.kind), _index("owner", job.owner.name), _index("state", job.state.value),
                  _active(JobState.QUEUED, job.owner.name), _active(JobState.RUNNING, job.owner.name), LEASES, ENDED):
        pipe.zrem(index, job.job_id)
    pipe.zrem(NAMES, *_names(job))


class RedisJobStore(rules.ChangesByRules):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._ready = False  # the indexes are known to cover every record (VERSION read)

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

    async def _upgraded(self) -> None:
        """Data written before the owner and name indexes existed gets them once (idempotent: two servers doing it
        at once write the same entries; a stale queued entry is dropped by claim)."""
        if self._ready:
            return
        if await self._client.get(VERSION) not in (INDEX_VERSION, INDEX_VERSION.encode()):
            ids = _ids(await self._client.zrange(JOBS, 0, -1))
            for start in range(0, len(ids), PURGE_BATCH):
                raws = await self._client.mget([_key(i) for i in ids[start:start + PURGE_BATCH]])
                pipe = self._client.pipeline(transaction=False)
                for job in (decode_job(r) for r in raws if r is not None):
                    pipe.zadd(NAMES, dict.fromkeys(_names(job), 0))
                    if job.active:
                        pipe.zadd(_active(job.state, job.owner.name), {job.job_id: job.created_at})
                    if job.state is JobState.QUEUED:
                        pipe.sadd(QUEUED_OWNERS, job.owner.name)
                await pipe.execute()
            await self._client.set(VERSION, INDEX_VERSION)
        self._ready = True

    async def add(self, job: Job, *, max_per_owner: int | None = None) -> None:
        owned = [_active(JobState.QUEUED, job.owner.name), _active(JobState.RUNNING, job.owner.name)]

        async def attempt(pipe: Pipeline) -> tuple[bool, Writes | None]:
            await pipe.watch(_key(job.job_id), *owned)
            if await pipe.exists(_key(job.job_id)):
                return False, None
            rules.admit(job.owner.name, sum([await pipe.zcard(k) for k in owned]), max_per_owner)
            return True, lambda p: _stage(p, job, None)

        async def add() -> bool:
            await self._upgraded()
            return await self._transact(attempt)
        if not await guarded(add(), SERVICE):
            raise ValueError(f"job {job.job_id} exists")

    async def get(self, job_id: str) -> Job | None:
        raw = await guarded(self._client.get(_key(job_id)), SERVICE)
        return None if raw is None else decode_job(raw)

    async def query(self, *, state: JobState | None = None, kind: str | None = None, owner: str | None = None,
                   scope: tuple[str, ...] | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[Job], int]:
        if scope is not None:
            return await guarded(self._scoped(state, kind, owner, scope, max(0, limit), max(0, offset)), SERVICE)
        filters = {"state": None if state is None else state.value, "kind": kind, "owner": owner}
        keys = [_index(field, value) for field, value in filters.items() if value is not None] or [JOBS]
        return await guarded(self._query(keys, max(0, limit), max(0, offset)), SERVICE)

    async def _scoped(self, state: JobState | None, kind: str | None, owner: str | None, scope: tuple[str, ...],
                      limit: int, offset: int) -> tuple[list[Job], int]:
        """The candidates of a scope from lexical ranges of `jobs:names` ("" is a job without names; a prefix's
        own name and the names under it), then the other filters on those records only."""
        await self._upgraded()
        pipe = self._client.pipeline(transaction=True)
        for low, high in [("", ""), *((p, p) for p in scope), *((p + "/", p + "0") for p in scope)]:
            pipe.zrangebylex(NAMES, "[" + low + ("\0" if low == high else ""), "(" + (high + "\1" if low == high
                                                                                      else high))
        ids = sorted({m.rsplit("\0", 1)[1] for found in await pipe.execute() for m in _ids(found)})
        raws = await self._client.mget([_key(i) for i in ids]) if ids else []
        found = sorted((j for j in (decode_job(r) for r in raws if r is not None)
                        if rules.matches(j, state, kind, owner)), key=rules.newest_first, reverse=True)
        return found[offset:offset + limit], len(found)

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
        async def attempt(pipe: Pipeline) -> tuple[Job | None, Writes | None]:
            while True:
                await pipe.watch(QUEUED_OWNERS)
                owners = sorted(_ids(list(await pipe.smembers(QUEUED_OWNERS))))
                queued = {o: _active(JobState.QUEUED, o) for o in owners}
                if owners:
                    await pipe.watch(*queued.values(), *(_active(JobState.RUNNING, o) for o in owners))
                heads: dict[str, tuple[float, str]] = {}
                for o in owners:
                    if first := await pipe.zrange(queued[o], 0, 0, withscores=True):
                        heads[o] = (float(first[0][1]), _ids([first[0][0]])[0])
                running = {o: int(await pipe.zcard(_active(JobState.RUNNING, o))) for o in owners}
                empty = [o for o in owners if o not in heads]
                owner = rules.next_owner(heads, running)
                if owner is None:
                    return None, (lambda p: _drop_owners(p, empty)) if empty else None
                job_id = heads[owner][1]
                await pipe.watch(_key(job_id))
                raw = await pipe.get(_key(job_id))
                old = None if raw is None else decode_job(raw)
                if old is not None and old.state is JobState.QUEUED:
                    return _claiming(rules.claimed(old, worker, now, lease_until), old, empty)
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.zrem(queued[owner], job_id)  # an id without a queued record (stale, or deleted by hand)
                try:
                    await pipe.execute()
                except WatchError:
                    pass  # it changed meanwhile: read again

        async def claim() -> Job | None:
            await self._upgraded()
            return await self._transact(attempt)
        return await guarded(claim(), SERVICE)

    async def interrupt_lapsed(self, now: float, *, grace: float = 0.0) -> list[Job]:
        ids = _ids(await guarded(self._client.zrangebyscore(LEASES, "-inf", f"({now - grace!r}"), SERVICE))
        lapsed = [await self._change(i, lambda j: rules.lapsed(j, now, grace)) for i in ids]
        return [job for job in lapsed if job is not None]

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
