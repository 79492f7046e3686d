"""Job kinds as rows of the application's registry: a new kind is one row (a typed spec, the use case that runs it),
run through Jobs and the JobRunner; a job's error is kept as a domain error and numbered only where the record is
rendered; and records written by the version before (numeric codes, the wire params) still decode and render."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from zfsapi.adapters.inbound.jsonrpc.job_methods import describe, error_code, record
from zfsapi.adapters.outbound.state.job_codec import decode_job, encode_job
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.adapters.outbound.state.sqlite.jobs import FILE, EmbeddedJobStore
from zfsapi.application.job_kinds import JobContext, JobKind, JobKinds
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.application.migrations import migration_kind
from zfsapi.domain.authz import AccessRequest, Action, Principal, Role
from zfsapi.domain.errors import NotFound, PermissionDenied
from zfsapi.domain.jobs import (
    UNKNOWN_KIND,
    Job,
    JobError,
    JobOwner,
    JobState,
    ProgressMeter,
)

from tests.unit.test_jobs import until

ALICE = Principal("alice", Role.OPERATOR, ("tank/alice",))


class Prune(msgspec.Struct, frozen=True):
    """A toy policy kind's spec: what the run needs, typed."""

    dataset: str
    keep: int


@dataclass
class PruneUseCase:
    """The use case a policy row runs: here it records what it was given."""

    seen: list[tuple[Prune, str, str]]

    async def execute(self, spec: Prune, ctx: JobContext, meter: ProgressMeter) -> dict[str, Any]:
        meter.phase("prune")
        self.seen.append((spec, ctx.who.name, ctx.job.job_id))
        return {"pruned": spec.keep}


def prune_kind(use_case: PruneUseCase) -> JobKind[Prune]:
    return JobKind("prune", lambda params: msgspec.convert(params, Prune), use_case.execute,
                   access=lambda spec: AccessRequest("prune", Action.CHANGE, (spec.dataset,)))


async def test_a_new_kind_is_one_row_run_through_jobs_and_the_runner() -> None:
    store, seen = MemoryJobStore(), []
    jobs = Jobs(store)
    runner = JobRunner(store, jobs, kinds=JobKinds([prune_kind(PruneUseCase(seen))]), describe=describe)
    spec = Prune("tank/alice/a", 3)
    job = await jobs.submit("prune", ALICE, msgspec.to_builtins(spec), ("tank/alice/a",))
    assert (await store.get(job.job_id)).params == {"dataset": "tank/alice/a", "keep": 3}  # encoded once
    await runner.start()
    try:
        done = await jobs.wait(ALICE, job.job_id, 30)
    finally:
        await runner.stop()
    assert (done.state, done.result) == (JobState.SUCCEEDED, {"pruned": 3})
    assert seen == [(spec, "alice", job.job_id)]  # the typed spec, decoded by the row, run as the owner


async def test_the_rights_check_at_start_reads_the_spec() -> None:
    """The owner's scope narrowed to tank/alice/b: the spec names tank/alice/a, so the job fails, unrun."""
    class Owners:
        def current(self, owner: JobOwner) -> Principal | None:
            return Principal("alice", Role.OPERATOR, ("tank/alice/b",))

    store, seen = MemoryJobStore(), []
    jobs = Jobs(store)
    runner = JobRunner(store, jobs, kinds=JobKinds([prune_kind(PruneUseCase(seen))]), describe=describe,
                       owners=Owners())
    job = await jobs.submit("prune", ALICE, {"dataset": "tank/alice/a", "keep": 1}, ())  # names not recorded
    await runner.start()
    try:
        done = await until(lambda: _finished(store, job.job_id), "the job failed at start")
    finally:
        await runner.stop()
    assert done.error.error == "PermissionDenied" and error_code(done.error) == -32004
    assert done.error.data["reason"].startswith("scope narrowed") and seen == []


async def _finished(store: MemoryJobStore, job_id: str) -> Job | None:
    job = await store.get(job_id)
    return job if job is not None and job.state.finished else None


async def test_a_kind_no_worker_runs_fails_and_renders_as_method_not_found() -> None:
    store = MemoryJobStore()
    jobs = Jobs(store)
    runner = JobRunner(store, jobs, kinds=JobKinds(), describe=describe)
    job = await jobs.submit("snapshot", ALICE, {}, ())
    await runner.start()
    try:
        done = await jobs.wait(ALICE, job.job_id, 30)
    finally:
        await runner.stop()
    assert done.error == JobError("no worker here runs jobs of kind snapshot", error=UNKNOWN_KIND)
    assert msgspec.to_builtins(record(done).error) == {
        "code": -32601, "message": "no worker here runs jobs of kind snapshot", "data": {}}


def test_rows_are_unique_and_say_which_kinds_resume() -> None:
    row = prune_kind(PruneUseCase([]))
    with pytest.raises(ValueError, match="prune"):
        JobKinds([row], [row])
    kinds = JobKinds([row], [migration_kind(None)])  # type: ignore[arg-type]
    assert set(kinds) == {"prune", "migration_create"} and kinds.resumable == frozenset({"migration_create"})


def test_a_failure_is_kept_as_its_domain_error_and_numbered_when_rendered() -> None:
    error = describe(NotFound("snapshot", "tank/a@gone"))
    assert (error.error, error.code) == ("NotFound", None)  # no JSON-RPC code in the record
    assert error_code(error) == -32010
    assert error_code(describe(PermissionDenied("m", "tank/x", "outside"))) == -32004
    internal = describe(RuntimeError("secret detail"))
    assert (internal.message, internal.data, error_code(internal)) == ("Internal error", {}, -32603)


# A record as the version before wrote it: the JSON-RPC code in its error, the wire params of migration_create.
OLD = {
    "job_id": "0" * 32, "kind": "migration_create",
    "owner": {"name": "alice", "role": "operator", "prefixes": ["tank/alice"], "origin": "token"},
    "params": {"source": "tank/alice/a@s1", "destination": "tank/alice/b", "remote": None, "limit": None,
               "compression": "lz4", "recursive": False, "sync": True, "background": False},
    "datasets": ["tank/alice/a@s1", "tank/alice/b"], "created_at": 1764000000.25, "state": "failed",
    "started_at": 1764000001.5, "finished_at": 1764000002.75,
    "progress": {"phase": "send", "bytes_done": 10, "bytes_total": 20, "rate_bytes_per_s": 5.0, "eta_seconds": 2.0},
    "result": None,
    "error": {"code": -32004, "message": "Permission denied",
              "data": {"method": "migration_create", "dataset": "tank/alice/b", "reason": "role"}},
    "lease_owner": None, "lease_until": None, "cancel_requested": False, "attempts": 1, "fence": 1,
}
RENDERED = {
    "job_id": "0" * 32, "kind": "migration_create", "state": "failed", "owner": "alice",
    "created_at": "2025-11-24T16:00:00.250000Z", "started_at": "2025-11-24T16:00:01.500000Z",
    "finished_at": "2025-11-24T16:00:02.750000Z", "params": OLD["params"],
    "progress": OLD["progress"], "result": None, "error": OLD["error"], "cancel_requested": False, "attempts": 1,
}


def test_a_record_of_the_version_before_decodes_renders_and_runs_from_its_params() -> None:
    job = decode_job(json.dumps(OLD))
    assert msgspec.to_builtins(record(job)) == RENDERED
    assert decode_job(encode_job(job)) == job  # written back by this version: still the same record
    row = migration_kind(None)  # type: ignore[arg-type]
    spec = row.decode(job.params)  # the wire params of before are this kind's spec
    assert (spec.source.value, spec.destination.value, spec.compression.value) == (
        "tank/alice/a@s1", "tank/alice/b", "zstd")
    assert row.request(job).datasets == ("tank/alice/a@s1", "tank/alice/b")


async def test_the_sqlite_store_reads_a_record_the_version_before_wrote(tmp_path: Path) -> None:
    store = EmbeddedJobStore(str(tmp_path))
    try:
        await store.add(decode_job(json.dumps({**OLD, "state": "queued", "error": None})))
        db = sqlite3.connect(tmp_path / FILE)
        with db:
            db.execute("UPDATE jobs SET record = ?, state = 'failed' WHERE job_id = ?",
                       (json.dumps(OLD), OLD["job_id"]))
        db.close()
        job = await store.get(OLD["job_id"])
        assert job is not None and msgspec.to_builtins(record(job)) == RENDERED
    finally:
        store.close()


def test_the_migration_row_runs_replicate_as_the_owner() -> None:
    calls = []

    class Replicate:
        async def execute(self, *, who: Principal, spec: Any, progress: ProgressMeter) -> Any:
            calls.append((who.name, spec.destination.value))
            from zfsapi.application.replication import ReplicationResult
            from zfsapi.domain.replication import ReplicationMode
            return ReplicationResult("tank/alice/a@s1", "tank/alice/b", ReplicationMode.FULL, None, 7, False, 0.5)

    job = decode_job(json.dumps({**OLD, "state": "running", "error": None}))
    result = asyncio.run(migration_kind(Replicate()).start(job, ProgressMeter()))  # type: ignore[arg-type]
    assert calls == [("alice", "tank/alice/b")]
    assert result == {"source_snapshot": "tank/alice/a@s1", "destination": "tank/alice/b", "mode": "full",
                      "from_snapshot": None, "bytes": 7, "resumed": False, "duration": 0.5}
