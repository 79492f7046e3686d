"""Which local user is calling: the uid behind a connection, from the kernel, never from anything the client sends.

- A Unix socket peer: SO_PEERCRED of the accepted socket.
- A loopback TCP peer: the client's own socket (source = the peer's address and port, destination = ours) looked
  up in the kernel's socket table by its exact 4-tuple with sock_diag (netlink), or, where netlink is refused,
  in /proc/net/tcp{,6}. While the request's connection is open no other socket can hold that 4-tuple, so the
  answer is the uid of the process that opened this very connection.

uvicorn's httptools protocol is extended to do the lookup once per connection (`connection_made`) and to hand the
result to the app in every request's scope (`scope["extensions"]["zfsapi.peer"]`), and to send the small writes
of one loop turn together (a response's head and body are two writes in uvicorn: two send(2) calls, a fifth of a
cheap call's cost, become one; see CorkedTransport); an app served any other way
(tests, another server) falls back to a lookup per request from the scope's addresses. The protocol also hands a
stream's socket over for splicing (see stream_bodies), through uvicorn internals (the request cycle's state and
body, the flow control): pyproject.toml bounds uvicorn to releases tests/unit/test_uvicorn_internals.py checks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .guard import is_loopback_address

SCOPE_KEY = "zfsapi.peer"
SOCKET_KEY = "zfsapi.socket"  # scope extension: a callable giving a dup of the connection's socket, or None
BODY_KEY = "zfsapi.body"  # scope extension: a callable handing the rest of the request body over (or None)

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NOCOOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2 up to the socket id
_SOCKID = struct.Struct(">HH16s16s")  # ports and addresses, network byte order
_SOCKID_TAIL = struct.Struct("=III")  # interface, cookie (2 words)
_UID_OFFSET = _HEADER.size + 4 + _SOCKID.size + _SOCKID_TAIL.size + 12  # inet_diag_msg.idiag_uid


@dataclass(frozen=True, slots=True)
class Peer:
    """A caller on this machine: its uid (None: not found) and how it came (unix or tcp)."""

    uid: int | None
    transport: str


def _address(host: str) -> tuple[int, bytes]:
    addr = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return socket.AF_INET, addr.packed.ljust(16, b"\0")
    return socket.AF_INET6, addr.packed


def _sock_diag_uid(src: tuple[str, int], dst: tuple[str, int]) -> int | None:
    """The uid owning the TCP socket src -> dst; None when there is none. Raises OSError when netlink is refused."""
    family, src_addr = _address(src[0])
    dst_family, dst_addr = _address(dst[0])
    if family != dst_family:
        return None
    body = (_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
            + _SOCKID.pack(src[1], dst[1], src_addr, dst_addr) + _SOCKID_TAIL.pack(0, _NOCOOKIE, _NOCOOKIE))
    message = _HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)  # the kernel answers while handling the send; this never waits in practice
        nl.sendto(message, (0, 0))
        reply = nl.recv(8192)
    if len(reply) < _HEADER.size:
        return None
    _, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind == _NLMSG_ERROR:
        (errno_,) = struct.unpack_from("=i", reply, _HEADER.size)
        if -errno_ in (2, 22):  # ENOENT: no such socket; EINVAL: not a family the kernel diagnoses here
            return None
        raise OSError(-errno_, "sock_diag refused the lookup")
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < _UID_OFFSET + 4:
        return None
    (uid,) = struct.unpack_from("=I", reply, _UID_OFFSET)
    return int(uid)


def _proc_hex(host: str, port: int) -> str:
    """An address as /proc/net/tcp prints it: each 32-bit word in host byte order, then the port, in hex."""
    family, packed = _address(host)
    raw = packed[:4] if family == socket.AF_INET else packed
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _proc_uid(src: tuple[str, int], dst: tuple[str, int]) -> int | None:
    """The same lookup in /proc/net/tcp and tcp6 (slower: a scan of every TCP socket)."""
    family, _ = _address(src[0])
    local, remote = _proc_hex(*src), _proc_hex(*dst)
    for table in ("/proc/net/tcp", "/proc/net/tcp6") if family == socket.AF_INET else ("/proc/net/tcp6",):
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 7 and fields[1] == local and fields[2] == remote:
                        return int(fields[7])
        except OSError:
            continue
    return None


def tcp_peer_uid(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid of the local process whose socket is connected from `client` to `server`."""
    try:
        return _sock_diag_uid(client, server)
    except OSError:
        return _proc_uid(client, server)
    except ValueError:  # not an IP address
        return None


def unix_peer_uid(sock: socket.socket) -> int | None:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return int(uid)


def peer_of(sock: socket.socket | None) -> Peer | None:
    """Who is at the other end of an accepted socket, when it is a local caller; None for remote peers."""
    if sock is None:
        return None
    if sock.family == socket.AF_UNIX:
        return Peer(unix_peer_uid(sock), "unix")
    try:
        client, server = sock.getpeername()[:2], sock.getsockname()[:2]
    except OSError:
        return None
    if not is_loopback_address(client[0]):
        return None
    return Peer(tcp_peer_uid(client, server), "tcp")


def scope_peer(scope: Any) -> Peer | None:
    """The local caller of this request: from the connection (see PeerAwareHttpTools), else looked up now."""
    extensions = scope.get("extensions")
    if extensions and SCOPE_KEY in extensions:
        peer: Peer | None = extensions[SCOPE_KEY]
        return peer
    client, server = scope.get("client"), scope.get("server")
    if not client or not server or server[1] is None:
        return None
    return Peer(tcp_peer_uid((client[0], client[1]), (server[0], server[1])), "tcp")


CORK_LIMIT = 16384  # a write this large (a stream's chunk) goes out at once, after what is pending


class CorkedTransport:
    """A connection's transport whose small writes in one loop turn reach the socket as one write at the end of
    the turn (uvicorn writes a response's head, then its body: one send(2) instead of two, and one for responses
    pipelined in one turn). Whatever else asks the transport about its writes or ends them sends what is pending
    first (get_write_buffer_size, write_eof, close, push); abort drops it. The rest is the transport's own."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= CORK_LIMIT:
            self.push()
            self._transport.write(data)
            return
        if not self._pending:
            self._loop.call_soon(self.push)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def push(self) -> None:
        """Send what is pending now."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            if not self._transport.is_closing():
                self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        self.push()
        return self._transport.get_write_buffer_size()

    def write_eof(self) -> None:
        self.push()
        self._transport.write_eof()

    def close(self) -> None:
        self.push()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class PeerAwareHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the local caller's uid looked up once per connection and corked
    writes."""

    _peer: Peer | None = None
    _body_seen = 0  # bytes of the current request's body parsed so far

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, CorkedTransport(transport, self.loop)))
        try:
            self._peer = peer_of(transport.get_extra_info("socket"))
        except OSError:
            self._peer = Peer(None, "unknown")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[SCOPE_KEY] = self._peer
        extensions[SOCKET_KEY] = self._body_socket
        extensions[BODY_KEY] = self._take_body
        self._body_seen = 0

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        super().on_body(body)

    def _take_body(self) -> tuple[int, bytes, int] | None:
        """Hand the rest of the request body over (POST /stream: splice from the socket into zfs receive):
        (a duplicate of the socket, the body bytes already read, how many more to read from it). Only for a
        plain (not TLS) request with a Content-Length and no Transfer-Encoding, before any response; None
        otherwise: read through ASGI. uvicorn stops reading this connection (its parser never sees the rest
        of the body) and closes it once the response is sent. The caller must not call `receive` again."""
        cycle = getattr(self, "cycle", None)
        transport = self.transport
        if (cycle is None or cycle.response_started or cycle.disconnected or transport.is_closing()
                or transport.get_extra_info("sslcontext") is not None):
            return None
        length: int | None = None
        for name, value in cycle.scope["headers"]:
            name = name.lower()
            if name == b"transfer-encoding":
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
        sock = transport.get_extra_info("socket")
        if length is None or sock is None or length < self._body_seen:
            return None
        self.flow.pause_reading()
        cycle.keep_alive = False
        if cycle.waiting_for_100_continue:  # what uvicorn's receive would have said first
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        transport.get_write_buffer_size()  # a corked write goes out now: the socket is read elsewhere from here
        read, cycle.body = cycle.body, b""
        return os.dup(sock.fileno()), read, length - self._body_seen

    def _body_socket(self) -> int | None:
        """A duplicate of the connection's socket (the caller closes it), for writing the chunks of the response
        body in progress directly (GET /stream: splice from the send's pipe). Only for a plain (not TLS) chunked
        response whose head has been written out whole, to a client still connected, so that the bytes written
        on it follow the head; None otherwise: write through ASGI. A duplicate, so that the number stays ours
        even if the transport closes the connection meanwhile (the writes then fail instead of reaching another
        file). The caller writes nothing through ASGI until it is done with it."""
        cycle = getattr(self, "cycle", None)
        transport = self.transport
        if (cycle is None or not cycle.response_started or cycle.response_complete or cycle.chunked_encoding
                is not True or cycle.disconnected or transport.is_closing() or transport.get_write_buffer_size()
                or transport.get_extra_info("sslcontext") is not None):
            return None
        sock = transport.get_extra_info("socket")
        return os.dup(sock.fileno()) if sock is not None else None
