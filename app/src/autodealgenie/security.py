"""Password hashing (argon2id), JWT access/refresh tokens (HS256) and their revocation."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import Config
from .errors import ApiError
from .stores import RedisStore

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
                token, self._key, algorithms=["HS256"], options={"require": ["sub", "exp", "type", "jti"]}
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "Token expired", headers={"WWW-Authenticate": "Bearer"}) from None
        except (jwt.PyJWTError, UnicodeError):  # PyJWT encodes the token first: a lone surrogate fails there
            raise ApiError(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"}) from None
        if claims.get("type") != kind:
            raise ApiError(401, "Invalid token type", headers={"WWW-Authenticate": "Bearer"})
        if not str(claims["sub"]).isdigit() or not _valid_jti(claims["jti"]):
            raise ApiError(401, "Invalid token", headers={"WWW-Authenticate": "Bearer"})
        return claims


def _valid_jti(jti) -> bool:
    return isinstance(jti, str) and 0 < len(jti) <= 64 and jti.isascii() and jti.isalnum()


# Revoked tokens: one sorted set, member = jti, score = the token's expiry (epoch seconds). It has
# no TTL, so `maxmemory-policy volatile-lru` (which evicts only keys with a TTL: the cache) never
# drops a revocation; every revoke deletes the members whose token has expired anyway.
REVOKED_TOKENS = "auth:revoked_tokens"
# Releases before 1.3 wrote `revoked_token:<jti>` (with a TTL, so evictable). Still read, and still
# written, while hosts of both releases answer during a rolling upgrade; drop in the next release.
LEGACY_REVOKED_PREFIX = "revoked_token:"


def revoke(store: RedisStore, claims: dict) -> bool:
    """Revoke a token until it expires; False if it was revoked already (a refresh token's second
    use). 503 when Redis cannot record it: the caller must not report success."""
    now = time.time()
    expires = int(claims["exp"])
    if expires <= now:
        return False
    jti = claims["jti"]

    def record(client):
        pipe = client.pipeline()  # MULTI/EXEC: check-and-revoke is atomic across workers and hosts
        pipe.zadd(REVOKED_TOKENS, {jti: expires}, nx=True)
        pipe.zremrangebyscore(REVOKED_TOKENS, "-inf", now)
        pipe.exists(LEGACY_REVOKED_PREFIX + jti)
        pipe.set(LEGACY_REVOKED_PREFIX + jti, "1", ex=max(1, int(expires - now)))
        added, _, legacy, _ = pipe.execute()
        return bool(added) and not legacy

    return store.secure(record)


def is_revoked(store: RedisStore, claims: dict) -> bool:
    """Whether the token was revoked; 503 (fail closed) when Redis cannot answer."""
    jti = claims["jti"]

    def check(client):
        return (
            client.pipeline(transaction=False)
            .zscore(REVOKED_TOKENS, jti)
            .exists(LEGACY_REVOKED_PREFIX + jti)
            .execute()
        )

    score, legacy = store.secure(check)
    return score is not None or bool(legacy)
