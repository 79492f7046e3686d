"""The policy store contract (tests/policy_store_contract.py) over Redis (a real redis-server on a loopback port,
each store on its own connection pool: two servers); then what only Redis has: the keys it keeps, servers on
separate connections racing for one slot, and Redis being down; and separate processes claiming slots from one
SQLite file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.conftest import free_port, start_redis
from tests.policy_store_contract import NOTE, PolicyStoreContract, Stores, make
from .conftest import redis_port
from zfsapi.adapters.outbound.state.redis.client import PREFIX, connect
from zfsapi.adapters.outbound.state.redis.policies import RedisPolicyStore
from zfsapi.adapters.outbound.state.sqlite.policies import EmbeddedPolicyStore
from zfsapi.domain.errors import ServiceUnavailable




def _another(clients: list[Redis], redis_url: str) -> RedisPolicyStore:
    clients.append(connect("127.0.0.1", redis_port(redis_url), 0, None))
    return RedisPolicyStore(clients[-1])


class TestRedisPolicyStore(PolicyStoreContract):
    @pytest.fixture
    def stores(self, clients: list[Redis], redis_url: str) -> Stores:
        return Stores(RedisPolicyStore(clients[0]), _another(clients, redis_url),
                      lambda: _another(clients, redis_url))


async def keys(client: Redis) -> set[str]:
    return {k.decode() if isinstance(k, bytes) else k for k in await client.keys(PREFIX + "*")}


async def test_redis_keys_and_what_forget_and_remove_leave(clients: list[Redis]) -> None:
    store = RedisPolicyStore(clients[0])
    for name in ("a", "ab"):
        await store.add(make(name))
        await store.note(name, "target:nas2", NOTE)
        assert await store.claim_slot(name + ":snapshot", "2026-12-06T04:00:00Z")
    assert await keys(clients[0]) == {PREFIX + k for k in (
        "policies", "policy:a", "policy:ab", "policy-notes:a", "policy-notes:ab", "policy-slots:a",
        "policy-slots:ab")}
    await store.forget("a")
    assert await store.remove("a")
    assert await keys(clients[0]) == {PREFIX + k for k in ("policies", "policy:ab", "policy-notes:ab",
                                                           "policy-slots:ab")}
    assert await clients[0].zrange(PREFIX + "policies", 0, -1) == [b"ab"]


async def test_servers_on_separate_connections_claim_a_slot_once(clients: list[Redis], redis_url: str) -> None:
    stores = [RedisPolicyStore(clients[0]), *(_another(clients, redis_url) for _ in range(3))]
    for slot in ("2026-12-06T04:00:00Z", "2026-12-06T05:00:00Z", "2026-12-06T06:00:00Z"):
        claims = [stores[n % len(stores)].claim_slot("home:replicate:nas2", slot) for n in range(20)]
        assert sorted(await asyncio.gather(*claims)) == [False] * 19 + [True]
    assert await stores[1].last_slot("home:replicate:nas2") == "2026-12-06T06:00:00Z"


async def test_redis_down_is_the_policy_store_unavailable() -> None:
    client = connect("127.0.0.1", free_port(), 0, None)  # nothing listens there
    store = RedisPolicyStore(client)
    calls = (store.all(), store.get("home"), store.add(make()), store.replace(make(), revision=1),
             store.remove("home"), store.claim_slot("home:snapshot", "x"), store.last_slot("home:snapshot"),
             store.note("home", "f", {}), store.notes("home"), store.forget("home"))
    for call in calls:
        with pytest.raises(ServiceUnavailable) as down:
            await call
        assert (down.value.service, down.value.reason) == ("policy store", "ConnectionError")
    await client.aclose()


async def test_redis_stopped_is_the_policy_store_unavailable_until_it_is_back(redis_url: str,
                                                                              tmp_path: Path) -> None:
    port = free_port()
    proc = start_redis(port, str(tmp_path))
    client = connect("127.0.0.1", port, 0, None)
    store = RedisPolicyStore(client)
    try:
        await store.add(make())
        assert await store.claim_slot("home:snapshot", "2026-12-06T04:00:00Z")
        proc.kill()
        proc.wait(30)
        with pytest.raises(ServiceUnavailable) as down:
            await store.claim_slot("home:snapshot", "2026-12-06T05:00:00Z")
        assert down.value.service == "policy store"
        with pytest.raises(ServiceUnavailable):
            await store.get("home")
        proc = start_redis(port, str(tmp_path))  # back, empty (no persistence): the same client works again
        assert await store.get("home") is None
        assert await store.claim_slot("home:snapshot", "2026-12-06T05:00:00Z")
    finally:
        proc.kill()
        proc.wait(30)
        await client.aclose()


CLAIMER = textwrap.dedent("""
    import asyncio, json, os, sys
    from zfsapi.adapters.outbound.state.sqlite.policies import EmbeddedPolicyStore

    async def main(state_dir, name, count):
        store = EmbeddedPolicyStore(state_dir)
        await store.last_slot("-")  # opened
        open(os.path.join(state_dir, "ready-" + name), "w").close()
        while not os.path.exists(os.path.join(state_dir, "go")):
            await asyncio.sleep(0.01)
        won = []
        for n in range(int(count)):
            key = f"p{n}:snapshot"
            tries = await asyncio.gather(*(store.claim_slot(key, "2026-12-06T04:00:00Z") for _ in range(3)))
            won.extend(key for claimed in tries if claimed)
        print(json.dumps(won))
        store.close()

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_processes_sharing_the_file_claim_each_slot_once(tmp_path: Path) -> None:
    store = EmbeddedPolicyStore(str(tmp_path))
    await store.last_slot("-")  # the file made before the claimers open it
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path), f"c{c}", "40"], stdout=subprocess.PIPE,
                              text=True) for c in range(3)]
    deadline = time.monotonic() + 60  # all three start claiming at once
    while len(list(tmp_path.glob("ready-*"))) < 3:
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs), "claimers not ready"
        await asyncio.sleep(0.02)
    (tmp_path / "go").touch()
    won = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    print("claims per process:", [len(w) for w in won])
    assert sorted(k for w in won for k in w) == sorted(f"p{n}:snapshot" for n in range(40))  # each once
    assert await store.last_slot("p39:snapshot") == "2026-12-06T04:00:00Z"
    store.close()
