"""JWT bearer tokens (PyJWT): HS256 only, the algorithm fixed on decode, a key of at least 32 bytes, and
sub/iat/exp/jti/iss/aud all required."""

from __future__ import annotations

import os
import time

import jwt

from zfsapi.application.auth import IssuedToken, TokenClaims, TokenCodec
from zfsapi.domain.errors import InvalidToken

ALGORITHM = "HS256"
REQUIRED = ["sub", "iat", "exp", "jti", "iss", "aud"]
MIN_KEY_BYTES = 32


class JwtTokens(TokenCodec):
    def __init__(self, key: bytes, lifetime: float = 1800.0, issuer: str = "zfsapi", audience: str = "zfsapi") -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the token signing key has {len(key)} bytes; at least {MIN_KEY_BYTES} are required")
        self._key = key
        self.lifetime = lifetime
        self._issuer = issuer
        self._audience = audience
        self._jwt = jwt.PyJWT(options={"enforce_minimum_key_length": True})

    def issue(self, subject: str) -> IssuedToken:
        now = time.time()
        jti = os.urandom(16).hex()
        claims = {"sub": subject, "iat": now, "nbf": now, "exp": now + self.lifetime, "jti": jti,
                  "iss": self._issuer, "aud": self._audience}
        token = self._jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return IssuedToken(token, jti, now, now + self.lifetime)

    def decode(self, token: str) -> TokenClaims:
        try:
            claims = self._jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=self._audience, issuer=self._issuer,
                options={"require": REQUIRED, "verify_signature": True, "verify_exp": True, "verify_nbf": True,
                         "verify_iat": True, "verify_aud": True, "verify_iss": True, "strict_aud": True},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(type(exc).__name__) from None
        sub, jti = claims.get("sub"), claims.get("jti")
        if not isinstance(sub, str) or not isinstance(jti, str) or not sub or not jti:
            raise InvalidToken("sub and jti must be non-empty strings")
        return TokenClaims(sub, jti, float(claims["iat"]), float(claims["exp"]))
