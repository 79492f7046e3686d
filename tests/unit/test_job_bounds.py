"""The per-owner bound over the wire: `jobs.max_per_owner` queued + running jobs per user, one more refused with
-32000 "Too many jobs" naming the figures; other users and finished jobs do not count; and a scoped admin's
job_list, answered from the scope index, lists what it lists without it."""

from __future__ import annotations

from dependency_injector import providers

from tests.conftest import Rpc, http_client
from tests.unit.test_transfers_unit import StubZfs
from zfsapi.application.jobs import Jobs
from zfsapi.bootstrap import build_container, load_settings
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.authz import Principal, Role


def app_with(tmp_path, **jobs):
    (tmp_path / "files").mkdir(exist_ok=True)
    c = build_container(load_settings(environ={}, overrides={
        "transfer": {"directories": [str(tmp_path / "files")]}, "state_dir": str(tmp_path / "state"),
        "jobs": jobs}))
    stub = StubZfs()
    c.zfs.override(providers.Object(stub))
    c.pipelines.override(providers.Object(stub))
    return c


async def test_one_job_past_the_bound_is_refused_with_the_figures(tmp_path) -> None:
    c = app_with(tmp_path, max_per_owner=2)  # no runner here: the jobs stay queued
    async with http_client(http_app(c)) as client:
        rpc = Rpc(client)
        for n in range(2):
            await rpc("send_to_file", dataset="tank/a", snapshot="s1", output_file=f"f{n}", background=True)
        r = await client.post("/", json={"jsonrpc": "2.0", "id": 9, "method": "send_to_file", "params": {
            "dataset": "tank/a", "snapshot": "s1", "output_file": "f2", "background": True}})
        assert r.status_code == 200
        error = r.json()["error"]
        assert (error["code"], error["message"]) == (-32000, "Too many jobs")
        assert error["data"] == {"retry_after": None, "limit": 2, "count": 2,
                                 "reason": "Too many jobs: root has 2 queued or running (at most 2)"}
        jobs = (await rpc("job_list"))["jobs"]
        assert len(jobs) == 2
        await rpc("job_cancel", job_id=jobs[0]["job_id"])  # a finished job no longer counts
        started = await rpc("send_to_file", dataset="tank/a", snapshot="s1", output_file="f3", background=True)
        assert list(started) == ["job_id"]
        foreground = await rpc("send_to_file", dataset="tank/a", snapshot="s1", output_file="f4")
        assert foreground["size_bytes"] == 10  # the bound is on jobs, not on calls


async def test_the_bound_is_per_owner_and_the_default_is_16(tmp_path) -> None:
    c = app_with(tmp_path)
    assert c.settings().jobs.max_per_owner == 16
    jobs: Jobs = c.jobs()
    alice = Principal("alice", Role.OPERATOR, ("tank/a",))
    for _ in range(16):
        await jobs.submit("send_to_file", alice, {}, ("tank/a",))
    refused = None
    try:
        await jobs.submit("send_to_file", alice, {}, ("tank/a",))
    except Exception as exc:
        refused = exc
    assert type(refused).__name__ == "TooManyJobs" and (refused.limit, refused.count) == (16, 16)
    await jobs.submit("send_to_file", Principal("bob", Role.OPERATOR, ("tank/b",)), {}, ("tank/b",))


async def test_a_scoped_admins_listing_is_the_same_through_the_index(tmp_path) -> None:
    c = app_with(tmp_path, max_per_owner=1000)
    jobs: Jobs = c.jobs()
    root = Principal("root", Role.ADMIN)
    scoped = Principal("ops", Role.ADMIN, ("tank/a",))
    names = [("tank/a",), ("tank/a/b@s",), ("tank/ab",), ("tank/a", "vault/x"), ("vault",), ("tank/a/c#bm",)]
    made = [await jobs.submit("send_to_file", root, {}, n) for n in names * 5]
    seen, total = await jobs.list(scoped, limit=7, offset=3)
    everything = [j for j in (await jobs.list(root, limit=1000))[0] if j.visible_to(scoped)]
    assert total == len(everything) == 15 and [j.job_id for j in seen] == [j.job_id for j in everything[3:10]]
    assert {j.job_id for j in everything} == {j.job_id for j, n in zip(made, names * 5)
                                              if all(x.startswith(("tank/a/", "tank/a@", "tank/a#"))
                                                     or x == "tank/a" for x in n)}
    c.job_store().close()
