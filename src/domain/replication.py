"""Replication: where a dataset is replicated to (this host, an SSH host, another zfsapi over HTTP)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from .errors import InvalidArgument

HOLD_TAG = "zfsapi:replication"

# A host name (RFC 1123 labels), never starting with "-" (it would be read as an ssh option).
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


class RemoteKind(Enum):
    SSH = "ssh"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class Remote:
    """A validated `remote`: `user@host` / `host` (SSH, OpenSSH's own port and keys) or `http(s)://host[:port]`
    (another zfsapi). Nothing here can be read as an option by ssh or carry a path, query or credentials."""

    kind: RemoteKind
    host: str
    user: str | None = None
    port: int | None = None
    scheme: str | None = None  # http or https

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port else "")

    @property
    def ssh_destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.url if self.kind is RemoteKind.HTTP else self.ssh_destination

    @classmethod
    def parse(cls, text: str, param: str = "remote") -> Remote:
        if not text or len(text) > 300 or any(c.isspace() or ord(c) < 32 for c in text):
            raise InvalidArgument(param, "not a remote: user@host, host or http(s)://host[:port]")
        if "://" in text:
            return cls._parse_url(text, param)
        user, _, host = text.rpartition("@")
        if "@" in text and not _USER.fullmatch(user):
            raise InvalidArgument(param, f"{user!r} is not a valid user name")
        if not _is_host(host):
            raise InvalidArgument(param, f"{host!r} is not a host name or IP address")
        return cls(RemoteKind.SSH, host, user or None)

    @classmethod
    def _parse_url(cls, text: str, param: str) -> Remote:
        try:
            url = urlsplit(text)
            port = url.port
        except ValueError as exc:
            raise InvalidArgument(param, f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https"):
            raise InvalidArgument(param, "a URL remote must be http:// or https://")
        if url.username or url.password or url.query or url.fragment or url.path not in ("", "/"):
            raise InvalidArgument(param, "a URL remote is scheme://host[:port] only (tokens come from the config)")
        host = url.hostname or ""
        if not _is_host(host):
            raise InvalidArgument(param, f"{host!r} is not a host name or IP address")
        return cls(RemoteKind.HTTP, host, None, port, url.scheme)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
