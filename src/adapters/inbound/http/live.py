"""The part of the HTTP adapter's configuration that a running server may replace (SIGHUP): who may call
without a token and the rate limits. The users and roles behind tokens are the user directory's (its own swap)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Mapping, TypeVar

from zfsapi.domain.authz import LOCALHOST, Principal
from zfsapi.domain.ratelimit import Quota

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Access:
    """Local callers without a token, by uid (from the kernel: see peer.py; anyone else local gets -32001), and
    the rate limits (None: off)."""

    local_users: Mapping[int, Principal] = field(default_factory=lambda: {0: LOCALHOST})
    rate_limit: Quota | None = Quota(100, 60.0)  # per principal
    login_limit: Quota | None = Quota(5, 60.0)  # auth_login attempts per peer
    local_limit: Quota | None = None  # local users without a token, per user


class Live(Generic[T]):
    """A value replaced whole while the server runs. A request reads `current` once, so it never mixes an old
    and a new configuration; a swap is one reference assignment on the event loop's thread."""

    def __init__(self, value: T) -> None:
        self.current = value

    def swap(self, value: T) -> None:
        self.current = value
