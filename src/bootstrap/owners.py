"""A job's owner as the running configuration has it now: the users behind tokens (auth.users) and the local
users (auth.local_users), both swapped in on SIGHUP. The job runner asks before each job starts."""

from __future__ import annotations

from zfsapi.adapters.inbound.http.live import Access, Live
from zfsapi.application.auth import UserDirectory
from zfsapi.application.jobs import JobOwners
from zfsapi.domain.authz import Principal
from zfsapi.domain.jobs import JobOwner


class ConfiguredOwners(JobOwners):
    """`current(owner)`: the user of that name with its role and scope now, or None when it is gone. A token's
    user is looked up in auth.users, a local user in auth.local_users (only while passwordless access is on: else
    it could not call at all); a record from before origins were kept is looked up in both. A program embedding
    zfsapi is in no configuration: its jobs keep the principal it gave."""

    def __init__(self, users: UserDirectory, access: Live[Access], passwordless: bool) -> None:
        self._users, self._access, self._passwordless = users, access, passwordless

    def current(self, owner: JobOwner) -> Principal | None:
        if owner.origin == "embedded":
            return owner.principal()
        if owner.origin != "local":
            user = self._users.get(owner.name)
            if user is not None:
                return Principal(user.name, user.role, user.prefixes)
            if owner.origin == "token":
                return None
        if not self._passwordless:
            return None
        return next((p for p in self._access.current.local_users.values() if p.name == owner.name), None)
