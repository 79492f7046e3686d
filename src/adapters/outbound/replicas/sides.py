"""The Replicas port: the destination side of a replication by its remote (this host, SSH, another zfsapi)."""

from __future__ import annotations

from typing import Callable, Sequence

import httpx

from zfsapi.application.ports import Replicas, ReplicaSide
from zfsapi.domain.replication import Remote, RemoteKind

from ..zfs.executor import ZfsExecutor
from .http import HttpReplica
from .ssh import SshReplica

# A remote zfsapi's credentials: (username, password, token); all None: passwordless loopback.
Credentials = Callable[[Remote], tuple[str | None, str | None, str | None]]


class ReplicaSides(Replicas):
    """One HttpReplica per URL (its login token is reused across jobs), sharing one HTTP client; an SshReplica
    per call (ssh itself is the connection)."""

    def __init__(self, local: ReplicaSide, executor: ZfsExecutor, *, ssh_options: Sequence[str] = (),
                 credentials: Credentials = lambda _r: (None, None, None)) -> None:
        self._local, self._exec, self._ssh_options, self._credentials = local, executor, tuple(ssh_options), credentials
        self._client: httpx.AsyncClient | None = None
        self._http: dict[str, HttpReplica] = {}

    def side(self, remote: Remote | None) -> ReplicaSide:
        if remote is None:
            return self._local
        if remote.kind is RemoteKind.SSH:
            return SshReplica(remote, self._exec, options=self._ssh_options)
        found = self._http.get(remote.url)
        if found is None:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(60.0))
            username, password, token = self._credentials(remote)
            found = self._http[remote.url] = HttpReplica(remote, self._client, self._exec, username=username,
                                                         password=password, token=token)
        return found

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._http.clear()
