"""Admission, the first step of every route: the request id, the few headers the adapter reads, and the guard's
decision (guard.py) on who may go without a token: a caller on the Unix socket, or on loopback TCP when its
browser headers pass."""

from __future__ import annotations

import logging
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

from litestar.types import Scope

from .guard import Refusal, check_passwordless, is_loopback_address
from .peer import Peer
from .services import HttpOptions

log = logging.getLogger("zfsapi.http")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_WANTED = {b"host", b"origin", b"sec-fetch-site", b"content-type", b"content-length", b"x-request-id",
           b"authorization", b"content-encoding"}


def read_headers(scope: Scope) -> dict[str, str]:
    """The few headers this adapter reads, from the raw ASGI scope in one pass (first occurrence wins)."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        key = key.lower()
        if key in _WANTED and key.decode() not in out:
            out[key.decode()] = value.decode("latin-1")
    return out


def request_id(headers: dict[str, str]) -> str:
    """The caller's X-Request-ID when it is a plain token of at most 64 characters, else a new random one."""
    given = headers.get("x-request-id")
    return given if given and _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class Admission:
    """What the guard decided for one request, and what it read to decide."""

    refusal: Refusal | None
    local: Peer | None  # a caller on this machine (loopback TCP or the Unix socket) that may go without a token
    request_id: str
    headers: dict[str, str]
    peer: str | None


class Gate:
    """The guard of every route, by the options' passwordless_localhost and local_peer."""

    def __init__(self, options: HttpOptions) -> None:
        self._passwordless = options.passwordless_localhost
        self._local_peer = options.local_peer

    def admit(self, scope: Scope) -> Admission:
        """The guard's decision for any route, with the request id set for logging."""
        headers = read_headers(scope)
        rid = request_id(headers)
        request_id_var.set(rid)
        client = scope.get("client")
        if client is None and self._passwordless:  # the Unix socket: no browser reaches it
            return Admission(None, self._local_peer(scope), rid, headers, "unix")
        peer = client[0] if client else None
        if self._passwordless and is_loopback_address(peer):
            refusal = check_passwordless(headers.get("host"), headers.get("origin"), headers.get("sec-fetch-site"))
            if refusal is not None:
                log.info("refused", extra={"peer": peer, "status": refusal.status, "reason": refusal.reason})
                return Admission(refusal, None, rid, headers, peer)
            return Admission(None, self._local_peer(scope), rid, headers, peer)
        return Admission(None, None, rid, headers, peer)
