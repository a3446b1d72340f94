"""Password hashing (argon2id) and JWT access/refresh tokens (HS256)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Config
from .errors import ApiError

ACCESS = "access"
REFRESH = "refresh"


class Passwords:
    def __init__(self, config: Config):
        self._hasher = PasswordHasher(
            time_cost=config.password_hash_time_cost,
            memory_cost=config.password_hash_memory_kib,
            parallelism=1,
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, hashed: str | None, password: str) -> bool:
        if hashed is None and self._dummy is None:
            # Verified against when the account does not exist, so both paths cost the same time.
            self._dummy = self._hasher.hash("timing-equaliser")
        try:
            return self._hasher.verify(hashed or self._dummy, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        return self._hasher.check_needs_rehash(hashed)


class Tokens:
    def __init__(self, config: Config):
        self._key = config.jwt_secret_key
        self.lifetimes = {
            ACCESS: timedelta(minutes=config.jwt_access_token_minutes),
            REFRESH: timedelta(days=config.jwt_refresh_token_days),
        }

    def issue(self, user_id: int, kind: str) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "type": kind,
            "iat": now,
            "exp": now + self.lifetimes[kind],
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def decode(self, token: str, kind: str) -> dict:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], options={"require": ["sub", "exp", "type"]}
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "Token expired", headers={"WWW-Authenticate": "Bearer"}) from None
        except jwt.PyJWTError:
            raise ApiError(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"}) from None
        if claims.get("type") != kind:
            raise ApiError(401, "Invalid token type", headers={"WWW-Authenticate": "Bearer"})
        if not str(claims["sub"]).isdigit():
            raise ApiError(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"})
        return claims
