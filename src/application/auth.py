"""Login, logout and token authentication, on ports for users, password hashing, tokens and revocations."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from zfsapi.domain.authz import Principal, Role
from zfsapi.domain.errors import InvalidCredentials, InvalidToken


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    role: Role
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    ok: bool
    upgraded_hash: str | None = None  # set when the stored hash should be replaced (bcrypt, old parameters)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    jti: str
    issued_at: float
    expires_at: float


class UserDirectory(Protocol):
    def get(self, name: str) -> UserRecord | None: ...

    async def replace_hash(self, name: str, old_hash: str, new_hash: str) -> bool:
        """Store an upgraded hash; False when the configuration cannot be written (the login still succeeds)."""
        ...


class PasswordHasher(Protocol):
    async def verify(self, stored_hash: str | None, password: str) -> PasswordCheck:
        """Check off the event loop. With no stored hash, spend the same time as a real check and fail."""
        ...


class TokenCodec(Protocol):
    lifetime: float

    def issue(self, subject: str) -> IssuedToken: ...

    def decode(self, token: str) -> TokenClaims:
        """Verify signature, algorithm, expiry and every required claim against the system clock; raise InvalidToken."""
        ...


class Revocations(Protocol):
    """Revoked token ids and per-user "tokens issued before T are invalid" marks, kept until they no longer matter."""

    async def revoke(self, jti: str, ttl: float) -> None: ...

    async def revoke_before(self, subject: str, issued_before: float, ttl: float) -> None: ...

    async def state(self, jti: str, subject: str) -> tuple[bool, float | None]:
        """(is this jti revoked, the subject's not-before mark or None)."""
        ...


class Login:
    """Exchange a username and password for a short-lived bearer token."""

    def __init__(self, users: UserDirectory, hasher: PasswordHasher, tokens: TokenCodec, enabled: bool = True) -> None:
        self._users, self._hasher, self._tokens = users, hasher, tokens
        self._enabled = enabled

    async def execute(self, *, username: str, password: str) -> IssuedToken:
        user = self._users.get(username) if self._enabled else None
        check = await self._hasher.verify(user.password_hash if user else None, password)
        if user is None or not check.ok:
            raise InvalidCredentials()
        if check.upgraded_hash is not None:
            await self._users.replace_hash(user.name, user.password_hash, check.upgraded_hash)
        return self._tokens.issue(user.name)


class Logout:
    """Revoke the presented token, or (all_sessions) every token of its user issued until now."""

    def __init__(self, revocations: Revocations, tokens: TokenCodec) -> None:
        self._revocations, self._tokens = revocations, tokens

    async def execute(self, *, principal: Principal, all_sessions: bool = False) -> bool:
        """True when something was revoked (passwordless callers have no token to revoke)."""
        now = time.time()
        if principal.token_id is None or principal.token_expires is None:
            return False
        await self._revocations.revoke(principal.token_id, principal.token_expires - now)
        if all_sessions:
            await self._revocations.revoke_before(principal.name, now, self._tokens.lifetime)
        return True


class Authenticate:
    """A bearer token -> the principal it stands for, with the user's current role and scope."""

    def __init__(self, users: UserDirectory, tokens: TokenCodec, revocations: Revocations) -> None:
        self._users, self._tokens, self._revocations = users, tokens, revocations

    async def execute(self, *, token: str) -> Principal:
        claims = self._tokens.decode(token)
        user = self._users.get(claims.subject)
        if user is None:
            raise InvalidToken("user no longer configured")
        revoked, not_before = await self._revocations.state(claims.jti, claims.subject)
        if revoked:
            raise InvalidToken("revoked")
        if not_before is not None and claims.issued_at <= not_before:
            raise InvalidToken("issued before the user's sessions were revoked")
        return Principal(user.name, user.role, user.prefixes, claims.jti, claims.expires_at)


@dataclass(frozen=True, slots=True)
class AuthUseCases:
    login: Login
    logout: Logout
    authenticate: Authenticate
