"""The job store contract (tests/job_store_contract.py) over the memory store and the embedded SQLite store on a
temporary state_dir; and what only the embedded store has: its file. Redis, and two embedded stores sharing one
file, run the same cases in tests/integration/service/test_job_stores.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from tests.job_store_contract import JobStoreContract, Stores, make
from zfsapi.adapters.outbound.state.job_codec import decode_job, encode_job
from zfsapi.adapters.outbound.state.sqlite.jobs import FILE, EmbeddedJobStore
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import JobError, JobProgress, JobState


class TestMemoryJobStore(JobStoreContract):
    @pytest.fixture
    def stores(self) -> Stores:
        store = MemoryJobStore()
        return Stores(store, store, None)


class TestEmbeddedJobStore(JobStoreContract):
    @pytest.fixture
    def stores(self, tmp_path: Path) -> Iterator[Stores]:
        opened: list[EmbeddedJobStore] = []

        def reopen() -> EmbeddedJobStore:
            opened.append(EmbeddedJobStore(str(tmp_path / "state")))
            return opened[-1]

        store = reopen()
        yield Stores(store, store, reopen)
        for s in opened:
            s.close()


def test_codec_round_trips_every_field() -> None:
    job = make("c", 0.1 + 0.2, state=JobState.FAILED, started_at=1 / 3, finished_at=2 / 3, attempts=3,
               progress=JobProgress("x", 1, 2, 5e-324, 1.7976931348623157e308), result={"r": [0.3, {"s": None}]},
               error=JobError("m", {"d": 1e22}, code=7), lease_owner="w", lease_until=1e-9, cancel_requested=True)
    assert decode_job(encode_job(job)) == job
    assert decode_job(encode_job(job).decode()) == job


async def test_the_file_is_private_and_made_on_first_use(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = EmbeddedJobStore(str(state))
    assert not state.exists()  # nothing until the first call
    await store.add(make("j"))
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for name in (FILE, FILE + "-wal", FILE + "-shm"):  # WAL's files while it is open take the file's mode
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
    store.close()


async def test_a_file_that_is_no_database_is_the_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / FILE).write_bytes(b"not a database, 100 bytes of it " * 4)
    store = EmbeddedJobStore(str(tmp_path))
    with pytest.raises(ServiceUnavailable) as unavailable:
        await store.get("j")
    assert (unavailable.value.service, unavailable.value.reason) == ("job store", "file is not a database")
    store.close()
