"""Who may use passwordless loopback access, decided from the TCP peer and the browser's own headers.

X-Forwarded-For and Forwarded never count: the server runs without proxy headers, so the peer is the socket's.
The Host check stops DNS rebinding; the Origin/Sec-Fetch-Site checks stop cross-site requests from a browser;
the JSON-only Content-Type rule stops "simple" cross-site POSTs that skip CORS preflight.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

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


# RFC 9110 Host = uri-host [ ":" port ]; uri-host is a reg-name, an IPv4 address or a bracketed IPv6 literal.
# Anything else (userinfo, a path, "@", a non-numeric port, spaces) is not a Host we accept.
_AUTHORITY = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::(?P<port>[0-9]{0,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/?#]*)")


@lru_cache(maxsize=1024)
def parse_authority(authority: str | None) -> tuple[str, int | None] | None:
    """(host, port) of a Host header value or an origin's authority, strictly; None when it is malformed."""
    if not authority:
        return None
    m = _AUTHORITY.fullmatch(authority.strip().lower())
    if m is None:
        return None
    port = m["port"]
    if port is not None and (not port or int(port) > 65535):
        return None
    return m["v6"] or m["name"], int(port) if port else None


def is_loopback_host(authority: str | None) -> bool:
    """A Host header naming this machine's loopback: localhost, 127.x.y.z or [::1], with or without port."""
    parsed = parse_authority(authority)
    return parsed is not None and (parsed[0] in _LOOPBACK_NAMES or is_loopback_address(parsed[0]))


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
        m = _ORIGIN.fullmatch(origin.strip().lower())
        # same origin: the Host's own authority (a missing port is the scheme's default, which never matches
        # an explicit one: the server is not on 80/443 in passwordless mode, and if it is, both omit it)
        if m is None or parse_authority(m["authority"]) is None \
                or parse_authority(m["authority"]) != parse_authority(host):
            return Refusal(403, "cross-origin requests are refused")
    return None


# the characters of a Host header (RFC 9110 uri-host [":" port], userinfo tolerated): what Litestar's router allows
_HOST_CHARS = re.compile(r"[0-9A-Za-z!$&'()*+,;=\-._~:\[\]@%]*")


def is_valid_host_header(value: str | None) -> bool:
    """False for a Host header no client sends (a path, spaces): the request is answered 400."""
    return value is None or _HOST_CHARS.fullmatch(value) is not None


def is_json_content_type(value: str | None) -> bool:
    return value is not None and value.split(";", 1)[0].strip().lower() == "application/json"
