"""Rate limits in Redis. With Redis down they allow the request (degraded mode, see stores.py)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
import uuid

from .errors import ApiError
from .stores import RedisStore, Unavailable

# Sliding window: drop entries older than the window, count, admit if below the limit.
# Returns {admitted (1|0), milliseconds until the oldest entry leaves the window}.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""

# Fixed window counter: INCR, set the TTL on the first hit. Returns {count, ttl seconds}.
_FIXED_WINDOW_INCR = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


def too_many(retry_after_seconds: float, what: str) -> ApiError:
    seconds = max(1, math.ceil(retry_after_seconds))
    return ApiError(
        429,
        f"Rate limit exceeded{what}. Please retry after {seconds} seconds.",
        headers={"Retry-After": str(seconds)},
    )


class RateLimiter:
    def __init__(self, store: RedisStore):
        self.store = store
        self._sliding = store.client.register_script(_SLIDING_WINDOW)
        self._incr = store.client.register_script(_FIXED_WINDOW_INCR)

    def search(self, user_id: int) -> None:
        """Per-user sliding window on car searches; raises 429 with Retry-After when exceeded."""
        config = self.store.config
        now_ms = int(time.time() * 1000)
        try:
            admitted, wait_ms = self.store.call(
                lambda c: self._sliding(
                    keys=[f"rate_limit:user:{user_id}"],
                    args=[
                        now_ms,
                        config.search_rate_window * 1000,
                        config.search_rate_limit,
                        f"{now_ms}:{uuid.uuid4().hex}",
                    ],
                    client=c,
                )
            )
        except Unavailable:
            return
        if not admitted:
            raise too_many(int(wait_ms) / 1000, "")

    @staticmethod
    def _account_key(email: str) -> str:
        # Hashed: keys and logs never carry the address itself.
        return "rate_limit:login:account:" + hashlib.sha256(email.lower().encode()).hexdigest()[:32]

    def login_attempt(self, client_address: str, email: str) -> None:
        """Count an attempt from this address; refuse when the address or the account is over its limit."""
        config = self.store.config
        try:
            count, ttl = self.store.call(
                lambda c: self._incr(
                    keys=[f"rate_limit:login:address:{client_address}"],
                    args=[config.login_rate_window],
                    client=c,
                )
            )
            if count > config.login_max_attempts_per_address:
                raise too_many(ttl, " for this address")
            key = self._account_key(email)
            failures, ttl = self.store.call(lambda c: c.pipeline().get(key).ttl(key).execute())
            if failures is not None and int(failures) >= config.login_max_failures_per_account:
                raise too_many(ttl, " for this account")
        except Unavailable:
            return

    def login_failed(self, email: str) -> None:
        with contextlib.suppress(Unavailable):
            self.store.call(
                lambda c: self._incr(
                    keys=[self._account_key(email)], args=[self.store.config.login_rate_window], client=c
                )
            )

    def login_succeeded(self, email: str) -> None:
        with contextlib.suppress(Unavailable):
            self.store.call(lambda c: c.delete(self._account_key(email)))
