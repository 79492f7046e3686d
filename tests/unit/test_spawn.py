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
