"""A job runs with the rights its owner has when it runs: the owner removed, its role lowered or its scope narrowed
(by a reload) before a queued or resumed job starts fails that job with -32004 naming why, and nothing of it runs.
A job's scope is every name it touches, pools included. An event stream ends when its caller may no longer
follow it, and opening one costs what a request costs."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from dependency_injector import providers

from tests.conftest import http_client
from tests.fakes import FakeZfs, FixedClock
from tests.job_drills import toy_kinds
from tests.unit.test_auth import FAST, KEY
from tests.unit.test_jobs import Work, until
from tests.unit.test_transfers_unit import StubZfs
from zfsapi.adapters.inbound.http.events import StreamGuard
from zfsapi.adapters.inbound.jsonrpc.job_methods import describe, error_code
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.application.jobs import JobRunner, Jobs
from zfsapi.bootstrap import build_container, load_settings, open_jobs
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.bootstrap.service import Reloader
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import InvalidToken
from zfsapi.domain.jobs import Job, JobOwner, JobState
from zfsapi.domain.ratelimit import Quota

ALICE = Principal("alice", Role.OPERATOR, ("tank/alice",), token_id="t1", token_expires=4e9)
PASSWORDS = {"root": "root-pw", "ops": "ops-pw", "tankadmin": "ta-pw", "vaultx": "vx-pw", "vaultadmin": "va-pw"}


class Owners:
    """The configuration's users as a test changes them: name -> principal (absent: removed)."""

    def __init__(self, *principals: Principal) -> None:
        self.now = {p.name: p for p in principals}

    def current(self, owner: JobOwner) -> Principal | None:
        return self.now.get(owner.name)


def runner(store, jobs, work, owners, resumable=frozenset(), **kw) -> JobRunner:
    return JobRunner(store, jobs, kinds=toy_kinds({"copy": work}, resumable), describe=describe, owners=owners, **kw)


@pytest.mark.parametrize("change, reason", [
    (lambda now: now.pop("alice"), "owner removed: alice is no longer configured"),
    (lambda now: now.update(alice=Principal("alice", Role.READONLY, ("tank/alice",))),
     "role: alice is readonly now (was operator): the readonly role may only list, get, check status and estimate"),
    (lambda now: now.update(alice=Principal("alice", Role.OPERATOR, ("tank/alice/other",))),
     "scope narrowed: tank/alice/a is outside the datasets this user may touch now"),
])
async def test_a_queued_job_whose_owner_lost_the_right_fails_naming_why_and_never_runs(change, reason):
    store, work, owners, ended = MemoryJobStore(), Work(), Owners(ALICE), []
    jobs = Jobs(store)
    job = await jobs.submit("copy", ALICE, {}, ("tank/alice/a",))
    change(owners.now)
    r = runner(store, jobs, work, owners, ended=lambda *e: ended.append(e))
    await r.start()
    try:
        done = await jobs.wait(Principal("root", Role.ADMIN), job.job_id, 30)
    finally:
        await r.stop()
    assert done.state is JobState.FAILED and work.runs == []
    assert (error_code(done.error), done.error.data["method"], done.error.data["reason"]) == (-32004, "copy", reason)
    assert ended == [("copy", "failed", 0)]


async def test_a_resumed_job_is_checked_again_when_it_starts_again():
    store, work, owners = MemoryJobStore(), Work(), Owners(ALICE)
    jobs = Jobs(store)
    first = runner(store, jobs, work, owners, resumable=frozenset({"copy"}))
    await first.start()
    job = await jobs.submit("copy", ALICE, {}, ("tank/alice/a",))
    await until(lambda: job.job_id in work.running, "the job started")
    await first.stop()  # its server stops: the job is queued again to resume
    assert (await store.get(job.job_id)).state is JobState.QUEUED
    owners.now.pop("alice")
    second = runner(store, jobs, work, owners, resumable=frozenset({"copy"}))
    await second.start()
    try:
        done = await until(lambda: _finished(store, job.job_id), "the resumed job ended")
    finally:
        await second.stop()
    assert (done.state, error_code(done.error), done.attempts) == (JobState.FAILED, -32004, 2)
    assert done.error.data["reason"] == "owner removed: alice is no longer configured"
    assert work.runs == [job.job_id]  # the first run only


async def _finished(store, job_id):
    job = await store.get(job_id)
    return job if job.state.finished else None


async def test_a_job_runs_with_its_owners_rights_as_they_are_when_it_starts():
    store, owners, seen = MemoryJobStore(), Owners(ALICE), []
    jobs = Jobs(store)

    async def record_owner(job, meter):
        seen.append(job.owner)
        return {}

    job = await jobs.submit("copy", ALICE, {}, ("tank/alice/a",))
    owners.now["alice"] = Principal("alice", Role.ADMIN, ("tank/alice", "tank/shared"))  # promoted meanwhile
    r = JobRunner(store, jobs, kinds=toy_kinds({"copy": record_owner}), describe=describe, owners=owners)
    await r.start()
    try:
        assert (await jobs.wait(ALICE, job.job_id, 30)).state is JobState.SUCCEEDED
    finally:
        await r.stop()
    assert seen == [JobOwner("alice", "admin", ("tank/alice", "tank/shared"), "token")]
    assert (await store.get(job.job_id)).owner.role == "operator"  # the record keeps who started it


# ---- the real wiring: users and local users as reloaded, the dispatcher's own access rules ----

def users(ops: dict | None) -> dict:
    out = {"root": FAST.hash(PASSWORDS["root"]),
           "tankadmin": {"password_hash": FAST.hash(PASSWORDS["tankadmin"]), "role": "admin", "datasets": ["tank"]},
           "vaultx": {"password_hash": FAST.hash(PASSWORDS["vaultx"]), "role": "admin", "datasets": ["vault/x"]},
           "vaultadmin": {"password_hash": FAST.hash(PASSWORDS["vaultadmin"]), "role": "admin",
                          "datasets": ["vault"]}}
    return out if ops is None else {**out, "ops": {"password_hash": FAST.hash(PASSWORDS["ops"]), **ops}}


class Recorder(FakeZfs, StubZfs):
    """FakeZfs with two pools, and the stub's transfers and pipelines noting every call (a refused job must
    make none)."""

    NOTED = frozenset(n for n in vars(StubZfs) if not n.startswith("_"))

    def __init__(self) -> None:
        super().__init__(pools=("tank", "vault"))
        self.calls: list[str] = []

    def __getattribute__(self, name):
        if name in Recorder.NOTED:
            super().__getattribute__("calls").append(name)
        return super().__getattribute__(name)


class Replication:
    def __init__(self) -> None:
        self.runs: list[object] = []

    def admit(self, **kw):  # the pre-queue check passes: the refusal under test comes when the job starts
        return None

    async def execute(self, **kw):
        self.runs.append(kw)
        raise AssertionError("a refused migration ran")


def settings(tmp_path, ops: dict | None, local_users: dict | None = None):
    auth = {"secret_key": KEY, "users": users(ops), "password_profile": "owasp-minimum",
            **({} if local_users is None else {"local_users": local_users})}
    return load_settings(environ={}, overrides={"auth": auth, "state_dir": str(tmp_path / "state"),
                                                "transfer": {"directories": [str(tmp_path / "files")]}})


@pytest.fixture
def wired(tmp_path):
    (tmp_path / "files").mkdir()
    c = build_container(settings(tmp_path, {"role": "operator", "datasets": ["tank/ops"]}))
    recorder, replication = Recorder(), Replication()
    c.zfs.override(providers.Object(recorder))
    c.pipelines.override(providers.Object(recorder))
    c.replicate.override(providers.Object(replication))
    c.clock.override(providers.Object(FixedClock(datetime(2026, 12, 5, 9, 0, tzinfo=timezone.utc))))
    c.recorder, c.replication = recorder, replication
    return c


async def rpc(client, method, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await client.post("/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1},
                          headers=headers)
    return r.json()


async def login(client, user):
    return (await rpc(client, "auth_login", username=user, password=PASSWORDS[user]))["result"]["token"]


@pytest.mark.parametrize("ops, reason", [
    (None, "owner removed: ops is no longer configured"),
    ({"role": "operator", "datasets": ["tank/other"]},
     "scope narrowed: {dataset} is outside the datasets this user may touch now"),
    ({"role": "readonly", "datasets": ["tank/ops"]},
     "role: ops is readonly now (was operator): the readonly role may only list, get, check status and estimate"),
])
async def test_a_reload_before_the_queued_send_and_migration_start_fails_both(wired, tmp_path, ops, reason):
    async with http_client(http_app(wired), peer="192.0.2.7") as client:
        token = await login(client, "ops")
        sent = await rpc(client, "send_to_file", token, dataset="tank/ops/a", snapshot="s1", output_file="x",
                         background=True)
        migrated = await rpc(client, "migration_create", token, source="tank/ops/a@s1", destination="tank/ops/b")
        ids = [sent["result"]["job_id"], migrated["result"]["job_id"]]
        calls_before = list(wired.recorder.calls)
        assert Reloader(wired, lambda: settings(tmp_path, ops))()  # what SIGHUP does
        runner_ = wired.job_runner()
        await runner_.start()
        try:
            done = [await wired.jobs().wait(Principal("root", Role.ADMIN), i, 30) for i in ids]
        finally:
            await runner_.stop()
        after = await rpc(client, "job_list", token)
    for job, kind in zip(done, ("send_to_file", "migration_create")):
        assert (job.state, error_code(job.error)) == (JobState.FAILED, -32004), job
        name = job.error.data["dataset"]
        assert name is None or name.startswith("tank/ops/a")
        assert job.error.data == {"method": kind, "dataset": name, "reason": reason.format(dataset=name)}
    assert wired.recorder.calls == calls_before and wired.replication.runs == []  # nothing of either ran
    if ops is None:
        assert after["error"]["code"] == -32002  # its token went with it


async def test_a_local_user_removed_by_a_reload_has_its_job_refused_even_with_a_token_user_of_that_name(
        wired, tmp_path):
    async with http_client(http_app(wired)) as client:  # loopback, uid 0: the local user root
        started = await rpc(client, "send_to_file", dataset="tank/a", snapshot="s1", output_file="y", background=True)
    assert Reloader(wired, lambda: settings(tmp_path, None, local_users={}))()
    runner_ = wired.job_runner()
    await runner_.start()
    try:
        job = await wired.jobs().wait(Principal("root", Role.ADMIN), started["result"]["job_id"], 30)
    finally:
        await runner_.stop()
    assert (job.state, error_code(job.error)) == (JobState.FAILED, -32004)
    assert job.error.data["reason"] == "owner removed: root is no longer configured"


async def test_a_program_embedding_zfsapi_keeps_the_principal_it_gave(wired):
    who = Principal("embedder", Role.OPERATOR, ("tank/e",))  # in no configuration
    async with open_jobs(container=wired, who=who) as jobs:
        job = await jobs.start("send_to_file", dataset="tank/e/a", snapshot="s1", output_file="z")
        assert job.owner.origin == "embedded"
        assert (await jobs.result(job.job_id))["size_bytes"] == 10


# ---- a job's scope is every name it touches, pools included ----

async def test_a_scoped_admin_cannot_see_follow_wait_on_or_cancel_a_job_on_a_pool_outside_its_scope(wired):
    async with http_client(http_app(wired), peer="192.0.2.7") as client:
        root = await login(client, "root")
        started = await rpc(client, "pool_scrub_start", root, pool="vault", background=True)
        job_id = started["result"]["job_id"]
        assert (await wired.jobs().get(Principal("root", Role.ADMIN), job_id)).datasets == ("vault",)
        for user in ("tankadmin", "vaultx"):  # another pool; a dataset of the pool, not all of it
            token = await login(client, user)
            assert (await rpc(client, "job_list", token))["result"] == {"jobs": [], "total": 0}
            for method, extra in (("job_get", {}), ("job_wait", {"timeout": 0}), ("job_cancel", {})):
                error = (await rpc(client, method, token, job_id=job_id, **extra))["error"]
                assert (error["code"], error["data"]) == (-32010, {"kind": "job", "name": job_id}), (user, method)
            r = await client.get(f"/jobs/{job_id}/events", headers={"Authorization": f"Bearer {token}"})
            assert (r.status_code, r.json()["error"]["code"]) == (404, -32010)
        whole = await login(client, "vaultadmin")  # the whole pool: it sees the job
        assert [j["job_id"] for j in (await rpc(client, "job_list", whole))["result"]["jobs"]] == [job_id]
        assert (await rpc(client, "job_get", whole, job_id=job_id))["result"]["state"] == "queued"
    assert (await wired.jobs().get(Principal("root", Role.ADMIN), job_id)).cancel_requested is False


def test_a_job_without_recorded_names_is_seen_by_its_owner_and_unrestricted_admins_only():
    old = Job("j", "pool_scrub_start", JobOwner("root", "admin"), {"pool": "vault"}, (), 0.0)  # recorded before
    assert old.visible_to(Principal("root", Role.ADMIN))
    assert old.visible_to(Principal("other", Role.ADMIN))
    assert not old.visible_to(Principal("tankadmin", Role.ADMIN, ("tank",)))
    assert not old.visible_to(Principal("ops", Role.OPERATOR))
    pool_job = replace(old, datasets=("vault",))
    assert pool_job.visible_to(Principal("va", Role.ADMIN, ("vault",)))
    assert not pool_job.visible_to(Principal("vx", Role.ADMIN, ("vault/x",)))


# ---- event streams: the caller re-checked while it follows, and counted in its rate limit ----

class Identity:
    def __init__(self, principal: Principal | None, error: BaseException | None = None) -> None:
        self.answer = (principal, error)
        self.asked = 0

    async def __call__(self):
        self.asked += 1
        return self.answer


QUEUED = Job("j", "send_to_file", JobOwner("alice", "operator", ("tank/alice",)), {}, ("tank/alice/a",), 0.0)


async def test_the_stream_guard_ends_a_stream_whose_caller_may_no_longer_follow():
    now = [1000.0]
    identity = Identity(ALICE)
    guard = StreamGuard(identity, replace(ALICE, token_expires=1010.0), recheck=2.0, clock=lambda: now[0],
                        wall=lambda: now[0])
    assert guard.due_in() == 2.0 and await guard.refusal(QUEUED) is None and identity.asked == 1
    now[0] = 1009.0
    assert guard.due_in() == 0.0  # overdue
    identity.answer = (None, InvalidToken("revoked"))  # auth_logout (or the user removed)
    refused = await guard.refusal(QUEUED)
    assert (refused.code, refused.data) == (-32002, {"reason": "token revoked"})
    identity.answer = (ALICE, None)
    now[0] = 1009.5
    assert guard.due_in() == 0.5  # the token expires before the next regular check
    now[0] = 1010.0
    expired = await guard.refusal(QUEUED)
    assert (expired.code, expired.data) == (-32002, {"reason": "token expired"})
    narrowed = StreamGuard(Identity(replace(ALICE, prefixes=("tank/bob",))), ALICE)
    refused = await narrowed.refusal(QUEUED)
    assert refused.code == -32004 and refused.data["reason"].startswith("scope narrowed")
    local = StreamGuard(Identity(None, None), Principal("root", Role.ADMIN))  # a local user no longer configured
    assert (await local.refusal(QUEUED)).code == -32001


async def test_event_streams_and_long_polls_count_in_the_callers_rate_limit(wired, tmp_path):
    access = wired.http_options().access
    access.swap(replace(access.current, rate_limit=Quota(3, 600.0)))
    app = http_app(wired)
    async with http_client(app, peer="192.0.2.7") as client:
        token = await login(client, "root")  # auth_login counts in the peer's login limit, not the user's
        headers = {"Authorization": f"Bearer {token}"}
        job_id = (await rpc(client, "pool_scrub_start", token, pool="tank", background=True))["result"]["job_id"]
        await rpc(client, "job_cancel", token, job_id=job_id)  # 2 of 3: the job ends (cancelled while queued)
        r = await client.get(f"/jobs/{job_id}/events", headers=headers)  # 3 of 3
        assert r.status_code == 200 and "event: end" in r.text
        refused = await client.get(f"/jobs/{job_id}/events", headers=headers)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        body = refused.json()["error"]
        assert body["code"] == -32000 and body["data"]["retry_after"] > 0
        waited = await rpc(client, "job_wait", token, job_id=job_id, timeout=0)  # a long poll: refused as well
        assert waited["error"]["code"] == -32000
    counted = wired.metrics().registry.get_sample_value("zfsapi_rate_limit_refusals_total", {"limit": "requests"})
    assert counted == 2, counted


def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def test_an_event_stream_of_a_removed_local_user_ends_with_an_error_event(wired, tmp_path):
    """In process (httpx buffers a stream until it ends): the local root follows a running scrub; a reload
    removes it from auth.local_users; the stream ends with an `error` event saying why."""
    runner_ = wired.job_runner()
    await runner_.start()
    try:
        async with http_client(http_app(wired)) as client:
            job_id = (await rpc(client, "pool_scrub_start", pool="tank", background=True))["result"]["job_id"]
            await until(lambda: _running(wired, job_id), "the scrub job running")
            loop = asyncio.get_running_loop()
            loop.call_later(0.5, Reloader(wired, lambda: settings(tmp_path, None, local_users={})))
            started = loop.time()
            r = await asyncio.wait_for(client.get(f"/jobs/{job_id}/events"), 60)
            print(f"stream ended {loop.time() - started:.2f} s after it opened (reload at 0.5 s)")
            events = _events(r.text)
            assert events[0][0] == "progress" and events[-1][0] == "error"
            assert events[-1][1]["code"] == -32001 and "auth.local_users" in events[-1][1]["data"]["reason"]
            await wired.jobs().cancel(Principal("root", Role.ADMIN), job_id)
    finally:
        await runner_.stop()


async def _running(c, job_id):
    return (await c.jobs().get(Principal("root", Role.ADMIN), job_id)).state is JobState.RUNNING
