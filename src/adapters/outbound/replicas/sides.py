"""The Replicas port: which remote a migration names (replication.remotes, swapped in on reload), and the
destination side of a replication by its remote (this host, SSH, another zfsapi)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import httpx

from zfsapi.application.ports import Replicas, ReplicaSide
from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidArgument
from zfsapi.domain.replication import NamedRemote, RemoteBook, RemoteKind

from ..zfs.executor import ZfsExecutor
from .http import HttpReplica
from .ssh import SshReplica


@dataclass(frozen=True, slots=True)
class Secret:
    """A listed zfsapi remote's credentials: a username and password, or a token (never in a repr or a log)."""

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """replication.remotes as the adapter needs it: the book of remotes, and the credentials by remote name."""

    book: RemoteBook = RemoteBook()
    secrets: Mapping[str, Secret] = field(default_factory=dict)


# The job owner's own token for this server (signed with its key), or None when the owner has no token identity
# here (e.g. a local user without a token): then a remote without credentials is refused.
Minter = Callable[[Principal], Callable[[], str] | None]


class ReplicaSides(Replicas):
    """One HttpReplica per URL and credentials (a login token is reused across jobs; a minted one is the owner's,
    so one per owner), sharing one HTTP client; an SshReplica per call (ssh itself is the connection)."""

    def __init__(self, local: ReplicaSide, executor: ZfsExecutor, *, ssh_options: Sequence[str] = (),
                 config: RemoteConfig = RemoteConfig(), mint: Minter = lambda _who: None,
                 client: httpx.AsyncClient | None = None) -> None:
        self._local, self._exec, self._ssh_options = local, executor, tuple(ssh_options)
        self._config, self._mint = config, mint
        self._client = client  # made on first use (tests hand one in)
        self._http: dict[tuple[object, ...], HttpReplica] = {}

    def swap(self, config: RemoteConfig) -> None:
        """A reload: from now on migrations are checked against this book (running jobs keep their sides)."""
        self._config = config
        self._http.clear()

    def resolve(self, remote: str, who: Principal) -> NamedRemote:
        target = self._config.book.resolve(remote, who)
        if target.remote.kind is RemoteKind.HTTP and not target.credentials and self._mint(who) is None:
            raise InvalidArgument("remote", f"{target.remote.url} has no credentials in replication.remotes, and "
                                            f"{who.name} has no token identity here to call it with (a user of "
                                            "auth.users with the same role and scope)")
        return target

    def side(self, target: NamedRemote | None, who: Principal) -> ReplicaSide:
        if target is None:
            return self._local
        if target.remote.kind is RemoteKind.SSH:
            return SshReplica(target.remote, self._exec, options=(*self._ssh_options, *target.options))
        secret = self._config.secrets.get(target.name or "") if target.credentials else None
        key: tuple[object, ...] = (target.remote.url, secret) if secret else (target.remote.url, who)
        found = self._http.get(key)
        if found is None:
            found = self._http[key] = self._http_side(target, secret, who)
        return found

    def _http_side(self, target: NamedRemote, secret: Secret | None, who: Principal) -> HttpReplica:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(60.0), follow_redirects=False, trust_env=False)
        if secret is not None:
            return HttpReplica(target.remote, self._client, self._exec, username=secret.username,
                               password=secret.password, token=secret.token)
        mint = self._mint(who)
        if mint is None:
            raise InvalidArgument("remote", f"{target.remote.url} has no credentials, and {who.name} no token "
                                            "identity here")
        return HttpReplica(target.remote, self._client, self._exec, mint=mint)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._http.clear()
