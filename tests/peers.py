"""Calls made as another local user: a forked child drops to `uid` and speaks raw HTTP/1.1 over TCP or a Unix
socket (after setuid it may not be able to read this interpreter's files, so it imports nothing)."""

from __future__ import annotations

import json
import os
import socket


def _request(method: str, params: dict, host: str) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
    head = (f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def call_as(uid: int, address: str | tuple[str, int], method: str, params: dict | None = None,
            host: str = "localhost") -> tuple[int, dict | None]:
    """(HTTP status, JSON body or None) of one call made by a process running as `uid`."""
    request = _request(method, params or {}, host)
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exceptions may escape into pytest's machinery
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(60)
                s.connect(address)
                s.sendall(request)
                while chunk := s.recv(65536):
                    os.write(write_end, chunk)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported through the pipe
            os.write(write_end, f"child error: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    raw = b""
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the uid {uid} client failed: {raw!r}"
    head, _, body = raw.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    return code, json.loads(body) if body else None
