"""Who is calling, measured: the kernel lookups behind passwordless local access, side by side in one run.

`python -m bench.bench_peer [N]`: N loopback connections held open (default 200, so that /proc/net/tcp has
something to scan), then the uid of one of them looked up by sock_diag (what the server does once per
connection), by a scan of /proc/net/tcp (the fallback), and `getpeername()` as the floor of any per-connection
work. Prints each mean and the ratios; the machine is noisy, so only the ratios mean anything.
"""

from __future__ import annotations

import socket
import sys
import time

from zfsapi.adapters.inbound.http.peer import _proc_uid, _sock_diag_uid


def per_call(fn: object, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / rounds


def main(n: int = 200) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(n + 8)
    clients = [socket.create_connection(server.getsockname()) for _ in range(n)]
    accepted = [server.accept()[0] for _ in range(n)]
    conn = accepted[n // 2]
    peer, own = conn.getpeername(), conn.getsockname()
    assert _sock_diag_uid(peer, own) == _proc_uid(peer, own)
    floor = per_call(conn.getpeername, 20000)
    diag = per_call(lambda: _sock_diag_uid(peer, own), 2000)
    proc = per_call(lambda: _proc_uid(peer, own), 50)
    print(f"{n} connections open")
    print(f"getpeername   {floor * 1e6:9.1f} us")
    print(f"sock_diag     {diag * 1e6:9.1f} us   {diag / floor:7.1f}x getpeername")
    print(f"/proc/net/tcp {proc * 1e6:9.1f} us   {proc / diag:7.1f}x sock_diag")
    for s in clients + accepted + [server]:
        s.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
