"""Replication without ZFS: the planner's every branch, ReplicationSpec's checks, the pacer, and the Replicate use
case over FakeZfs (two pools) with FakeStreams at the Transfers/Pipelines ports and the real LocalReplica."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from tests.fakes import CHUNK, FakeStreams, FakeZfs, FixedClock
from zfsapi.adapters.outbound.replicas.local import LocalReplica
from zfsapi.adapters.outbound.state.memory.sessions import MemoryStreamSessions
from zfsapi.application import replication as repl
from zfsapi.application.ports import ReplicaSide
from zfsapi.application.replication import Pacer, Replicate
from zfsapi.application.transfers import SendStream, StreamLimits, StreamService
from zfsapi.domain.authz import LOCALHOST, Principal, Role
from zfsapi.domain.errors import InvalidArgument, PermissionDenied, StateConflict, ZfsCommandFailed
from zfsapi.domain.jobs import ProgressMeter
from zfsapi.domain.models import Bookmark, Snapshot
from zfsapi.domain.names import BookmarkName, DatasetName, SnapshotName
from zfsapi.domain.replication import (
    NamedRemote,
    Remote,
    RemoteBook,
    ReplicationMode,
    ReplicationPlan,
    ReplicationSpec,
    plan_package_retry,
    plan_replication,
)
from zfsapi.domain.transfer import Compression, ReceiveSpec, SendSpec, StreamState

FULL, INCREMENTAL, UP_TO_DATE = ReplicationMode.FULL, ReplicationMode.INCREMENTAL, ReplicationMode.UP_TO_DATE


# ---- the planner ----

def snaps(dataset: str, *specs: tuple[str, int]) -> list[Snapshot]:
    """Snapshots of `dataset` from (short, guid), oldest first (createtxg 10, 20, ...)."""
    return [Snapshot(f"{dataset}@{short}", guid, 10 * (i + 1)) for i, (short, guid) in enumerate(specs)]


SOURCE = snaps("tank/a", ("s1", 1), ("s2", 2), ("s3", 3))


def test_full_when_the_destination_is_missing() -> None:
    assert plan_replication(SOURCE[2], SOURCE, None) == ReplicationPlan(FULL, SnapshotName.parse("tank/a@s3"))


def test_incremental_from_the_newest_common_snapshot_by_guid() -> None:
    renamed = snaps("backup/x", ("first", 1), ("second", 2))  # names differ: guids decide
    plan = plan_replication(SOURCE[2], SOURCE, renamed)
    assert plan == ReplicationPlan(INCREMENTAL, SnapshotName.parse("tank/a@s3"), SnapshotName.parse("tank/a@s2"),
                                   "backup/x@second", 2)


def test_incremental_from_a_bookmark_when_the_snapshot_is_gone() -> None:
    source = [Snapshot("tank/a@s3", 3, 30)]
    marks = [Bookmark("tank/a#keep", 2, 20)]
    plan = plan_replication(source[0], source, snaps("backup/x", ("s1", 1), ("s2", 2)), bookmarks=marks)
    assert (plan.mode, plan.base, plan.common) == (INCREMENTAL, BookmarkName.parse("tank/a#keep"), "backup/x@s2")


def test_a_recursive_send_cannot_start_from_a_bookmark() -> None:
    source = [Snapshot("tank/a@s3", 3, 30)]
    with pytest.raises(StateConflict) as refused:
        plan_replication(source[0], source, snaps("backup/x", ("s2", 2)), bookmarks=[Bookmark("tank/a#keep", 2, 20)],
                         recursive=True)
    assert refused.value.reason == ("the destination's newest snapshot backup/x@s2 survives on the source only as "
                                    "the bookmark tank/a#keep, and a recursive send cannot start from a bookmark")


def test_up_to_date_when_the_destination_has_the_snapshot() -> None:
    plan = plan_replication(SOURCE[1], SOURCE, snaps("backup/x", ("s1", 1), ("s2", 2), ("s3", 3)))
    assert (plan.mode, plan.snapshot.value, plan.base) == (UP_TO_DATE, "tank/a@s2", None)


def test_diverged_names_the_snapshots() -> None:
    mine = snaps("backup/x", ("s1", 1), ("local", 99))
    with pytest.raises(StateConflict) as diverged:
        plan_replication(SOURCE[2], SOURCE, mine)
    assert diverged.value.reason == (
        "the destination has diverged: its newest snapshot backup/x@local is not in the history of tank/a (the "
        "newest snapshot both have is backup/x@s1); roll it back or choose another destination")
    assert diverged.value.details == {"destination_snapshot": "backup/x@local", "common": "backup/x@s1"}


def test_diverged_without_any_common_snapshot() -> None:
    with pytest.raises(StateConflict) as diverged:
        plan_replication(SOURCE[2], SOURCE, snaps("backup/x", ("other", 77)))
    assert diverged.value.reason.startswith("the destination has diverged: its newest snapshot backup/x@other is "
                                            "not in the history of tank/a (they share no snapshot)")


def test_an_existing_destination_without_snapshots_is_refused() -> None:
    with pytest.raises(StateConflict) as refused:
        plan_replication(SOURCE[2], SOURCE, [])
    assert refused.value.reason == ("the destination exists and has no snapshot in common with tank/a@s3 (it has no "
                                    "snapshots): destroy it or choose another destination")


def test_a_destination_ahead_of_the_snapshot_is_refused() -> None:
    source = snaps("tank/a", ("s1", 1), ("s2", 2), ("s3", 3))
    with pytest.raises(StateConflict) as ahead:
        plan_replication(source[0], source[1:], snaps("backup/x", ("s3", 3)))
    assert ahead.value.reason == "the destination is ahead: its newest snapshot backup/x@s3 is newer than tank/a@s1"


def test_a_cut_package_is_sent_again() -> None:
    wanted = SnapshotName.parse("tank/a@s3")
    incremental = ReplicationPlan(INCREMENTAL, wanted, SnapshotName.parse("tank/a@s1"), "backup/x@s1", 1)
    assert plan_package_retry(incremental, SOURCE, snaps("backup/x", ("s1", 1), ("s2", 2))) == incremental
    full = ReplicationPlan(FULL, wanted)
    assert plan_package_retry(full, SOURCE, None) == full
    assert plan_package_retry(full, SOURCE, snaps("backup/x", ("s1", 1), ("s2", 2))) == ReplicationPlan(
        INCREMENTAL, wanted, SnapshotName.parse("tank/a@s1"), "backup/x@s1", 1)
    assert plan_package_retry(full, SOURCE, snaps("backup/x", ("s3", 3))).mode is UP_TO_DATE


# ---- ReplicationSpec ----

def test_spec_parse() -> None:
    spec = ReplicationSpec.parse(source="tank/a@s1", destination="backup/x", remote="root@host.example", limit=2.5,
                                 compression="zstd", recursive=True, sync=False)
    assert spec == ReplicationSpec(SnapshotName.parse("tank/a@s1"), DatasetName.parse("backup/x"),
                                   "root@host.example", 2.5, Compression.ZSTD, True, False)
    assert (spec.source_dataset.value, spec.bytes_per_second) == ("tank/a", 2_500_000)
    dataset = ReplicationSpec.parse(source="tank/a", destination="backup/x")
    assert (dataset.source, dataset.compression, dataset.sync, dataset.bytes_per_second) == (
        DatasetName.parse("tank/a"), Compression.NONE, True, None)


@pytest.mark.parametrize(("params", "param"), [
    ({"source": "tank/a@"}, "source"),
    ({"source": "-tank"}, "source"),
    ({"destination": "backup/x@s"}, "destination"),
    ({"remote": "-oProxyCommand=x"}, "remote"),
    ({"limit": 0}, "limit"),
    ({"limit": -1}, "limit"),
    ({"limit": float("inf")}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": "5"}, "limit"),
    ({"compression": "brotli"}, "compression"),
    ({"destination": "tank/a/copy"}, "destination"),
    ({"source": "tank/a/b", "destination": "tank/a"}, "destination"),
])
def test_spec_errors_name_the_parameter(params: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        ReplicationSpec.parse(**{"source": "tank/a", "destination": "backup/x", **params})  # type: ignore[arg-type]
    assert bad.value.param == param


def test_a_remote_destination_may_share_the_source_name() -> None:
    assert ReplicationSpec.parse(source="tank/a", destination="tank/a", remote="backup.example").remote is not None


# ---- the pacer ----

def test_pacer_holds_the_rate_and_saves_at_most_its_burst() -> None:
    now = [100.0]
    pacer = Pacer(1000.0, burst=0.5, clock=lambda: now[0])
    for _ in range(10):
        now[0] += pacer.delay(500)
    assert now[0] - 100.0 == pytest.approx(5.0)  # 5,000 bytes at 1,000 B/s
    now[0] += 10.0  # a stall: only half a second of allowance is saved up
    resumed = now[0]
    for _ in range(4):
        now[0] += pacer.delay(500)
    assert now[0] - resumed == pytest.approx(1.5)


# ---- Replicate over fakes ----

WHEN = datetime(2026, 11, 24, 12, 30, 15, tzinfo=timezone.utc)


class World:
    def __init__(self, retries: int = 3) -> None:
        self.zfs = FakeZfs(pools=("tank", "backup"))
        self.streams = FakeStreams(self.zfs)
        self.replica = LocalReplica(self.zfs, self.streams, self.streams)
        self.use_case = Replicate(self.zfs, self.zfs, self.streams, self.streams, self, FixedClock(WHEN),
                                  retries=retries, backoff=0.0)
        self.book = RemoteBook((NamedRemote("nas", Remote.parse("backup@nas.example")),
                                NamedRemote("self", Remote.parse("http://127.0.0.1:8545"))))
        self.sides: list[tuple[NamedRemote | None, Principal]] = []

    def resolve(self, remote: str, who: Principal) -> NamedRemote:
        """The Replicas port: the remotes of `book`."""
        return self.book.resolve(remote, who)

    def side(self, target: NamedRemote | None, who: Principal) -> ReplicaSide:
        """The Replicas port: every destination is this host's (remote ones are checked by name all the same)."""
        self.sides.append((target, who))
        return self.replica

    async def snapshot(self, name: str, recursive: bool = False) -> None:
        await self.zfs.create_snapshot(SnapshotName.parse(name), recursive=recursive, properties={})

    def guid(self, name: str) -> int:
        return self.zfs.snapshots[name].guid

    def holds(self, name: str) -> list[str]:
        return sorted(self.zfs.snapshots[name].holds)

    async def run(self, source: str = "tank/a@s1", who: Principal = LOCALHOST, progress: ProgressMeter | None = None,
                  **params: object) -> repl.ReplicationResult:
        spec = ReplicationSpec.parse(source=source, destination="backup/x", **params)  # type: ignore[arg-type]
        return await self.use_case.execute(who=who, spec=spec, progress=progress or ProgressMeter())


@pytest.fixture
async def world() -> World:
    w = World()
    await w.zfs.create_dataset(DatasetName.parse("tank/a"), properties={}, parents=False)
    await w.snapshot("tank/a@s1")
    return w


HOLD = "zfsapi:replication"


async def test_full_then_incremental_then_up_to_date(world: World) -> None:
    progress = ProgressMeter()
    first = await world.run(progress=progress)
    size = len(world.streams.streams[0])
    assert (first.source_snapshot, first.destination, first.mode, first.from_snapshot, first.bytes, first.resumed) \
        == ("tank/a@s1", "backup/x", FULL, None, size, False)
    assert world.guid("backup/x@s1") == world.guid("tank/a@s1")
    assert world.holds("tank/a@s1") == world.holds("backup/x@s1") == [HOLD]
    assert await world.zfs.list_bookmarks(DatasetName.parse("tank/a")) == ["tank/a#zfsapi-repl-s1"]
    read = progress.read()
    assert (read.phase, read.bytes_done, read.bytes_total) == ("done", size, size)

    await world.snapshot("tank/a@s2")
    await world.snapshot("tank/a@s3")
    second = await world.run(source="tank/a@s3")
    assert (second.mode, second.from_snapshot) == (INCREMENTAL, "tank/a@s1")
    # -I: the snapshot in between went too; holds and the bookmark moved to the new snapshot
    assert [s.guid for s in await world.zfs.list_snapshots(DatasetName.parse("backup/x"), recursive=False)] == [
        world.guid(f"tank/a@s{i}") for i in (1, 2, 3)]
    assert (world.holds("tank/a@s1"), world.holds("backup/x@s1")) == ([], [])
    assert world.holds("tank/a@s3") == world.holds("backup/x@s3") == [HOLD]
    assert await world.zfs.list_bookmarks(DatasetName.parse("tank/a")) == ["tank/a#zfsapi-repl-s3"]

    third = await world.run(source="tank/a@s3")
    assert (third.mode, third.from_snapshot, third.bytes, third.resumed) == (UP_TO_DATE, None, 0, False)
    assert world.holds("tank/a@s3") == [HOLD]


async def test_a_dataset_source_is_snapshotted_now(world: World) -> None:
    result = await world.run(source="tank/a", sync=False)
    assert result.source_snapshot == "tank/a@zfsapi-repl_2026-11-24-12-30"
    assert "backup/x@zfsapi-repl_2026-11-24-12-30" in world.zfs.snapshots
    assert world.holds("tank/a@zfsapi-repl_2026-11-24-12-30") == []  # sync off: no holds, no bookmark
    assert await world.zfs.list_bookmarks(DatasetName.parse("tank/a")) == []


async def test_incremental_from_the_bookmark_once_the_base_is_destroyed(world: World) -> None:
    await world.run()
    await world.zfs.release(SnapshotName.parse("tank/a@s1"), repl._HOLD, recursive=False)
    await world.zfs.destroy_snapshot(SnapshotName.parse("tank/a@s1"), recursive=False)
    await world.snapshot("tank/a@s2")
    result = await world.run(source="tank/a@s2")
    assert (result.mode, result.from_snapshot) == (INCREMENTAL, "tank/a#zfsapi-repl-s1")
    assert world.guid("backup/x@s2") == world.guid("tank/a@s2")
    assert world.holds("backup/x@s1") == []  # the destination's old base is released even so
    assert await world.zfs.list_bookmarks(DatasetName.parse("tank/a")) == ["tank/a#zfsapi-repl-s2"]


async def test_a_diverged_destination_is_refused(world: World) -> None:
    await world.run(sync=False)
    await world.snapshot("backup/x@mine")
    await world.snapshot("tank/a@s2")
    with pytest.raises(StateConflict) as diverged:
        await world.run(source="tank/a@s2")
    assert diverged.value.details == {"destination_snapshot": "backup/x@mine", "common": "backup/x@s1"}
    assert "backup/x@s2" not in world.zfs.snapshots


@pytest.mark.parametrize(("prefixes", "refused"), [(("tank/a",), "backup/x"), (("backup",), "tank/a")])
async def test_scope_covers_source_and_destination(world: World, prefixes: tuple[str, ...], refused: str) -> None:
    with pytest.raises(PermissionDenied) as denied:
        await world.run(who=Principal("op", Role.OPERATOR, prefixes))
    assert (denied.value.method, denied.value.dataset) == ("migration_create", refused)
    assert "backup/x" not in world.zfs.datasets


async def test_remote_destinations_are_checked_by_name(world: World) -> None:
    with pytest.raises(PermissionDenied) as denied:
        await world.run(who=Principal("op", Role.OPERATOR, ("tank", "backup/y")), remote="backup.example")
    assert denied.value.dataset == "backup/x"


async def test_a_cut_transfer_resumes_from_the_token(world: World) -> None:
    world.streams.cut_after = CHUNK  # the first send dies after one chunk
    progress = ProgressMeter()
    result = await world.run(progress=progress)
    size = len(world.streams.streams[0])
    assert (result.mode, result.resumed, result.bytes) == (FULL, True, size)  # one chunk, then the rest
    assert world.guid("backup/x@s1") == world.guid("tank/a@s1")
    assert await world.streams.resume_token(DatasetName.parse("backup/x")) is None
    assert (progress.read().bytes_done, progress.read().bytes_total) == (size, size)
    assert all(p.killed for p in world.streams.pipes)


async def test_retries_are_bounded_and_the_token_stays(world: World) -> None:
    world.use_case._retries = 0
    world.streams.cut_after = CHUNK
    with pytest.raises(ZfsCommandFailed):
        await world.run()
    token = await world.streams.resume_token(DatasetName.parse("backup/x"))
    assert token is not None
    world.use_case._retries = 3  # the next run finishes the partial receive first
    result = await world.run()
    assert (result.mode, result.resumed, result.bytes) == (FULL, True, len(world.streams.streams[0]) - CHUNK)
    assert world.guid("backup/x@s1") == world.guid("tank/a@s1")


async def test_no_token_no_retry(world: World) -> None:
    world.streams.cut_after = 0  # dies before its first byte: nothing was received
    with pytest.raises(ZfsCommandFailed):
        await world.run()
    assert len(world.streams.streams) == 1 and "backup/x" not in world.zfs.datasets


@pytest.mark.parametrize("other", ["tank/other", "tank"])  # a sibling, and the source's parent
async def test_a_partial_receive_of_another_source_is_refused(world: World, other: str) -> None:
    if other != "tank":
        await world.zfs.create_dataset(DatasetName.parse(other), properties={}, parents=False)
    await world.snapshot(f"{other}@p1")
    world.use_case._retries = 0
    world.streams.cut_after = CHUNK
    with pytest.raises(ZfsCommandFailed):
        await world.run(source=f"{other}@p1")
    with pytest.raises(StateConflict) as foreign:
        await world.run()
    assert foreign.value.reason == (f"backup/x holds a partial receive of {other}@p1, not of tank/a: abort it "
                                    "(receive_abort) or choose another destination")


async def test_cancel_kills_both_ends_and_keeps_the_token(world: World) -> None:
    world.streams.gate = asyncio.Event()
    task = asyncio.create_task(world.run())
    for _ in range(1000):
        if len(world.streams.pipes) == 2 and world.streams.pipes[1].got:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [p.killed for p in world.streams.pipes] == [True, True]
    assert await world.streams.resume_token(DatasetName.parse("backup/x")) is not None


async def test_recursive_keeps_children_in_step(world: World) -> None:
    await world.zfs.create_dataset(DatasetName.parse("tank/a/c"), properties={}, parents=False)
    await world.snapshot("tank/a@r1", recursive=True)
    first = await world.run(source="tank/a@r1", recursive=True)
    assert first.mode is FULL
    assert world.guid("backup/x/c@r1") == world.guid("tank/a/c@r1")
    assert world.holds("tank/a/c@r1") == world.holds("backup/x/c@r1") == [HOLD]
    await world.snapshot("tank/a@r2", recursive=True)
    second = await world.run(source="tank/a@r2", recursive=True)
    assert (second.mode, second.from_snapshot) == (INCREMENTAL, "tank/a@r1")
    assert world.guid("backup/x/c@r2") == world.guid("tank/a/c@r2")
    assert world.holds("tank/a/c@r1") == world.holds("backup/x/c@r1") == []
    assert world.holds("tank/a/c@r2") == world.holds("backup/x/c@r2") == [HOLD]


async def test_the_incremental_send_carries_intermediates_and_receives_with_force(world: World) -> None:
    await world.run()
    await world.snapshot("tank/a@s2")
    opened: list[tuple[object, object]] = []
    real_send, real_receive = world.streams.open_send, world.streams.open_receive

    async def send(source: SendSpec) -> object:
        opened.append(("send", source))
        return await real_send(source)

    async def receive(spec: object) -> object:
        opened.append(("receive", spec))
        return await real_receive(spec)  # type: ignore[arg-type]

    world.streams.open_send, world.streams.open_receive = send, receive  # type: ignore[method-assign,assignment]
    await world.run(source="tank/a@s2")
    (_, sent), (_, received) = opened
    assert sent == SendSpec(SnapshotName.parse("tank/a@s2"), SnapshotName.parse("tank/a@s1"), intermediates=True)
    assert (received.force, received.resumable, received.trusted) == (True, True, True)  # type: ignore[attr-defined]


# ---- StreamService.send over fakes: however the consumer stops, the send is killed and the session ends ----

async def _send_stream(world: World) -> tuple[StreamService, str, SendStream]:
    await world.zfs.create_dataset(DatasetName.parse("tank/a"), properties={}, parents=False)
    await world.snapshot("tank/a@s1")
    sessions = MemoryStreamSessions()
    service = StreamService(world.streams, world.streams, world.zfs, sessions, StreamLimits())
    session = await service.init(LOCALHOST, SendSpec(SnapshotName.parse("tank/a@s1")), 60)
    return service, session.stream_id, await service.send(session.stream_id)


async def test_a_send_stream_closed_before_it_is_read_kills_its_send_and_fails():
    world = World()
    service, stream_id, stream = await _send_stream(world)
    await stream.aclose()
    assert world.streams.pipes[-1].killed
    [listed] = await service.list(LOCALHOST)
    assert (listed.stream_id, listed.state, listed.error) == (stream_id, StreamState.FAILED, "client disconnected")


async def test_a_send_stream_is_consumed_once_and_ends_done():
    world = World()
    service, stream_id, stream = await _send_stream(world)
    got = b"".join([chunk async for chunk in stream])
    with pytest.raises(RuntimeError, match="consumed once"):
        stream.__aiter__()
    await stream.aclose()
    [listed] = await service.list(LOCALHOST)
    assert (listed.state, listed.bytes) == (StreamState.DONE, len(got)) and got == world.streams.streams[-1]


async def test_a_drained_send_stream_hands_its_pipe_over_counts_what_moved_and_ends_done():
    world = World()
    service, stream_id, stream = await _send_stream(world)
    got: list[bytes] = []

    async def into(first, pipe, moved):
        chunk = first
        while chunk:
            got.append(chunk)
            moved(len(chunk))
            chunk = await pipe.read()

    await stream.drain(into)
    with pytest.raises(RuntimeError, match="consumed once"):
        await stream.drain(into)
    [listed] = await service.list(LOCALHOST)
    assert b"".join(got) == world.streams.streams[-1] and world.streams.pipes[-1].killed
    assert (listed.state, listed.bytes) == (StreamState.DONE, len(b"".join(got)))


async def test_a_send_stream_cancelled_while_drained_is_said_cancelled():
    world = World()
    service, stream_id, stream = await _send_stream(world)
    world.streams.gate = asyncio.Event()  # the send waits after its first chunk

    async def into(first, pipe, moved):
        moved(len(first))
        await service.cancel(LOCALHOST, stream_id)
        await asyncio.sleep(0)  # the watcher kills the send
        world.streams.gate.set()
        while chunk := await pipe.read():
            moved(len(chunk))

    with pytest.raises(StateConflict, match="stream cancelled"):
        await stream.drain(into)
    [listed] = await service.list(LOCALHOST)
    assert listed.state is StreamState.CANCELLED and world.streams.pipes[-1].killed


async def test_a_received_stream_is_filled_by_the_adapter_and_finished_here():
    world = World()
    await world.zfs.create_dataset(DatasetName.parse("tank/a"), properties={}, parents=False)
    await world.snapshot("tank/a@s1")
    data = world.streams._stream(SendSpec(SnapshotName.parse("tank/a@s1")))
    opened: list[Compression] = []
    real_receive = world.streams.open_receive

    async def open_receive(spec, compression=Compression.NONE):  # the Pipelines port's, compression included
        opened.append(compression)
        return await real_receive(spec)

    world.streams.open_receive = open_receive  # type: ignore[method-assign,assignment]
    service = StreamService(world.streams, world.streams, world.zfs, MemoryStreamSessions(), StreamLimits())
    session = await service.init(LOCALHOST, ReceiveSpec(DatasetName.parse("backup/a")), 60)

    async def fill(pipe, moved):
        for i in range(0, len(data), 1000):
            await pipe.write(data[i:i + 1000])
            moved(len(data[i:i + 1000]))

    received = await service.receive(session.stream_id, fill, Compression.GZIP)
    assert opened == [Compression.GZIP]
    [listed] = await service.list(LOCALHOST)
    assert (received.target.value, received.snapshot, received.bytes) == ("backup/a", "backup/a@s1", len(data))
    assert (listed.state, listed.bytes) == (StreamState.DONE, len(data))
