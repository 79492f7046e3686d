"""/metrics read by Prometheus' own text parser (outcomes apart: ok, client_error, auth, zfs_error, internal;
send-file bytes; job gauges and replication successes from the job store), and one access line per JSON-RPC
request."""

from __future__ import annotations

import logging

from dependency_injector import providers
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import http_client
from tests.fakes import FakeZfs
from tests.unit.test_executor import SPEC, script
from zfsapi.adapters import metrics as metrics_module
from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.state.memory.jobs import MemoryJobStore
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.application.jobs import Jobs
from zfsapi.bootstrap.lifecycle import http_app
from zfsapi.domain.errors import ServiceUnavailable
from zfsapi.domain.jobs import Job, JobOwner, JobState
from zfsapi.domain.names import DatasetName
from zfsapi.domain.transfer import Compression, ReceiveSpec


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called `name`, by their sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def call(method: str, params: dict | None = None, id_: int = 1) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params or {}, "id": id_}


async def test_outcomes_are_told_apart_in_metrics(container):
    app = http_app(container)
    async with http_client(app) as local, http_client(app, peer="203.0.113.9", uid=None) as remote:
        await local.post("/", json=call("dataset_list"))  # ok
        await local.post("/", json=call("dataset_list"))  # ok
        await local.post("/", json=call("dataset_create", {"dataset": "no pool"}))  # -32602
        await local.post("/", json=call("dataset_get_properties", {"dataset": "tank/none here"}))  # -32010
        await remote.post("/", json=call("dataset_list"))  # -32001
        await local.post("/", json=call("dataset_set_property",  # zfs refuses: -32013
                                        {"dataset": "tank", "property": "used", "value": "1"}))
        text = (await local.get("/metrics")).text
    counts = samples(text, "zfsapi_rpc_requests_total")
    assert counts == {
        (("method", "dataset_list"), ("outcome", "ok")): 2.0,
        (("method", "dataset_create"), ("outcome", "client_error")): 1.0,
        (("method", "dataset_get_properties"), ("outcome", "client_error")): 1.0,
        (("method", "dataset_list"), ("outcome", "auth")): 1.0,
        (("method", "dataset_set_property"), ("outcome", "zfs_error")): 1.0,
    }
    latency = samples(text, "zfsapi_rpc_latency_seconds_count")
    assert latency[(("method", "dataset_set_property"), ("outcome", "zfs_error"))] == 1.0


async def test_an_internal_error_has_its_own_outcome(container):
    class Crashing(FakeZfs):
        async def list_datasets(self, *args, **kwargs):
            raise RuntimeError("boom")

    container.zfs.override(providers.Object(Crashing()))
    async with http_client(http_app(container)) as c:
        body = (await c.post("/", json=call("dataset_list"))).json()
        text = (await c.get("/metrics")).text
    assert body["error"]["code"] == -32603
    assert samples(text, "zfsapi_rpc_requests_total") == {(("method", "dataset_list"), ("outcome", "internal")): 1.0}


async def test_send_file_bytes_are_counted(tmp_path):
    data = b"x" * 100_000
    (tmp_path / "data").write_bytes(data)
    zfs = script(tmp_path, "zfs", f'if [ "$1" = send ]; then exec cat {tmp_path}/data; fi\n'
                                  'cat > /dev/null; echo "receiving full stream of tank/a@s1 into t/b@s1"\n')
    metrics = Metrics()
    pipelines = ZfsPipelines(ZfsExecutor(zfs=zfs, metrics=metrics), metrics)
    path = str(tmp_path / "s1.zfs")
    await pipelines.send_to_file(SPEC, path, str(tmp_path), Compression.NONE)
    await pipelines.receive_from_file(ReceiveSpec(DatasetName.parse("t/b")), path, str(tmp_path), Compression.NONE)
    await pipelines.receive_from_file(ReceiveSpec(DatasetName.parse("t/c")), path, str(tmp_path), Compression.NONE)
    from prometheus_client import generate_latest

    assert samples(generate_latest(metrics.registry).decode(), "zfsapi_transfer_file_bytes_total") == {
        (("direction", "send"),): 100_000.0, (("direction", "receive"),): 200_000.0}


async def test_one_access_line_per_request(container, caplog):
    caplog.set_level(logging.INFO, logger="zfsapi.access")
    async with http_client(http_app(container)) as c:
        await c.post("/", json=call("dataset_list"), headers={"X-Request-ID": "req-1"})
        await c.post("/", json=[call("dataset_list", id_=1), call("nope", id_=2), call("pool_list", id_=3)],
                     headers={"X-Request-ID": "req-2"})
        await c.post("/", content=b"{}", headers={"Content-Type": "text/plain", "X-Request-ID": "req-3"})
    lines = [r for r in caplog.records if r.name == "zfsapi.access"]
    assert len(lines) == 3
    one, batch, refused = lines
    assert (one.method, one.outcome, one.code, one.status, one.principal) == ("dataset_list", "ok", None, 200, "root")
    assert sorted(batch.method) == ["dataset_list", "pool_list", "unknown"]  # a name no method has is not logged
    assert (batch.outcome, batch.code, batch.status) == ("client_error", -32601, 200)
    assert (refused.method, refused.outcome, refused.code, refused.status) == ([], "refused", None, 415)
    assert one.duration_ms >= 0 and one.peer == "127.0.0.1"
    assert [x.request_id for x in lines] == ["req-1", "req-2", "req-3"]


async def jobs_in(store, *specs: tuple[str, JobState, float | None, dict]) -> None:
    """Records as they would stand (id, state, finished_at, params), created in this order."""
    for n, (job_id, state, finished, params) in enumerate(specs):
        kind = "migration_create" if "destination" in params else "send_to_file"
        await store.add(Job(job_id=job_id, kind=kind, owner=JobOwner("root", "admin"), params=params, datasets=(),
                            created_at=1000.0 + n, state=state, finished_at=finished))


SUCCEEDED, FAILED = JobState.SUCCEEDED, JobState.FAILED
REMOTE = {"remote": "http://nas:8545", "destination": "tank/b"}
HISTORY = (
    ("q1", JobState.QUEUED, None, {}),
    ("q2", JobState.QUEUED, None, {}),
    ("r1", JobState.RUNNING, None, {"destination": "backup/a b"}),
    ("m1", SUCCEEDED, 1000.0, {"destination": "backup/a b"}),
    ("m2", SUCCEEDED, 2000.0, {"destination": "backup/a b", "remote": None}),
    ("f1", FAILED, 2500.0, {"destination": "backup/c"}),  # never succeeded: no gauge
    ("s1", SUCCEEDED, 3000.0, {}),  # not a migration
    ("m3", SUCCEEDED, 1500.0, REMOTE),
)


async def test_job_gauges_come_from_the_job_store(container):
    await jobs_in(container.job_store(), *HISTORY)
    async with http_client(http_app(container)) as c:
        text = (await c.get("/metrics")).text
    assert samples(text, "zfsapi_jobs") == {(("state", "queued"),): 2.0, (("state", "running"),): 1.0}
    assert samples(text, "zfsapi_replication_last_success_timestamp_seconds") == {
        (("destination", "backup/a b"),): 2000.0, (("destination", "http://nas:8545:tank/b"),): 1500.0}
    assert set(samples(text, "zfsapi_replication_seconds_since_success")) == {
        (("destination", "backup/a b"),), (("destination", "http://nas:8545:tank/b"),)}


async def test_seconds_since_success_and_the_bounded_read(monkeypatch):
    from prometheus_client import generate_latest

    store = MemoryJobStore()
    await jobs_in(store, *HISTORY)
    metrics = Metrics()
    await metrics.observe_jobs(Jobs(store), now=2600.0)
    text = generate_latest(metrics.registry).decode()
    assert samples(text, "zfsapi_replication_seconds_since_success") == {
        (("destination", "backup/a b"),): 600.0, (("destination", "http://nas:8545:tank/b"),): 1100.0}
    monkeypatch.setattr(metrics_module, "RECENT_JOBS", 1)  # only the newest success is read: m3
    await metrics.observe_jobs(Jobs(store), now=2600.0)
    text = generate_latest(metrics.registry).decode()
    assert samples(text, "zfsapi_replication_last_success_timestamp_seconds") == {
        (("destination", "http://nas:8545:tank/b"),): 1500.0}


async def test_a_job_store_out_of_reach_leaves_the_job_gauges_out(container):
    class Flaky(MemoryJobStore):
        down = False

        async def query(self, **kw):
            if self.down:
                raise ServiceUnavailable("job store", "database is locked")
            return await super().query(**kw)

    store = Flaky()
    container.job_store.override(providers.Object(store))
    await jobs_in(store, *HISTORY)
    async with http_client(http_app(container)) as c:
        before = (await c.get("/metrics")).text
        assert samples(before, "zfsapi_jobs")[(("state", "queued"),)] == 2.0
        store.down = True
        r = await c.get("/metrics")
    assert r.status_code == 200
    assert samples(r.text, "zfsapi_jobs") == {}
    assert samples(r.text, "zfsapi_replication_last_success_timestamp_seconds") == {}
    pools = samples(before, "zfsapi_pool_size_bytes")
    assert pools and samples(r.text, "zfsapi_pool_size_bytes") == pools  # the rest answers as before
