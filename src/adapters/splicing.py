"""How two adapters move a stream's bytes with splice(2) between themselves, below the application.

The application hands an adapter a running send or receive (the SendPipe or ReceivePipe port) and sees no file
descriptor. A pipe that can be spliced also has, duck-typed, the `Spliceable` methods: its pipe end (`fileno`)
and a worker thread of its own to run a blocking relay in (`in_thread`), so an inbound adapter (HTTP) can splice
between that pipe and its socket, doing its own framing, while no byte passes through this process.
"""

from __future__ import annotations

import fcntl
import os
from typing import Callable, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
PIPE_SIZE = 1 << 20  # a relay's own pipe holds a whole splice of a send's pipe


@runtime_checkable
class Spliceable(Protocol):
    """A pipe (a running zfs send or receive) another adapter may splice from or into."""

    def fileno(self) -> int:
        """The pipe end: a send's to read (splice from), a receive's to write (splice into). Blocking or not as
        the relay sets it. Raises the pipe's error when it is closed (killed)."""
        ...

    async def in_thread(self, work: Callable[[int], T]) -> T:
        """`work(stop)` in a worker thread of this pipe's; its result or its exception. `stop` is the read end of
        a pipe that turns readable when this is cancelled (for work waiting on something else than this pipe,
        e.g. a socket, to poll alongside); cancelled, the pipe's process is also killed (so a blocked splice on
        `fileno` ends), and this returns once `work` has returned. A receive raises its own error when `work`
        finds it stopped reading (BrokenPipeError on its end)."""
        ...


def spliceable(pipe: object) -> Spliceable | None:
    """`pipe` when it can be spliced, else None (then its bytes go through `read`/`write`)."""
    return pipe if isinstance(pipe, Spliceable) else None


class Stopped(Exception):
    """A relay in a worker thread saw its `stop` pipe turn readable: its caller went away."""


def relay_pipe(size: int = PIPE_SIZE) -> tuple[int, int]:
    """A close-on-exec pipe of `size` bytes for a relay of its own (the kernel's default if it refuses, e.g. over
    pipe-max-size)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size)
    except OSError:
        pass
    return r, w
