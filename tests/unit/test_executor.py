"""The executor and the pipelines with stand-in binaries: timeouts and cancellation kill and reap the child;
pipeline children share the executor's environment and metrics and have their own bound; send files."""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import stat
import threading
import time

import pytest

from zfsapi.adapters.metrics import Metrics
from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor
from zfsapi.adapters.outbound.zfs.pipelines import ZfsPipelines
from zfsapi.adapters.splicing import spliceable
from zfsapi.domain.errors import NotFound, ZfsCommandFailed, ZfsUnavailable
from zfsapi.domain.names import DatasetName, SnapshotName
from zfsapi.domain.transfer import Compression, ReceiveSpec, SendSpec


def script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); check its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


async def test_runs_argv_and_collects(tmp_path):
    zfs = script(tmp_path, "zfs", 'printf "%s|" "$@"; echo err >&2; exit 3\n')
    metrics = Metrics()
    done = await ZfsExecutor(zfs=zfs, metrics=metrics).run(["zfs", "list", "-H", "a b; rm -rf /"])
    assert done.exit_code == 3 and done.stdout == b"list|-H|a b; rm -rf /|" and done.stderr == "err"
    assert metrics.zfs_commands.labels("zfs", "list", "failed")._value.get() == 1


async def test_output_larger_than_a_pipe_is_collected_from_both_streams(tmp_path):
    zfs = script(tmp_path, "zfs", "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero | tr '\\0' e >&2\n")
    done = await ZfsExecutor(zfs=zfs).run(["zfs", "list"])
    assert (done.exit_code, done.stdout, done.stderr) == (0, bytes(3000000), "e" * 2000000)


async def test_identical_reads_issued_together_run_one_child(tmp_path):
    zfs = script(tmp_path, "zfs", f'echo started >> {tmp_path}/children; echo "$@"\n')
    ex = ZfsExecutor(zfs=zfs)
    results = await asyncio.gather(*(ex.read(["zfs", "list", "tank/a b"]) for _ in range(5)))
    assert {r.stdout for r in results} == {b"list tank/a b\n"}
    assert (tmp_path / "children").read_text() == "started\n"


async def test_missing_binary_is_unavailable(tmp_path):
    with pytest.raises(ZfsUnavailable):
        await ZfsExecutor(zfs=str(tmp_path / "nope")).run(["zfs", "list"])


async def test_timeout_kills_the_child(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f'echo $$ > {pidfile}; exec sleep 30\n')
    with pytest.raises(ZfsCommandFailed) as exc:
        await ZfsExecutor(zfs=zfs).run(["zfs", "list"], timeout=0.5)
    assert "timed out" in exc.value.stderr
    if pidfile.exists() and pidfile.read_text().strip():  # on a busy machine it may be killed before writing it
        assert not alive(int(pidfile.read_text()))


async def started(pidfile, what: str) -> None:
    """Wait until the stand-in child wrote its pid: generously, the machine may be busy."""
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def gone(pid: int, what: str) -> None:
    """Wait until the process is gone (reaped): generously, the machine may be busy."""
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_cancellation_kills_and_reaps_the_child(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f'echo $$ > {pidfile}; exec sleep 30\n')
    task = asyncio.create_task(ZfsExecutor(zfs=zfs).run(["zfs", "list"]))
    await started(pidfile, "the child never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the child may have written its pid before the spawner thread handed it over: cancelled then, it is killed
    # and reaped as soon as the spawn returns, after the caller has gone
    await gone(int(pidfile.read_text()), "the cancelled child was left running")


async def test_a_caller_cancelled_while_its_child_starts_leaves_no_child(tmp_path, monkeypatch):
    """The spawn runs in a thread: the caller may go away before it returns. The child is then killed and reaped
    as soon as it exists (and the pipes' write ends stay open until the spawn has duplicated them)."""
    zfs = script(tmp_path, "zfs", "exec sleep 30\n")
    ex = ZfsExecutor(zfs=zfs)
    gate, spawning = threading.Event(), threading.Event()
    real, pids = ex._spawn, []

    def held(*args, **kwargs):
        spawning.set()
        assert gate.wait(60)
        process = real(*args, **kwargs)
        pids.append(process.pid)
        return process

    monkeypatch.setattr(ex, "_spawn", held)
    task = asyncio.create_task(ex.run(["zfs", "list"]))
    assert await asyncio.to_thread(spawning.wait, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    deadline = time.monotonic() + 60
    while not pids and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    pid = pids[0]
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "the child was not killed and reaped"


async def test_concurrency_cap(tmp_path):
    zfs = script(tmp_path, "zfs", f'mkdir {tmp_path}/lock 2>/dev/null || exit 9; sleep 0.05; rmdir {tmp_path}/lock\n')
    ex = ZfsExecutor(zfs=zfs, max_concurrency=1)
    results = await asyncio.gather(*(ex.run(["zfs", "list"]) for _ in range(5)))
    assert [r.exit_code for r in results] == [0] * 5


# ---- pipelines: the same spawn path, their own bound -------------------------------------------------------

SPEC = SendSpec(SnapshotName.parse("tank/a@s1"))


async def test_pipeline_children_get_the_executor_env_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("ZFSAPI_LEAK", "x")
    zfs = script(tmp_path, "zfs", 'printf "%s|%s|%s|%s|%s" "$1" "$LANG" "$LC_ALL" "$TZ" "${ZFSAPI_LEAK-unset}"\n')
    metrics = Metrics()
    pipe = await ZfsPipelines(ZfsExecutor(zfs=zfs, metrics=metrics)).open_send(SPEC)
    got = b""
    while chunk := await pipe.read():
        got += chunk
    await pipe.kill()
    assert got == b"send|C|C|UTC|unset"
    assert metrics.zfs_commands.labels("zfs", "send", "ok")._value.get() == 1


async def test_pipelines_have_their_own_bound(tmp_path):
    zfs = script(tmp_path, "zfs", 'if [ "$1" = send ]; then exec sleep 30; fi; echo listed\n')
    ex = ZfsExecutor(zfs=zfs, max_concurrency=1, max_pipelines=1)
    pipe = await ZfsPipelines(ex).open_send(SPEC)
    assert (await ex.run(["zfs", "list"])).stdout == b"listed\n"  # a long send does not hold up commands
    second = asyncio.create_task(ex.pipeline())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not second.done()  # the one pipeline slot is taken
    await pipe.kill()
    await (await asyncio.wait_for(second, 30)).close()


async def test_a_failed_send_is_classified_and_leaves_no_file(tmp_path):
    zfs = script(tmp_path, "zfs", "printf partial; echo \"cannot open 'tank/a@s1': dataset does not exist\" >&2; "
                                  "exit 1\n")
    with pytest.raises(NotFound) as exc:
        await ZfsPipelines(ZfsExecutor(zfs=zfs)).send_to_file(SPEC, str(tmp_path / "s1.zfs.gz"), str(tmp_path),
                                                              Compression.GZIP)
    assert (exc.value.kind, exc.value.name) == ("snapshot", "tank/a@s1")
    assert not (tmp_path / "s1.zfs.gz").exists()


@pytest.mark.parametrize("compression", list(Compression))
async def test_send_file_round_trip_through_the_compressor(tmp_path, compression):
    data = os.urandom(3 << 20)
    (tmp_path / "data").write_bytes(data)
    zfs = script(tmp_path, "zfs", f'if [ "$1" = send ]; then exec cat {tmp_path}/data; fi\n'
                                  f'cat > {tmp_path}/received; echo "receiving full stream of tank/a@s1 into t/b@s1"\n')
    pipelines = ZfsPipelines(ZfsExecutor(zfs=zfs))
    path = str(tmp_path / ("s1.zfs" + compression.suffix))
    size, digest = await pipelines.send_to_file(SPEC, path, str(tmp_path), compression)
    stored = (tmp_path / path).read_bytes()
    assert (size, digest) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert (stored == data) is (compression is Compression.NONE)
    target = ReceiveSpec(DatasetName.parse("t/b"))
    assert await pipelines.receive_from_file(target, path, str(tmp_path), compression) == "t/b@s1"
    assert (tmp_path / "received").read_bytes() == data


async def test_cancelling_a_send_file_kills_reaps_and_removes_it(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f"echo $$ > {pidfile}; printf some; exec sleep 30\n")
    path = tmp_path / "s1.zfs.zst"
    task = asyncio.create_task(ZfsPipelines(ZfsExecutor(zfs=zfs)).send_to_file(SPEC, str(path), str(tmp_path),
                                                                                Compression.ZSTD))
    await started(pidfile, "zfs send never started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(int(pidfile.read_text())) and not path.exists()


async def test_receive_pipe_takes_the_body_and_names_the_snapshot(tmp_path):
    zfs = script(tmp_path, "zfs", f'printf "%s " "$@" > {tmp_path}/argv; cat > {tmp_path}/received\n'
                                  'echo "receiving incremental stream of tank/a@s2 into t/b c@s2"\n')
    spec = ReceiveSpec(DatasetName.parse("t/b c"), force=True, trusted=True)
    pipe = await ZfsPipelines(ZfsExecutor(zfs=zfs)).open_receive(spec)
    chunks = [os.urandom(1 << 20) for _ in range(4)]
    for chunk in chunks:
        await pipe.write(chunk)
    assert await pipe.finish() == "t/b c@s2"
    await pipe.kill()
    assert (tmp_path / "received").read_bytes() == b"".join(chunks)
    assert (tmp_path / "argv").read_text() == "receive -v -s -F t/b c "


async def test_kill_wakes_a_read_parked_on_the_pipe(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f"echo $$ > {pidfile}; exec sleep 30\n")
    pipe = await ZfsPipelines(ZfsExecutor(zfs=zfs)).open_send(SPEC)
    reading = asyncio.create_task(pipe.read())
    await started(pidfile, "zfs send never started")
    await pipe.kill()
    with pytest.raises(ZfsCommandFailed) as exc:
        await asyncio.wait_for(reading, 30)
    assert exc.value.stderr == "killed" and not alive(int(pidfile.read_text()))


async def test_a_cancel_ends_a_relay_paced_at_the_slowest_limit(tmp_path):
    """A migration at the smallest `limit` (1 KiB/s) pauses about 1,000 s after its first 1 MiB: the pause waits
    on the relay's stop pipe, so a cancel ends it at once, and both zfs children are killed and reaped."""
    from zfsapi.application.replication import Pacer
    from zfsapi.domain.replication import MEGABYTE, MIN_LIMIT

    send_pid, receive_pid = tmp_path / "send.pid", tmp_path / "receive.pid"
    zfs = script(tmp_path, "zfs", f'if [ "$1" = send ]; then echo $$ > {send_pid}; exec cat /dev/zero; fi\n'
                                  f'echo $$ > {receive_pid}; exec cat > /dev/null\n')
    pipelines = ZfsPipelines(ZfsExecutor(zfs=zfs))
    pacer, pauses = Pacer(MIN_LIMIT * MEGABYTE), []

    def moved(size: int) -> float:
        pauses.append(pacer.delay(size))
        return pauses[-1]

    async def migration() -> None:  # as Replicate._relay runs it
        send = await pipelines.open_send(SPEC)
        receive = await pipelines.open_receive(ReceiveSpec(DatasetName.parse("t/b")))
        try:
            await pipelines.relay(send, receive, moved)
        finally:
            await send.kill()
            await receive.kill()

    task = asyncio.create_task(migration())
    deadline = time.monotonic() + 30
    while not pauses:
        assert time.monotonic() < deadline and not task.done(), "no byte was relayed"
        await asyncio.sleep(0.02)
    assert pauses[0] > 100  # the relay now pauses for many minutes
    cancelled_at = time.monotonic()
    task.cancel()
    await asyncio.wait([task], timeout=30)
    print(f"cancelled during a {pauses[0]:.0f} s pause: ended after {time.monotonic() - cancelled_at:.3f} s")
    assert task.cancelled()
    assert not alive(int(send_pid.read_text())) and not alive(int(receive_pid.read_text()))


async def test_a_send_file_is_recognised_by_the_job_that_wrote_it_and_by_no_one_else(tmp_path):
    """A job that runs again (its outcome lost) finds the complete file its earlier run wrote: by its id, recorded
    in the file's extended attribute with its size and mtime. Another job, an unmarked file, a file changed since
    and a symlink to it are not that file."""
    zfs = script(tmp_path, "zfs", 'if [ "$1" = send ]; then printf "%05000d" 7; fi\n')
    pipelines = ZfsPipelines(ZfsExecutor(zfs=zfs))
    root = str(tmp_path)
    marked, unmarked = str(tmp_path / "marked.zfs"), str(tmp_path / "unmarked.zfs")
    written = await pipelines.send_to_file(SPEC, marked, root, Compression.NONE, mark="job1")
    await pipelines.send_to_file(SPEC, unmarked, root, Compression.NONE)
    os.symlink(marked, tmp_path / "link.zfs")
    found = {"same job": await pipelines.sent_file(marked, root, "job1"),
             "another job": await pipelines.sent_file(marked, root, "job2"),
             "unmarked": await pipelines.sent_file(unmarked, root, "job1"),
             "symlink": await pipelines.sent_file(str(tmp_path / "link.zfs"), root, "job1"),
             "missing": await pipelines.sent_file(str(tmp_path / "none.zfs"), root, "job1"),
             "outside": await pipelines.sent_file(marked, str(tmp_path / "sub"), "job1")}
    print(found)
    assert written == (5000, hashlib.sha256(b"0" * 4999 + b"7").hexdigest())
    assert found == {"same job": written, "another job": None, "unmarked": None, "symlink": None, "missing": None,
                     "outside": None}
    with open(marked, "ab") as f:
        f.write(b"x")
    assert await pipelines.sent_file(marked, root, "job1") is None


async def test_a_spliced_receive_that_stops_reading_raises_its_own_error(tmp_path):
    """The HTTP adapter splices into a receive's fileno() in its in_thread; a receive that exits without reading
    its input makes that a classified failure of the receive, not a bare BrokenPipeError."""
    zfs = script(tmp_path, "zfs", 'echo "cannot receive: destination exists" >&2; exit 1\n')
    pipe = await ZfsPipelines(ZfsExecutor(zfs=zfs)).open_receive(ReceiveSpec(DatasetName.parse("t/b")))

    def work(stop: int) -> None:
        fd = pipe.fileno()
        os.set_blocking(fd, True)
        while True:
            os.write(fd, b"x" * 65536)

    with pytest.raises(ZfsCommandFailed) as failed:
        await pipe.in_thread(work)
    assert (failed.value.exit_code, failed.value.stderr) == (1, "cannot receive: destination exists")
    await pipe.kill()


async def test_cancelling_a_spliced_send_kills_it_wakes_the_work_and_waits_for_it(tmp_path):
    pidfile = tmp_path / "pid"
    zfs = script(tmp_path, "zfs", f"echo $$ > {pidfile}; exec sleep 300\n")
    pipe = await ZfsPipelines(ZfsExecutor(zfs=zfs)).open_send(SPEC)
    assert spliceable(pipe) is pipe
    running, finished = threading.Event(), threading.Event()

    def work(stop: int) -> None:  # waits on its stop pipe, as a relay waiting for a socket does
        running.set()
        try:
            select.select([stop], [], [], 60)
        finally:
            finished.set()

    task = asyncio.create_task(pipe.in_thread(work))
    await started(pidfile, "zfs send never started")
    assert await asyncio.to_thread(running.wait, 30), "the work never ran"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    assert finished.is_set()
    # the cancel sent the kill; the child dies soon after (not at once on a busy machine: wait, generously)
    pid, deadline, waited = int(pidfile.read_text()), time.monotonic() + 30, time.monotonic()
    while alive(pid):
        assert time.monotonic() < deadline, "the cancelled send's zfs child is still alive after 30 s"
        await asyncio.sleep(0.02)
    print(f"child gone {time.monotonic() - waited:.3f} s after the cancel returned")
    await pipe.kill()


async def test_a_binary_found_on_path_is_looked_up_once_and_again_once_gone(tmp_path, monkeypatch):
    import shutil as shutil_module

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    script(bin_dir, "zfs", "echo tank\n")
    searches = []
    real_which = shutil_module.which
    monkeypatch.setattr(shutil_module, "which", lambda *a, **k: searches.append(a) or real_which(*a, **k))
    ex = ZfsExecutor()
    for _ in range(3):
        assert (await ex.run(["zfs", "list"])).stdout == b"tank\n"
    assert len(searches) == 1  # not a PATH search (a stat per entry) per command
    (bin_dir / "zfs").unlink()
    with pytest.raises(ZfsUnavailable):
        await ex.run(["zfs", "list"])
    script(bin_dir, "zfs", "echo back\n")
    assert (await ex.run(["zfs", "list"])).stdout == b"back\n"  # looked up again
