"""The job runner and the job methods: run once, bounded, progress stored, cancel from another worker, a lapsed
lease interrupted and resumed, owners and scopes, background calls over the wire, SSE."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from dependency_injector import providers

from tests.conftest import Rpc, http_client
from tests.job_drills import toy_kinds
from tests.unit.test_transfers_unit import StubZfs
from zfsapi.adapters.inbound.jsonrpc.job_methods import describe, error_code
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from zfsapi.domain.jobs import JobState, ProgressMeter

ADMIN = Principal("root", Role.ADMIN)
ALICE = Principal("alice", Role.OPERATOR, ("tank/alice",))
BOB = Principal("bob", Role.OPERATOR, ("tank/bob",))
DEADLINE = 30.0


async def until(condition, what: str, deadline: float = DEADLINE):
    """Wait for `condition()` (sync or async) to be true, polling; fail naming `what` after `deadline` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.02)


class Work:
    """Job kinds a test drives step by step: each job waits for its gate, reports 10 bytes, then ends."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()
        self.peak = 0
        self.cleaned: list[str] = []
        self.runs: list[str] = []

    def gate(self, job_id: str) -> asyncio.Event:
        return self.gates.setdefault(job_id, asyncio.Event())

    async def __call__(self, job, meter: ProgressMeter) -> dict:
        self.runs.append(job.job_id)
        self.running.add(job.job_id)
        self.peak = max(self.peak, len(self.running))
        meter.phase("copying")
        meter.expect(20)
        meter.add(10)
        try:
            await self.gate(job.job_id).wait()
            if job.params.get("fail"):
                raise NotFound("snapshot", "tank/a@gone")
            return {"copied": job.params.get("n")}
        except asyncio.CancelledError:
            self.cleaned.append(job.job_id)
            raise
        finally:
            self.running.discard(job.job_id)


def runner(store, work, *, workers=4, lease=30.0, resumable=frozenset(), ended=None):
    jobs = Jobs(store)
    return jobs, JobRunner(store, jobs, kinds=toy_kinds({"copy": work}, resumable), workers=workers,
                           lease=lease, describe=describe, ended=ended)


async def test_a_job_runs_once_reports_progress_and_keeps_its_result():
    store, work, ended = MemoryJobStore(), Work(), []
    jobs, r = runner(store, work, lease=6.0, ended=lambda *e: ended.append(e))
    await r.start()
    try:
        job = await jobs.submit("copy", ALICE, {"n": 1}, ("tank/alice/a",))
        await until(lambda: job.job_id in work.running, "the job started")
        seen = await until(lambda: _progress(store, job.job_id), "progress stored by a renewal")
        assert (seen.phase, seen.bytes_done, seen.bytes_total) == ("copying", 10, 20)
        work.gate(job.job_id).set()
        done = await jobs.wait(ALICE, job.job_id, 30)
        assert done.state is JobState.SUCCEEDED and done.result == {"copied": 1} and done.error is None
        assert done.started_at is not None and done.finished_at is not None and done.attempts == 1
        assert work.runs == [job.job_id]
        await until(lambda: ended, "the end reported (the metrics counter's feed)")
        assert ended == [("copy", "succeeded", 10)]
    finally:
        await r.stop()


async def _progress(store, job_id):
    job = await store.get(job_id)
    return job.progress if job.progress.bytes_done is not None else None


async def test_at_most_workers_jobs_run_at_once_and_the_rest_wait_queued():
    store, work = MemoryJobStore(), Work()
    jobs, r = runner(store, work, workers=2)
    await r.start()
    try:
        ids = [(await jobs.submit("copy", ADMIN, {"n": i}, ())).job_id for i in range(5)]
        await until(lambda: len(work.running) == 2, "two jobs running")
        queued, total = await jobs.list(ADMIN, state=JobState.QUEUED)
        assert total == 3 and [j.job_id for j in queued] == ids[:1:-1]  # newest first
        for job_id in ids:
            work.gate(job_id).set()
        for job_id in ids:
            assert (await jobs.wait(ADMIN, job_id, 30)).state is JobState.SUCCEEDED
        assert work.peak == 2 and sorted(work.runs) == sorted(ids)
    finally:
        await r.stop()


async def test_a_failure_is_recorded_with_the_code_a_call_would_get():
    store, work = MemoryJobStore(), Work()
    jobs, r = runner(store, work)
    await r.start()
    try:
        job = await jobs.submit("copy", ADMIN, {"fail": True}, ())
        work.gate(job.job_id).set()
        done = await jobs.wait(ADMIN, job.job_id, 30)
        assert done.state is JobState.FAILED
        assert (error_code(done.error), done.error.data) == (-32010, {"kind": "snapshot", "name": "tank/a@gone"})
    finally:
        await r.stop()


async def test_cancel_from_another_worker_stops_the_running_job_and_a_queued_one_never_runs():
    store, work = MemoryJobStore(), Work()
    jobs, r = runner(store, work, workers=1, lease=6.0)
    other = Jobs(store)  # another worker's view of the same store: it runs nothing itself
    await r.start()
    try:
        running = await jobs.submit("copy", ADMIN, {}, ())
        queued = await jobs.submit("copy", ADMIN, {}, ())
        await until(lambda: running.job_id in work.running, "the first job started")
        assert (await other.cancel(ADMIN, queued.job_id)).state is JobState.CANCELLED
        asked = await other.cancel(ADMIN, running.job_id)
        assert asked.state is JobState.RUNNING and asked.cancel_requested
        done = await jobs.wait(ADMIN, running.job_id, 30)
        assert done.state is JobState.CANCELLED and work.cleaned == [running.job_id]
        assert queued.job_id not in work.runs
        assert (await other.cancel(ADMIN, running.job_id)).state is JobState.CANCELLED  # finished: unchanged
    finally:
        await r.stop()


async def test_a_lapsed_lease_is_interrupted_and_a_resumable_job_runs_again_elsewhere():
    store, work = MemoryJobStore(), Work()
    jobs, r = runner(store, work, lease=6.0, resumable=frozenset({"copy"}))
    job = await jobs.submit("copy", ADMIN, {"n": 7}, ())
    now = asyncio.get_running_loop().time()
    dead = await store.claim("dead-worker", 1.0, 2.0)  # a server that died holding it, long ago
    assert dead.job_id == job.job_id and now
    await r.start()
    try:
        await until(lambda: job.job_id in work.running, "the job resumed on the live worker")
        again = await store.get(job.job_id)
        assert again.state is JobState.RUNNING and again.attempts == 2 and again.lease_owner == r.worker_id
        work.gate(job.job_id).set()
        assert (await jobs.wait(ADMIN, job.job_id, 30)).state is JobState.SUCCEEDED
    finally:
        await r.stop()


async def test_stopping_the_server_interrupts_its_jobs_and_requeues_the_resumable_ones():
    store, work = MemoryJobStore(), Work()
    jobs, r = runner(store, work, resumable=frozenset({"copy"}))
    await r.start()
    job = await jobs.submit("copy", ADMIN, {}, ())
    await until(lambda: job.job_id in work.running, "the job started")
    await r.stop()
    assert work.cleaned == [job.job_id]
    assert (await store.get(job.job_id)).state is JobState.QUEUED


async def test_callers_see_their_own_jobs_admins_every_job_in_their_scope():
    store = MemoryJobStore()
    jobs = Jobs(store)
    mine = await jobs.submit("copy", ALICE, {}, ("tank/alice/x",))
    theirs = await jobs.submit("copy", BOB, {}, ("tank/bob/y",))
    scoped_admin = Principal("ops", Role.ADMIN, ("tank/alice",))
    assert [j.job_id for j in (await jobs.list(ALICE))[0]] == [mine.job_id]
    assert {j.job_id for j in (await jobs.list(ADMIN))[0]} == {mine.job_id, theirs.job_id}
    assert [j.job_id for j in (await jobs.list(scoped_admin))[0]] == [mine.job_id]
    with pytest.raises(NotFound):
        await jobs.get(ALICE, theirs.job_id)
    with pytest.raises(NotFound):
        await jobs.cancel(scoped_admin, theirs.job_id)
    assert (await jobs.get(scoped_admin, mine.job_id)).owner.name == "alice"


async def test_wait_returns_the_record_as_it_is_when_the_timeout_passes():
    jobs = Jobs(MemoryJobStore())
    job = await jobs.submit("copy", ADMIN, {}, ())
    assert (await jobs.wait(ADMIN, job.job_id, 0.1)).state is JobState.QUEUED


def test_the_meter_gives_a_moving_rate_and_an_eta():
    now = [100.0]
    meter = ProgressMeter(window=10.0, clock=lambda: now[0])
    assert meter.read().bytes_done is None and meter.read().rate_bytes_per_s is None
    meter.expect(1000)
    meter.add(100)
    now[0] = 102.0
    meter.add(100)
    p = meter.read()
    assert (p.bytes_done, p.rate_bytes_per_s, p.eta_seconds) == (200, 100.0, 8.0)
    now[0] = 130.0  # idle 28 s: the rate is over the window, not since the start
    meter.add(300)
    assert meter.read().rate_bytes_per_s == pytest.approx(300 / 28.0)
    offset = [650]
    meter.follow(lambda: offset[0])
    assert meter.read().bytes_done == 650
    offset[0] = 700
    meter.follow(None)  # a last reading, then no more
    offset[0] = 999
    assert meter.read().bytes_done == 700


@pytest.fixture
def stub_app(tmp_path):
    (tmp_path / "files").mkdir()
    c = build_container(load_settings(environ={}, overrides={"transfer": {"directories": [str(tmp_path / "files")]},
                                                              "state_dir": str(tmp_path / "state")}))
    stub = StubZfs()
    c.zfs.override(providers.Object(stub))
    c.pipelines.override(providers.Object(stub))
    return c


async def test_background_send_to_file_answers_with_a_job_that_runs_the_same_call(stub_app):
    runner_ = stub_app.job_runner()
    await runner_.start()
    try:
        async with http_client(http_app(stub_app)) as client:
            rpc = Rpc(client)
            started = await rpc("send_to_file", dataset="tank/a", snapshot="s1", output_file="x", background=True)
            assert list(started) == ["job_id"]
            done = await rpc("job_wait", job_id=started["job_id"], timeout=30)
            assert done["state"] == "succeeded" and done["kind"] == "send_to_file" and done["owner"] == "root"
            assert done["params"]["output_file"] == "x" and done["params"]["background"] is False
            assert done["result"]["size_bytes"] == 10 and done["result"]["output_file"].endswith("/x")
            assert done["progress"]["bytes_total"] == 123456 and done["progress"]["phase"] == "sending"
            listed = await rpc("job_list", kind="send_to_file")
            assert listed["total"] == 1 and listed["jobs"][0]["job_id"] == started["job_id"]
            assert (await rpc("job_get", job_id=started["job_id"]))["state"] == "succeeded"
            missing = await rpc("job_get", error=True, job_id="nope")
            assert (missing["code"], missing["data"]) == (-32010, {"kind": "job", "name": "nope"})
            bad = await rpc("job_wait", error=True, job_id=started["job_id"], timeout=301)
            assert (bad["code"], bad["data"]["param"]) == (-32602, "timeout")

            r = await client.get(f"/jobs/{started['job_id']}/events")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = [block.split("\n") for block in r.text.strip().split("\n\n")]
            assert events[-1][0] == "event: end"
            assert json.loads(events[-1][1].removeprefix("data: "))["state"] == "succeeded"
            assert (await client.get("/jobs/nope/events")).status_code == 404
            counted = stub_app.metrics().registry.get_sample_value(
                "zfsapi_job_bytes_total", {"kind": "send_to_file", "state": "succeeded"})
            assert counted == 0  # the stub moves no bytes; the job's end is counted all the same
    finally:
        await runner_.stop()


async def test_background_calls_are_checked_like_the_call_itself(stub_app):
    async with http_client(http_app(stub_app)) as client:
        rpc = Rpc(client)
        bad = await rpc("send_to_file", error=True, dataset="tank/a", snapshot="s1", output_file="x",
                        background="yes")
        assert (bad["code"], bad["data"]["param"]) == (-32602, "background")
        assert (await rpc("job_list"))["total"] == 0
    async with http_client(http_app(stub_app), uid=4242) as stranger:
        r = await stranger.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "send_to_file", "params": {
            "dataset": "tank/a", "snapshot": "s1", "output_file": "x", "background": True}})
        assert r.json()["error"]["code"] == -32001
        assert (await stranger.get("/jobs/whatever/events")).status_code == 401


async def test_embedders_start_follow_and_cancel_jobs_without_http(stub_app):
    from zfsapi.bootstrap import JobFailed, open_jobs

    seen = []
    async with open_jobs(container=stub_app) as jobs:
        job = await jobs.start("send_to_file", dataset="tank/a", snapshot="s1", output_file="y")
        assert job.kind == "send_to_file" and job.owner.name == "localhost"
        result = await jobs.result(job.job_id, on_progress=seen.append)
        assert result["size_bytes"] == 10 and seen[-1].bytes_total == 123456
        with pytest.raises(InvalidArgument) as bad:
            await jobs.start("send_to_file", dataset="tank/a", snapshot="s1", output_file=7)
        assert bad.value.param == "output_file"
        with pytest.raises(InvalidArgument) as bad:
            await jobs.start("pool_list")
        assert bad.value.param == "method"
        with pytest.raises(InvalidArgument) as bad:  # checked before a job is queued: outside the directories
            await jobs.start("send_to_file", dataset="tank/a", snapshot="s1", output_file="/etc/y")
        assert bad.value.param == "output_file"
        stub = stub_app.pipelines()

        async def made_meanwhile(spec, path, root, compression, progress=None, mark=None):
            raise AlreadyExists("file", path)

        stub.send_to_file = made_meanwhile  # what only the job can find: the file made after the call
        late = await jobs.start("send_to_file", dataset="tank/a", snapshot="s1", output_file="late")
        with pytest.raises(JobFailed) as failed:
            await jobs.result(late.job_id)
        assert (failed.value.code, failed.value.data["kind"]) == (-32011, "file")
        assert failed.value.job.state is JobState.FAILED


async def test_a_scoped_embedder_is_checked_like_a_caller(stub_app):
    from zfsapi.bootstrap import open_jobs

    async with open_jobs(container=stub_app, who=ALICE) as jobs:
        with pytest.raises(PermissionDenied):
            await jobs.start("send_to_file", dataset="tank/bob/b", snapshot="s1", output_file="z")


class _StallsAfterTheFile:
    """Pipelines whose send_to_file writes the file whole (the real adapter), then stalls: the server is stopped
    before the job's outcome is recorded."""

    def __init__(self, real) -> None:
        self.real, self.written = real, asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.real, name)

    async def send_to_file(self, *args, **kw):
        result = await self.real.send_to_file(*args, **kw)
        self.written.set()
        await asyncio.Event().wait()  # cancelled by the stop
        return result


async def test_a_send_to_file_run_again_after_its_outcome_was_lost_answers_the_file_its_first_run_wrote(tmp_path):
    """The first server writes the file whole and is stopped before recording the job's end: the job is queued
    again, and the second server's run finds the complete file the first wrote (marked with the job's id) and
    answers it, without sending again. A new job naming the same file is refused (the name is taken)."""
    zfs = tmp_path / "zfs"
    zfs.write_text(f'#!/bin/sh\n[ "$1" = get ] && {{ printf "encryption\\toff\\t-\\n"; exit 0; }}\n[ "$1" = send ] || exit 1\nfor a; do [ "$a" = -n ] && {{ printf "size\\t8192\\n"; '
                   f'exit 0; }}; done\necho send >> {tmp_path}/sends\nhead -c 8192 /dev/urandom\n')
    zfs.chmod(0o755)
    (tmp_path / "files").mkdir()
    settings = load_settings(environ={}, overrides={"transfer": {"directories": [str(tmp_path / "files")]},
                                                     "state_dir": str(tmp_path / "state"), "zfs": {"zfs": str(zfs)}})
    first, second = build_container(settings), build_container(settings)  # two servers on one embedded store
    stalling = _StallsAfterTheFile(first.pipelines())
    first.pipelines.override(providers.Object(stalling))
    runner_ = first.job_runner()
    await runner_.start()
    try:
        async with http_client(http_app(first)) as client:
            job_id = (await Rpc(client)("send_to_file", dataset="tank/a", snapshot="s1", output_file="x.zfs",
                                        background=True))["job_id"]
            await until(stalling.written.is_set, "the first run wrote the file")
    finally:
        await runner_.stop()  # the outcome is never recorded: the job is queued again (send_to_file resumes)
    requeued = await first.job_store().get(job_id)
    assert requeued is not None and requeued.state is JobState.QUEUED, requeued
    again = second.job_runner()
    await again.start()
    try:
        async with http_client(http_app(second)) as client:
            rpc = Rpc(client)
            done = await rpc("job_wait", job_id=job_id, timeout=30)
            while done["state"] in ("queued", "running"):
                done = await rpc("job_wait", job_id=job_id, timeout=30)
            other = await rpc("send_to_file", error=True, dataset="tank/a", snapshot="s1", output_file="x.zfs",
                              background=True)
    finally:
        await again.stop()
    data = next((tmp_path / "files").rglob("x.zfs")).read_bytes()
    print("attempts:", done["attempts"], "sends:", (tmp_path / "sends").read_text().split())
    assert done["state"] == "succeeded" and done["attempts"] == 2, done
    assert done["result"]["size_bytes"] == 8192 and done["result"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "sends").read_text().split() == ["send"]  # sent once: the second run found the file
    assert other["code"] == -32011 and other["data"]["kind"] == "file", other
