"""Settings -> the security adapters' inputs: user records, the signing key, rate quotas."""

from __future__ import annotations

import grp
import os
import pwd

from zfsapi.adapters.inbound.http.live import Access
from zfsapi.adapters.outbound.auth.secret import load_or_create_key
from zfsapi.application.auth import UserRecord
from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.names import DatasetName
from zfsapi.domain.ratelimit import Quota

from .settings import Settings, SettingsError


def user_records(settings: Settings) -> list[UserRecord]:
    out = []
    for name, user in settings.auth.users.items():
        if isinstance(user, str):  # the old server's form: name -> hash, an administrator
            out.append(UserRecord(name, user, Role.ADMIN))
        else:
            prefixes = tuple(DatasetName.parse(p).value for p in user.datasets)
            out.append(UserRecord(name, user.password_hash, Role(user.role), prefixes))
    return out


def tokens_outlive_the_process(settings: Settings) -> bool:
    """A configured key, or users who can log in: tokens stay valid across restarts (and so must revocations)."""
    return settings.auth.secret_key is not None or bool(settings.auth.users and settings.auth.enabled)


def signing_key(settings: Settings) -> bytes:
    """The configured key, else the one in state_dir (made on first start). With no users and no key, nobody
    can log in, so a per-process random key does (no state directory needed)."""
    if not tokens_outlive_the_process(settings):
        return os.urandom(32)
    return load_or_create_key(settings.auth.secret_key, settings.state_dir)


def revocation_store(settings: Settings) -> str:
    """Where revoked tokens are kept: Redis when configured; else a file under state_dir whenever tokens outlive
    the process (a logout must survive a restart); else this process's memory (no token can be issued)."""
    if settings.redis.host:
        return "redis"
    return "embedded" if tokens_outlive_the_process(settings) else "memory"


def rate_quota(settings: Settings, login: bool) -> Quota | None:
    r = settings.rate_limit
    if not r.enabled:
        return None
    return Quota(r.login_requests, r.login_window) if login else Quota(r.requests, r.window)


def local_quota(settings: Settings) -> Quota | None:
    """The limit for local users without a token: none unless rate_limit.local_requests is set."""
    r = settings.rate_limit
    return Quota(r.local_requests, r.local_window) if r.enabled and r.local_requests is not None else None


def local_users(settings: Settings) -> dict[int, Principal]:
    """auth.local_users by uid: a name is looked up in the user database at start and on each reload."""
    out: dict[int, Principal] = {}
    for key, user in settings.auth.local_users.items():
        if key.isdigit():
            uid = int(key)
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = f"uid{uid}"
        else:
            try:
                uid, name = pwd.getpwnam(key).pw_uid, key
            except KeyError:
                raise SettingsError(f"config key auth.local_users.{key}: no such local user") from None
        prefixes = tuple(DatasetName.parse(p).value for p in user.datasets)
        out[uid] = Principal(name, Role(user.role), prefixes)
    return out


def access_of(settings: Settings) -> Access:
    """The reloadable part of the HTTP adapter's configuration. Raises SettingsError (an unknown local user)."""
    return Access(local_users(settings), rate_quota(settings, login=False), rate_quota(settings, login=True),
                  local_quota(settings))


def socket_group(settings: Settings) -> int | None:
    group = settings.server.unix.group
    if group is None:
        return None
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise SettingsError(f"config key server.unix.group: no such group {group!r}") from None
