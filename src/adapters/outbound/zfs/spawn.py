"""posix_spawn(3) through libc, with the GIL released while the child starts.

CPython 3.11's `os.posix_spawn` holds the GIL for the whole call, and glibc's posix_spawn returns only once the
child has exec'd (clone(CLONE_VM|CLONE_VFORK)): 11 ms per spawn in the emulated test host, during which no other
thread of this process runs Python, the event loop included. A foreign call through ctypes releases the GIL, so
`spawn` run in a worker thread starts a child while the event loop goes on serving requests.

Same contract as `os.posix_spawn(path, argv, env, file_actions=...)` (no other attributes): the file actions
are `(os.POSIX_SPAWN_OPEN, fd, path, flags, mode)` and `(os.POSIX_SPAWN_DUP2, fd, new_fd)`, the child keeps the
signal mask and ignored signals of the calling thread, and an exec failure is raised here as OSError with the
child's errno (glibc reports it through the shared memory of the vfork).

Unlike os.posix_spawn, the child gets fds 0-2 and nothing else: every fd from 3 up is closed in the child after
the file actions ran (posix_spawn_file_actions_addclosefrom_np, glibc >= 2.34: close_range(2) in the child).
PEP 446 makes Python's own fds close-on-exec, but not all of them are: uvicorn marks its listening sockets
inheritable for its workers, and a zfs child that outlived the server would keep the port in LISTEN. Where
addclosefrom_np is missing, each fd this process has open when the child starts gets its own close action.
"""

from __future__ import annotations

import ctypes
import os
from typing import Mapping, Sequence

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_ACTIONS_SIZE = 256  # sizeof(posix_spawn_file_actions_t): 80 on glibc (64-bit); the rest is headroom

_init = _libc.posix_spawn_file_actions_init
_init.argtypes, _init.restype = [ctypes.c_void_p], ctypes.c_int
_destroy = _libc.posix_spawn_file_actions_destroy
_destroy.argtypes, _destroy.restype = [ctypes.c_void_p], ctypes.c_int
_add_open = _libc.posix_spawn_file_actions_addopen
_add_open.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
_add_open.restype = ctypes.c_int
_add_dup2 = _libc.posix_spawn_file_actions_adddup2
_add_dup2.argtypes, _add_dup2.restype = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int], ctypes.c_int
_add_close = _libc.posix_spawn_file_actions_addclose
_add_close.argtypes, _add_close.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int
_add_closefrom = getattr(_libc, "posix_spawn_file_actions_addclosefrom_np", None)  # glibc >= 2.34
if _add_closefrom is not None:
    _add_closefrom.argtypes, _add_closefrom.restype = [ctypes.c_void_p, ctypes.c_int], ctypes.c_int
_posix_spawn = _libc.posix_spawn
_posix_spawn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]
_posix_spawn.restype = ctypes.c_int

FileAction = tuple[int, int, str, int, int] | tuple[int, int, int]


def _check(err: int, what: str) -> None:
    if err:
        raise OSError(err, os.strerror(err), what)


def _strings(items: Sequence[str]) -> ctypes.Array[ctypes.c_char_p]:
    """A NULL-terminated char *[] (its bytes live as long as the array)."""
    return (ctypes.c_char_p * (len(items) + 1))(*(os.fsencode(item) for item in items), None)


def _close_the_rest(actions: ctypes.Array[ctypes.c_char]) -> None:
    """Close actions for every fd from 3 up, after the others: the child keeps only 0-2."""
    if _add_closefrom is not None:
        _check(_add_closefrom(actions, 3), "posix_spawn_file_actions_addclosefrom_np")
        return
    # glibc ignores a close action whose fd is not open by then (EBADF), e.g. the listing's own
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        if fd >= 3:
            _check(_add_close(actions, fd), "posix_spawn_file_actions_addclose")


def spawn(path: str, argv: Sequence[str], env: Mapping[str, str], file_actions: Sequence[FileAction]) -> int:
    """Start `path` with `argv` and exactly `env`; the child's pid. Blocks the calling thread (only) until the
    child has exec'd. Raises OSError (e.g. ENOENT, EACCES) when it could not be started."""
    actions = ctypes.create_string_buffer(_ACTIONS_SIZE)
    _check(_init(actions), "posix_spawn_file_actions_init")
    try:
        for action in file_actions:
            if action[0] == os.POSIX_SPAWN_OPEN:
                _, fd, name, flags, mode = action  # type: ignore[misc]
                _check(_add_open(actions, fd, os.fsencode(name), flags, mode), "posix_spawn_file_actions_addopen")
            elif action[0] == os.POSIX_SPAWN_DUP2:
                _, fd, new_fd = action  # type: ignore[misc]
                _check(_add_dup2(actions, fd, new_fd), "posix_spawn_file_actions_adddup2")
            else:
                raise ValueError(f"unsupported file action {action[0]}")
        _close_the_rest(actions)
        pid = ctypes.c_int()
        args, envp = _strings(argv), _strings([f"{key}={value}" for key, value in env.items()])
        _check(_posix_spawn(ctypes.byref(pid), os.fsencode(path), actions, None, args, envp), path)
        return pid.value
    finally:
        _destroy(actions)
