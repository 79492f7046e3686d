"""Password hashes: Argon2id (argon2-cffi), legacy bcrypt ($2b$) verified and upgraded, all off the event loop
in a small bounded thread pool (argon2 and bcrypt release the GIL), so a burst of logins neither stalls other
requests nor holds more than `workers` x memory_cost of RAM."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os

import bcrypt
from argon2 import PasswordHasher as _Argon2
from argon2 import profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from zfsapi.application.auth import PasswordCheck, PasswordHasher

_BCRYPT_PREFIXES = ("$2b$", "$2a$", "$2y$")


def is_bcrypt(stored: str) -> bool:
    return stored.startswith(_BCRYPT_PREFIXES)


class Argon2Passwords(PasswordHasher):
    """Argon2id with argon2-cffi's defaults (RFC 9106 low memory: t=3, m=64 MiB, p=4), or OWASP's minimum
    for small hosts (t=2, m=19 MiB, p=1)."""

    PROFILES = {
        "rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY,
        "owasp-minimum": dataclasses.replace(profiles.RFC_9106_LOW_MEMORY, time_cost=2, memory_cost=19 * 1024,
                                             parallelism=1),
    }

    def __init__(self, workers: int = 2, profile: str = "rfc9106-low-memory") -> None:
        self._ph = _Argon2.from_parameters(self.PROFILES[profile])
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._dummy: str | None = None  # made on first use (in a worker): unknown users are checked against it

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._ph.hash(os.urandom(16).hex())
        return self._dummy

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def _verify(self, stored: str | None, password: str) -> PasswordCheck:
        if stored is not None and is_bcrypt(stored):
            try:
                ok = bcrypt.checkpw(password.encode(), stored.encode())
            except ValueError:
                return PasswordCheck(False)
            return PasswordCheck(ok, self._ph.hash(password) if ok else None)
        try:
            self._ph.verify(stored if stored is not None else self._dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return PasswordCheck(False)
        if stored is None:
            return PasswordCheck(False)
        return PasswordCheck(True, self._ph.hash(password) if self._ph.check_needs_rehash(stored) else None)

    async def verify(self, stored_hash: str | None, password: str) -> PasswordCheck:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._verify, stored_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
