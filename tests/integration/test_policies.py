"""Policies end to end on real OpenZFS, through real servers (`python -m zfsapi serve`) over HTTP:

- a policy with two targets, this host ("local") and another zfsapi over HTTP ("nas"): policy_run takes the
  snapshots, replicates them (full, then incremental), and prunes by counts evaluated at a later `at`;
- the nas target kept down while the source snapshots and prunes: its base survives (held with its own tag), a
  manual snapshot and a foreign hold survive every prune; back up, it catches up incrementally from that base;
- two servers on one Redis run each slot of a schedule once.

One pool and three servers for the module (the guest is slow: 10-30x native); times are printed, never asserted.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from .conftest import zfs
from .servers import Server, users_env

DEADLINE = 300.0  # seconds for a job to finish in the emulated guest


@pytest.fixture(scope="module")
def servers(pool, redis_url, tmp_path_factory) -> Iterator[dict[str, Server]]:
    """nas (the HTTP remote, its own state), main and main2 (one Redis: jobs, policies and slots shared)."""
    started = time.monotonic()
    work = tmp_path_factory.mktemp("policies")
    nas = Server(work, users_env(repl={"password": "repl-password"}), name="nas").start()
    redis_port = redis_url.rsplit(":", 1)[1].split("/")[0]
    shared = {"ZFSAPI_REDIS__HOST": "127.0.0.1", "ZFSAPI_REDIS__PORT": redis_port,
              "ZFSAPI_REPLICATION__REMOTES": json.dumps(
                  {"nas": {"url": nas.url, "username": "repl", "password": "repl-password"}})}
    main = Server(work, shared, name="main").start()
    main2 = Server(work, shared, name="main2").start()
    print(f"\nservers up in {time.monotonic() - started:.1f} s")
    try:
        yield {"nas": nas, "main": main, "main2": main2}
    finally:
        for server in (main2, main, nas):
            server.stop()


def wait_job(server: Server, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while True:
        record: dict[str, Any] = server.call("job_wait", job_id=job_id, timeout=60)
        if record["state"] not in ("queued", "running"):
            return record
        assert time.monotonic() < deadline, record


def run_step(server: Server, name: str, step: str, target: str | None = None) -> dict[str, Any]:
    started = time.monotonic()
    job = server.call("policy_run", name=name, step=step, target=target)
    record = wait_job(server, job["job_id"])
    print(f"{step}{f' {target}' if target else ''}: {record['state']} in {time.monotonic() - started:.1f} s")
    return record


def snapshots(dataset: str) -> list[str]:
    out = zfs("zfs", "list", "-H", "-p", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-d", "1",
              dataset, check=False).stdout
    return [line.split("@", 1)[1] for line in out.split()]


def holds(snapshot: str) -> set[str]:
    out = zfs("zfs", "holds", "-H", snapshot).stdout
    return {line.split("\t")[1] for line in out.splitlines() if line.strip()}


def test_two_targets_replicate_prune_and_a_target_down_catches_up(servers, pool):
    main, nas = servers["main"], servers["nas"]
    src, loc, remote = f"{pool}/pol/src", f"{pool}/pol/loc", f"{pool}/pol/nas"
    zfs("zfs", "create", "-p", f"{src}/c1")
    policy = {"name": "pt", "datasets": [src], "snapshot": {"prefix": "auto"},
              "retention": {"keep_last": 1, "daily": 1},
              "replicate": {"loc": {"remote": "local", "destination": loc},
                            "nas": {"remote": "nas", "destination": remote}}}
    created = main.call("policy_create", policy=policy)
    assert created["name"] == "pt" and created["source"] == "api"

    first = run_step(main, "pt", "snapshot")
    assert first["state"] == "succeeded", first
    short1 = first["result"]["snapshot"]
    assert sorted(first["result"]["taken"]) == [f"{src}/c1@{short1}", f"{src}@{short1}"]
    done = run_step(main, "pt", "replicate")
    assert done["state"] == "succeeded", done
    modes = {t: {d["dataset"]: d["mode"] for d in r["datasets"]} for t, r in done["result"]["targets"].items()}
    assert modes == {"loc": {src: "full", f"{src}/c1": "full"}, "nas": {src: "full", f"{src}/c1": "full"}}
    assert snapshots(loc) == [short1] and snapshots(f"{remote}/c1") == [short1]
    assert {"zfsapi:pt:loc", "zfsapi:pt:nas"} <= holds(f"{src}@{short1}")

    time.sleep(1.1)  # names are per second
    short2 = run_step(main, "pt", "snapshot")["result"]["snapshot"]
    done = run_step(main, "pt", "replicate")
    assert done["state"] == "succeeded", done
    assert {d["mode"] for r in done["result"]["targets"].values() for d in r["datasets"]} == {"incremental"}
    assert holds(f"{src}@{short1}") == set()  # both bases moved on, each by its own tag
    assert {"zfsapi:pt:loc", "zfsapi:pt:nas"} <= holds(f"{src}@{short2}")

    zfs("zfs", "snapshot", f"{src}@manual")  # a person's snapshot: never the policy's to prune
    zfs("zfs", "hold", "keepme", f"{src}@{short1}")  # a hold zfsapi did not place
    nas.stop()  # the nas target is down from here
    try:
        for _ in range(2):
            time.sleep(1.1)
            run_step(main, "pt", "snapshot")
            down = run_step(main, "pt", "replicate")
            assert down["state"] == "failed", down  # nas failed; loc went on (its base moves, below)
        newest = snapshots(src)[-1]
        assert holds(f"{src}@{short2}") == {"zfsapi:pt:nas"}  # loc moved on; nas still needs short2
        status = main.call("policy_get", name="pt")
        assert status["status"]["targets"]["nas"]["base_snapshot"] == short2, status
        assert status["status"]["targets"]["loc"]["base_snapshot"] == newest, status

        at = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()
        preview = main.call("policy_preview", name="pt", at=at)
        plan = {s["snapshot"].split("@")[-1]: (s["action"], s["reasons"])
                for d in preview["datasets"] if d["dataset"] == src for s in d["snapshots"]}
        assert plan["manual"][0] == "keep" and "not owned" in plan["manual"][1], plan
        assert plan[short1][0] == "keep" and "user hold keepme" in plan[short1][1], plan
        assert plan[short2][0] == "keep" and "replication base for nas" in plan[short2][1], plan
        assert plan[newest][0] == "keep", plan
        doomed = sorted(s for s, (action, _) in plan.items() if action == "destroy")
        assert doomed, plan  # the third snapshot: no count keeps it, no base needs it
        pruned = run_step(main, "pt", "prune")
        assert pruned["state"] == "succeeded", pruned
        assert sorted(s.split("@", 1)[1] for s in pruned["result"]["destroyed"] if s.startswith(src + "@")) == \
            doomed
        left = snapshots(src)
        assert {"manual", short1, short2, newest} <= set(left) and not set(doomed) & set(left)
    finally:
        nas.start()
    caught = run_step(main, "pt", "replicate", target="nas")
    assert caught["state"] == "succeeded", caught
    assert {d["mode"] for d in caught["result"]["targets"]["nas"]["datasets"]} == {"incremental"}
    assert snapshots(remote)[-1] == newest and snapshots(f"{remote}/c1")[-1] == newest
    assert holds(f"{src}@{short2}") == set()  # nas's base moved to the newest: its hold on short2 released
    assert {"zfsapi:pt:loc", "zfsapi:pt:nas"} <= holds(f"{src}@{newest}")
    status = main.call("policy_get", name="pt")
    assert status["status"]["targets"]["nas"]["base_snapshot"] == newest, status
    assert status["status"]["targets"]["nas"]["lag_seconds"] is not None
    zfs("zfs", "release", "keepme", f"{src}@{short1}")
    assert main.call("policy_delete", name="pt") == {"deleted": True}
    assert "manual" in snapshots(src)  # deleting a policy destroys no snapshot


def test_two_servers_on_one_redis_run_a_slot_once(servers, pool):
    main, main2 = servers["main"], servers["main2"]
    ds = f"{pool}/pol/slots"
    zfs("zfs", "create", "-p", ds)
    started = time.monotonic()
    main.call("policy_create", policy={"name": "slots", "datasets": [ds],
                                       "snapshot": {"schedule": "* * * * *", "prefix": "every"}})
    try:
        deadline = time.monotonic() + 240  # the next minute's slot, on either server, in a slow guest
        while not (taken := snapshots(ds)):
            assert time.monotonic() < deadline, "no scheduled snapshot within 240 s"
            time.sleep(2)
        slot_jobs = [j for j in main2.call("job_list", kind="policy_snapshot", limit=100)["jobs"]
                     if j["params"]["policy"] == "slots"]
        first_slot = slot_jobs[0]["params"]["slot"]
        print(f"first scheduled snapshot after {time.monotonic() - started:.1f} s: {taken}")
        time.sleep(20)  # the other server's ticks have passed the same slot by now
        jobs = [j for j in main.call("job_list", kind="policy_snapshot", limit=100)["jobs"]
                if j["params"]["policy"] == "slots"]
        per_slot: dict[str, int] = {}
        for j in jobs:
            per_slot[j["params"]["slot"]] = per_slot.get(j["params"]["slot"], 0) + 1
        assert per_slot[first_slot] == 1 and set(per_slot.values()) == {1}, jobs
        assert len(snapshots(ds)) == len(per_slot), (snapshots(ds), per_slot)
    finally:
        main.call("policy_delete", name="slots")
