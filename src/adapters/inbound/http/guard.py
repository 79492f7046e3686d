"""Who may use passwordless loopback access, decided from the TCP peer and the browser's own headers.

X-Forwarded-For and Forwarded never count: the server runs without proxy headers, so the peer is the socket's.
The Host check stops DNS rebinding; the Origin/Sec-Fetch-Site checks stop cross-site requests from a browser;
the JSON-only Content-Type rule stops "simple" cross-site POSTs that skip CORS preflight.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

_LOOPBACK_NAMES = {"localhost", "localhost."}


@lru_cache(maxsize=4096)
def is_loopback_address(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _host_only(authority: str) -> str:
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    if authority.count(":") == 1:
        return authority.split(":", 1)[0]
    return authority


@lru_cache(maxsize=1024)
def is_loopback_host(authority: str | None) -> bool:
    """A Host header naming this machine's loopback: localhost, 127.x.y.z or [::1], with or without port."""
    if not authority:
        return False
    host = _host_only(authority)
    return host in _LOOPBACK_NAMES or is_loopback_address(host)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str


@lru_cache(maxsize=1024)
def check_passwordless(host: str | None, origin: str | None, fetch_site: str | None) -> Refusal | None:
    """For a loopback peer in passwordless mode: None when the request may proceed, else why not."""
    if not is_loopback_host(host):
        return Refusal(421, "Host header must name a loopback host for passwordless access")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return Refusal(403, "cross-site requests are refused")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or not parts.hostname or not is_loopback_host(parts.netloc) \
                or _host_only(parts.netloc) != _host_only(host or "") or (parts.port != _port(host or "")):
            return Refusal(403, "cross-origin requests are refused")
    return None


def _port(authority: str) -> int | None:
    try:
        return urlsplit(f"//{authority}").port
    except ValueError:
        return None


def is_json_content_type(value: str | None) -> bool:
    return value is not None and value.split(";", 1)[0].strip().lower() == "application/json"
