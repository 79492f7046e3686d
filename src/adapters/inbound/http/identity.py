"""Who is calling: the user of a bearer token, else the local user mapped to a local caller's uid
(auth.local_users), else nobody; and how they were authenticated, for the audit trail."""

from __future__ import annotations

import logging

from zfsapi.application.auth import Authenticate
from zfsapi.domain.authz import Principal
from zfsapi.domain.errors import InvalidToken, ServiceUnavailable

from ..jsonrpc.errors import AUTH_REQUIRED, RpcError
from .admission import Admission
from .live import Access, Live
from .peer import Peer

log = logging.getLogger("zfsapi.http")
Identified = tuple[Principal | None, BaseException | None]  # the caller, or why a presented credential failed


def bearer(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other scheme or shape."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else None


def via(principal: Principal | None, local: Peer | None) -> str:
    """How the caller was authenticated, for the audit trail."""
    if principal is None:
        return "none"
    if principal.token_id is not None:
        return "token"
    return f"{local.transport} uid {local.uid}" if local is not None else "local"


class Identity:
    """Identifies the caller of an admitted request, with the local users as they are now (reloadable)."""

    def __init__(self, authenticate: Authenticate, access: Live[Access]) -> None:
        self._authenticate, self._access = authenticate, access

    async def identify(self, a: Admission) -> Identified:
        """The bearer token's user when one is presented (even from loopback), else the local user mapped to
        the caller's uid (auth.local_users) when the guard allowed passwordless access, else nobody."""
        header = a.headers.get("authorization")
        if header is None:
            return self._local(a)
        token = bearer(header)
        if token is None:
            return None, InvalidToken("not a Bearer token")
        try:
            return await self._authenticate.execute(token=token), None
        except (InvalidToken, ServiceUnavailable) as exc:
            log.info("token refused", extra={"peer": a.peer, "reason": getattr(exc, "reason", "")})
            return None, exc

    def _local(self, a: Admission) -> Identified:
        if a.local is None:
            return None, None
        principal = self._access.current.local_users.get(a.local.uid) if a.local.uid is not None else None
        if principal is None:
            who = "an unknown local user" if a.local.uid is None else f"local uid {a.local.uid}"
            log.info("refused", extra={"peer": a.peer, "reason": f"{who} is not in auth.local_users"})
            return None, RpcError(AUTH_REQUIRED, "Authentication required",
                                  {"reason": f"{who} may not call without a token (auth.local_users)"})
        return principal, None
