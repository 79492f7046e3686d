"""posix_spawn through libc: the os.posix_spawn contract, and the GIL released while a child starts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from zfsapi.adapters.outbound.zfs.spawn import spawn


def test_argv_env_and_file_actions_reach_the_child(tmp_path):
    r, w = os.pipe()
    env = {"LC_ALL": "C", "ODD": "a b=c"}
    pid = spawn("/usr/bin/env", ["env"], env, [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                              (os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    with os.fdopen(r, "rb") as out:
        printed = out.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert printed == b"LC_ALL=C\nODD=a b=c\n"


def test_argv_is_passed_verbatim(tmp_path):
    r, w = os.pipe()
    pid = spawn("/usr/bin/printf", ["printf", "%s|", "a b; rm -rf /", "$(id)", ""], {}, [(os.POSIX_SPAWN_DUP2, w, 1)])
    os.close(w)
    with os.fdopen(r, "rb") as out:
        assert out.read() == b"a b; rm -rf /|$(id)||"
    os.waitpid(pid, 0)


def test_a_child_that_cannot_start_raises_its_errno(tmp_path):
    with pytest.raises(FileNotFoundError):
        spawn(str(tmp_path / "missing"), ["missing"], {}, [])
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        spawn(str(plain), ["plain"], {}, [])


def test_other_threads_run_python_while_a_child_starts(tmp_path):
    """The child's stdin is a FIFO: it cannot exec until another thread opens the FIFO's write end, which takes
    the GIL. With os.posix_spawn (GIL held until exec) this script never ends; with `spawn` it does."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        import os, threading
        from zfsapi.adapters.outbound.zfs.spawn import spawn
        pids = []
        t = threading.Thread(target=lambda: pids.append(
            spawn("/bin/true", ["true"], {{}}, [(os.POSIX_SPAWN_OPEN, 0, {str(fifo)!r}, os.O_RDONLY, 0)])))
        t.start()
        os.close(os.open({str(fifo)!r}, os.O_WRONLY))
        t.join()
        print(os.waitstatus_to_exitcode(os.waitpid(pids[0], 0)[1]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n", "")


# ---- children get fds 0-2 and the pipes they are given, nothing else ----------------------------------------

def _fds_of(pid: int) -> dict[int, str]:
    """A live process's open fds and what each is (`socket:[..]`, `pipe:[..]`, a path), once its dynamic loader
    is done: right after exec, ld.so holds the libraries it maps open for a moment."""
    import time
    deadline = time.monotonic() + 30
    while True:
        out = {}
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                out[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
            except FileNotFoundError:
                pass
        if not any(".so" in target for target in out.values()) or time.monotonic() > deadline:
            return out
        time.sleep(0.01)


@pytest.fixture
def inheritable_fds():
    """What the server holds when a child starts: an inheritable listening socket (uvicorn's, for its workers),
    an inheritable pipe and an inheritable file; their fd numbers."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.set_inheritable(True)
    r, w = os.pipe()
    os.set_inheritable(r, True)
    os.set_inheritable(w, True)
    f = open(os.devnull, "rb")
    os.set_inheritable(f.fileno(), True)
    try:
        yield {listener.fileno(), r, w, f.fileno()}
    finally:
        listener.close()
        os.close(r)
        os.close(w)
        f.close()


def _reap(pid: int) -> None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)


@pytest.mark.parametrize("closefrom", [True, False], ids=["addclosefrom_np", "one-close-per-fd"])
def test_a_spawned_child_gets_only_fds_0_to_2(inheritable_fds, monkeypatch, closefrom):
    from zfsapi.adapters.outbound.zfs import spawn as spawn_module
    if not closefrom:
        monkeypatch.setattr(spawn_module, "_add_closefrom", None)  # the path for a libc without it
    assert all(os.get_inheritable(fd) for fd in inheritable_fds)
    r, w = os.pipe()
    try:
        pid = spawn("/bin/sleep", ["sleep", "60"], {}, [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                                        (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
        try:
            fds = _fds_of(pid)
        finally:
            _reap(pid)
        pipe = os.readlink(f"/proc/self/fd/{w}")
    finally:
        os.close(r)
        os.close(w)
    assert fds == {0: "/dev/null", 1: pipe, 2: pipe}, fds


async def test_pipeline_and_command_children_get_only_their_pipes(inheritable_fds):
    """The executor's two spawn paths, with a real child: a pipeline child (stdin and stdout the pipes it is
    given, stderr its temp file) and a command (/dev/null in, its output pipes)."""
    import asyncio
    import time

    from zfsapi.adapters.outbound.zfs.executor import ZfsExecutor, make_pipe

    ex = ZfsExecutor(zfs="/bin/sleep")
    pipeline = await ex.pipeline()
    stdin_r, stdin_w = make_pipe()
    try:
        out_r = await pipeline.offload(pipeline.spawn_into_pipe, ["zfs", "60"], stdin_r)
        try:
            fds = _fds_of(pipeline.children[0].pid)
            assert set(fds) == {0, 1, 2}, fds
            assert fds[0] == os.readlink(f"/proc/self/fd/{stdin_r}") and fds[1] == os.readlink(
                f"/proc/self/fd/{out_r}") and fds[2].startswith("/tmp"), fds
        finally:
            os.close(out_r)
    finally:
        os.close(stdin_r)
        os.close(stdin_w)
        await pipeline.close()

    def sleeper() -> int | None:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{name}/cmdline", "rb") as f:
                        cmdline = f.read()
                except OSError:
                    continue
                if int(fields[1]) == os.getpid() and cmdline == b"/bin/sleep\x0061\x00":
                    return int(name)
        return None

    command = asyncio.create_task(ex.run(["zfs", "61"]))
    deadline = time.monotonic() + 30
    while (pid := sleeper()) is None:
        assert time.monotonic() < deadline and not command.done(), "the command's child never started"
        await asyncio.sleep(0.02)
    try:
        fds = _fds_of(pid)
    finally:
        command.cancel()
        await asyncio.gather(command, return_exceptions=True)
    assert set(fds) == {0, 1, 2} and fds[0] == "/dev/null" and {fds[1][:5], fds[2][:5]} == {"pipe:"}, fds
