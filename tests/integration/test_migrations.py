"""migration_* over the wire on real ZFS, through real server processes: to this host (full, then incremental),
to another zfsapi over HTTP and over SSH; a server SIGKILLed mid-transfer resumes the job when it starts again;
two servers sharing Redis see and cancel each other's jobs; records outlive restarts with both stores."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterator

import pytest

from .conftest import zfs
from .servers import Server, call_as, login, users_env
from .test_transfers import fill, same_snapshot, zfs_sends

DEADLINE = 300.0


def wait_task(server: Server, task_id: str, deadline: float = DEADLINE) -> dict[str, Any]:
    """The finished job (job_wait long polls, repeated until `deadline`)."""
    end = time.monotonic() + deadline
    while True:
        job = server.call("job_wait", job_id=task_id, timeout=30)
        if job["state"] not in ("queued", "running") or time.monotonic() > end:
            return job


def wait_bytes(server: Server, task_id: str, at_least: int) -> dict[str, Any]:
    """The task once it has moved `at_least` bytes (polled)."""
    end = time.monotonic() + DEADLINE
    while True:
        task = server.call("migration_progress", task_id=task_id)
        done = task["progress"]["bytes_done"] or 0
        if done >= at_least:
            return task
        assert task["status"] in ("pending", "running"), task
        assert time.monotonic() < end, f"the migration never moved {at_least} bytes: {task}"
        time.sleep(0.1)


def guid(name: str) -> str:
    return zfs("zfs", "get", "-H", "-p", "-o", "value", "guid", name).stdout.strip()


@pytest.fixture
def destination(pool, dataset) -> Iterator[str]:
    name = f"{pool}/migrated-{os.urandom(3).hex()}"
    yield name
    zfs("zfs", "destroy", "-r", name, check=False)
    for snap in zfs("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", dataset).stdout.split("\n"):
        if snap:
            zfs("zfs", "release", "zfsapi:replication", snap, check=False)


@pytest.fixture(scope="module")
def server(pool, tmp_path_factory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("migrations")) as s:
        yield s


def test_a_migration_to_this_host_then_an_incremental(server, dataset, destination):
    fill(dataset, 1)
    zfs("zfs", "snapshot", f"{dataset}@m1")
    created = server.call("migration_create", source=f"{dataset}@m1", destination=destination)
    assert created["status"] == "created" and created["task_id"] == created["job_id"]
    assert created["params"]["source"] == f"{dataset}@m1" and created["params"]["sync"] is True
    done = wait_task(server, created["task_id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["mode"] == "full" and done["progress"]["bytes_done"] > 1 << 20
    same_snapshot(f"{destination}@m1", f"{dataset}@m1")
    fill(dataset, 1, "more.bin")
    again = server.call("migration_create", source=dataset, destination=destination)  # a snapshot taken now
    done = wait_task(server, again["task_id"])
    assert done["state"] == "succeeded" and done["result"]["mode"] == "incremental", done
    assert done["result"]["from_snapshot"].endswith("@m1")
    listed = server.call("migration_list", status="completed")
    assert {created["task_id"], again["task_id"]} <= {t["task_id"] for t in listed["tasks"]}
    progress = server.call("migration_progress", task_id=again["task_id"])
    assert progress["status"] == "completed" and progress["error"] is None
    bad = server.request("migration_create", source=f"{dataset}@m1", destination=destination, limit=-1)
    assert (bad["error"]["code"], bad["error"]["data"]["param"]) == (-32602, "limit")
    bad = server.request("migration_create", source=f"{dataset}@m1", destination=destination, remote="-oProxy=x")
    assert (bad["error"]["code"], bad["error"]["data"]["param"]) == (-32602, "remote")


@pytest.mark.parametrize("how", ["http", "ssh"])
def test_a_migration_to_a_remote(how, pool, dataset, destination, ssh_options, tmp_path):
    """The remote is this guest again, reached as another host would be: another zfsapi over HTTP (listed with
    its credentials, named by name), or sshd (listed, named by its ssh string as the old server's clients do)."""
    fill(dataset, 1)
    zfs("zfs", "snapshot", f"{dataset}@r1")
    remote = Server(tmp_path, users_env(repl={"password": "repl-pw"}), "remote")
    remotes = {"peer": {"url": remote.url, "username": "repl", "password": "repl-pw"},
               "box": {"ssh": "root@127.0.0.1", "options": ssh_options}}
    env = {"ZFSAPI_REPLICATION__REMOTES": json.dumps(remotes)}
    with Server(tmp_path, env, "source") as source, remote:
        unlisted = source.request("migration_create", source=f"{dataset}@r1", destination=destination,
                                  remote=remote.url.replace("127.0.0.1", "localhost") if how == "http"
                                  else "root@localhost")
        assert (unlisted["error"]["code"], unlisted["error"]["data"]["param"]) == (-32602, "remote"), unlisted
        where = "peer" if how == "http" else "root@127.0.0.1"
        created = source.call("migration_create", source=f"{dataset}@r1", destination=destination, remote=where,
                              compression="zstd")
        done = wait_task(source, created["task_id"])
        assert done["state"] == "succeeded", done
    same_snapshot(f"{destination}@r1", f"{dataset}@r1")
    assert zfs("zfs", "holds", "-H", f"{destination}@r1").stdout.split("\t")[1] == "zfsapi:replication"


def test_a_migration_to_this_same_server_through_a_named_remote_runs_as_the_caller(pool, dataset, destination,
                                                                                    tmp_path):
    """`self` is this server's own URL, listed without credentials: its calls carry the caller's own token, so a
    scoped operator's receive is a scoped receive (-x mountpoint ...: a recursive stream's mountpoint is not
    applied) inside its scope, as a receive here would be; never passwordless root's."""
    fill(dataset, 1)
    evil = f"/tmp/zfsapi-not-here-{os.urandom(3).hex()}"
    zfs("zfs", "set", f"mountpoint={evil}", dataset)  # sent with -R: a trusted receive would apply it
    zfs("zfs", "snapshot", f"{dataset}@q1")
    server = Server(tmp_path, users_env(op={"password": "op-pw", "role": "operator",
                                            "datasets": [dataset, destination]}), "self")
    server.env["ZFSAPI_REPLICATION__REMOTES"] = json.dumps({"self": {"url": server.url}})
    with server:
        token = login(server, "op", "op-pw")
        inside = call_as(server, token, "migration_create", source=f"{dataset}@q1", destination=f"{dataset}/in",
                         remote="self")
        assert (inside["error"]["code"], inside["error"]["data"]["param"]) == (-32602, "destination"), inside
        outside = call_as(server, token, "migration_create", source=f"{dataset}@q1", destination=f"{pool}/x",
                          remote="self")
        assert outside["error"]["code"] == -32004, outside
        created = call_as(server, token, "migration_create", source=f"{dataset}@q1", destination=destination,
                          remote="self", recursive=True)["result"]
        done = wait_task(server, created["task_id"])
        assert done["state"] == "succeeded", done
        sessions = server.call("stream_list")["sessions"]
    assert [s.get("username") for s in sessions if s.get("operation") == "receive"] == ["op"], sessions
    same_snapshot(f"{destination}@q1", f"{dataset}@q1")
    value, source = zfs("zfs", "get", "-H", "-o", "value,source", "mountpoint", destination).stdout.strip().split("\t")
    assert not value.endswith(evil) and source != "received", (value, source)


def test_a_server_killed_mid_migration_resumes_the_job_when_it_starts_again(pool, dataset, destination, tmp_path):
    fill(dataset, 3)
    zfs("zfs", "snapshot", f"{dataset}@k1")
    server = Server(tmp_path, {"ZFSAPI_JOBS__LEASE": "5"}).start()
    try:
        created = server.call("migration_create", source=f"{dataset}@k1", destination=destination, limit=1)
        wait_bytes(server, created["task_id"], 512 << 10)
        server.kill()
        end = time.monotonic() + DEADLINE
        while zfs_sends(f"{dataset}@k1"):  # the send sees its reader gone
            assert time.monotonic() < end, "zfs send outlived its server"
            time.sleep(0.1)
        token = zfs("zfs", "get", "-H", "-o", "value", "receive_resume_token", destination).stdout.strip()
        assert token != "-", "the cut receive kept no resume token"
        server.start()
        # the restarted server finds the lease lapsed: the job is `interrupted` for the grace (its old holder
        # may still write its end), then queued again and resumed
        end = time.monotonic() + DEADLINE
        while (done := wait_task(server, created["task_id"]))["state"] == "interrupted" and time.monotonic() < end:
            time.sleep(0.5)
        assert done["state"] == "succeeded", done
        assert done["attempts"] == 2 and done["result"]["resumed"] is True, done
        print(f"resumed after SIGKILL: {done['result']['bytes']} bytes in the second attempt")
    finally:
        server.stop()
    same_snapshot(f"{destination}@k1", f"{dataset}@k1")
    assert guid(f"{destination}@k1") == guid(f"{dataset}@k1")


def test_two_servers_sharing_redis_cancel_each_others_jobs_and_keep_the_records(pool, dataset, destination,
                                                                               redis_url, tmp_path):
    fill(dataset, 10)  # 10 s at 1 MB/s: progress is stored every 2 s, so what we read lags the transfer
    zfs("zfs", "snapshot", f"{dataset}@c1")
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    shared = {"ZFSAPI_REDIS__HOST": "127.0.0.1", "ZFSAPI_REDIS__PORT": port}
    a, b = Server(tmp_path, shared, "a").start(), Server(tmp_path, shared, "b").start()
    try:
        created = a.call("migration_create", source=f"{dataset}@c1", destination=destination, limit=1)
        # b sees a's job (whichever of them runs it); past the 1 MiB the pipe holds, so zfs receive has data
        wait_bytes(b, created["task_id"], 2 << 20)
        assert b.call("migration_cancel", task_id=created["task_id"]) == {"task_id": created["task_id"],
                                                                         "cancelled": True}
        done = wait_task(a, created["task_id"])
        assert done["state"] == "cancelled", done
        end = time.monotonic() + DEADLINE
        while zfs_sends(f"{dataset}@c1"):
            assert time.monotonic() < end, "zfs send still running after the cancel"
            time.sleep(0.1)
        token = zfs("zfs", "get", "-H", "-o", "value", "receive_resume_token", destination).stdout.strip()
        assert token != "-", "the cancelled receive kept no resume token"
    finally:
        a.stop()
        b.stop()
    with Server(tmp_path, shared, "a") as again:  # a restart: the record is still there
        assert again.call("migration_get", task_id=created["task_id"])["status"] == "cancelled"
