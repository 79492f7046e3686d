"""The policy store contract (tests/policy_store_contract.py) over the memory store, the embedded SQLite store on
a temporary state_dir, and two embedded stores on one file (two servers); then what only the embedded store has:
its file, shared by threads with a connection each, and a state_dir it cannot use. Redis runs the same cases in
tests/integration/service/test_policy_stores.py."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.policy_store_contract import NOTE, T0, PolicyStoreContract, Stores, make
from zfsapi.adapters.outbound.state.memory.policies import MemoryPolicyStore
from zfsapi.adapters.outbound.state.policy_codec import decode_note, decode_policy, encode_note, encode_policy
from zfsapi.adapters.outbound.state.sqlite.policies import FILE, EmbeddedPolicyStore
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import JobOwner


class TestMemoryPolicyStore(PolicyStoreContract):
    @pytest.fixture
    def stores(self) -> Stores:
        store = MemoryPolicyStore()
        return Stores(store, store, None)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[list[EmbeddedPolicyStore]]:
    """`embedded.append(EmbeddedPolicyStore(...))`: closed afterwards."""
    opened: list[EmbeddedPolicyStore] = []
    yield opened
    for s in opened:
        s.close()


def _opener(opened: list[EmbeddedPolicyStore], state_dir: Path) -> EmbeddedPolicyStore:
    opened.append(EmbeddedPolicyStore(str(state_dir)))
    return opened[-1]


class TestEmbeddedPolicyStore(PolicyStoreContract):
    @pytest.fixture
    def stores(self, tmp_path: Path, embedded: list[EmbeddedPolicyStore]) -> Stores:
        store = _opener(embedded, tmp_path / "state")
        return Stores(store, store, lambda: _opener(embedded, tmp_path / "state"))


class TestSharedEmbeddedPolicyStore(PolicyStoreContract):
    """Two stores on one file, each with its connection: two servers on one state_dir."""

    @pytest.fixture
    def stores(self, tmp_path: Path, embedded: list[EmbeddedPolicyStore]) -> Stores:
        return Stores(_opener(embedded, tmp_path), _opener(embedded, tmp_path), lambda: _opener(embedded, tmp_path))


def test_codec_round_trips_every_field() -> None:
    stored = make(revision=12, owner=JobOwner("u", "viewer", ("tank",), "local"))
    for stored in (stored, make(owner=JobOwner("old", "admin"))):
        assert decode_policy(encode_policy(stored)) == stored
        assert decode_policy(encode_policy(stored).decode()) == stored
    tiny = {"a": 5e-324, "b": 1.7976931348623157e308, "c": T0, "d": [None, True, {"e": "ü"}]}
    assert decode_note(encode_note(tiny)) == tiny
    assert decode_note(encode_note(NOTE).decode()) == NOTE


async def test_the_file_is_private_and_made_on_first_use(tmp_path: Path,
                                                         embedded: list[EmbeddedPolicyStore]) -> None:
    state = tmp_path / "state"
    store = _opener(embedded, state)
    assert not state.exists()  # nothing until the first call
    await store.add(make())
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for name in (FILE, FILE + "-wal", FILE + "-shm"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name


def test_stores_on_one_file_in_threads_claim_each_slot_once(tmp_path: Path,
                                                             embedded: list[EmbeddedPolicyStore]) -> None:
    """Eight servers (a thread, an event loop and a connection each) claim the same slot at the same moment, three
    times each, slot after slot: one claim of each slot is True."""
    stores = [_opener(embedded, tmp_path) for _ in range(8)]
    slots = [f"2026-12-06T0{h}:00:00Z" for h in range(4)]
    go = threading.Barrier(len(stores))
    won: list[list[str]] = [[] for _ in stores]

    def server(n: int) -> None:
        async def claims() -> None:
            await stores[n].last_slot("-")  # opened before the race
            for slot in slots:
                await asyncio.to_thread(go.wait, 30)
                tries = await asyncio.gather(*(stores[n].claim_slot("home:snapshot", slot) for _ in range(3)))
                won[n].extend(slot for claimed in tries if claimed)
        asyncio.run(claims())

    threads = [threading.Thread(target=server, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()
    assert sorted(s for w in won for s in w) == slots


async def test_an_unusable_state_dir_is_the_policy_store_unavailable(tmp_path: Path,
                                                                    embedded: list[EmbeddedPolicyStore]) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = _opener(embedded, tmp_path / "file" / "state")
    calls = (store.all(), store.get("home"), store.add(make()), store.replace(make(), revision=1),
             store.remove("home"), store.claim_slot("home:snapshot", "x"), store.last_slot("home:snapshot"),
             store.note("home", "f", {}), store.notes("home"), store.forget("home"))
    for call in calls:
        with pytest.raises(ServiceUnavailable) as down:
            await call
        assert down.value.service == "policy store"


async def test_a_file_that_is_not_a_database_is_the_policy_store_unavailable(
        tmp_path: Path, embedded: list[EmbeddedPolicyStore]) -> None:
    (tmp_path / FILE).write_bytes(b"x" * 4096)
    with pytest.raises(ServiceUnavailable) as down:
        await _opener(embedded, tmp_path).get("home")
    assert down.value.service == "policy store"
