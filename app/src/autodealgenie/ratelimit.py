"""Rate limits and login lock-outs in Redis; they fail closed (503) when Redis cannot answer.

Key layout (see also security.py for revocations). Redis runs `maxmemory-policy volatile-lru`,
which evicts only keys that carry a TTL: the cache's. So the keys here carry NO TTL; each one's
expiry (epoch ms) is the score of its member in the sorted set `rate_limit:expiry`, and the app
deletes expired keys itself (RateLimiter.prune, from every worker every few seconds):

    rate_limit:login:address:<address>                 fixed window, attempts from an address
    rate_limit:login:account:<sha256(email)>:<address>  fixed window, failed logins for an account
                                                       from one address (a stranger elsewhere cannot
                                                       lock the owner out)
    rate_limit:signup:address:<address>                fixed window, signups from an address
    rate_limit:user:<id>                               sliding window (sorted set), car searches

<address> is the client address (X-Forwarded-For through trusted proxies only, app.py); an IPv6
client counts as its /64, which one host usually holds whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math
import threading
import time
import uuid

from .errors import ApiError
from .stores import RedisStore, Unavailable

EXPIRY_INDEX = "rate_limit:expiry"
PRUNE_INTERVAL = 5.0  # seconds between prune passes of one worker
PRUNE_BATCH = 250  # keys per prune script call
PRUNE_MAX_BATCHES = 8  # per pass: up to 2000 keys, 400 keys/s per worker

# Fixed window counter. KEYS[1] counter, KEYS[2] expiry index; ARGV now_ms, window_ms.
# Returns {count after this hit, ms until the window ends}.
_FIXED_WINDOW_HIT = """
local now = tonumber(ARGV[1])
local expires = tonumber(redis.call('ZSCORE', KEYS[2], KEYS[1]) or 0)
if expires <= now then
  expires = now + tonumber(ARGV[2])
  redis.call('SET', KEYS[1], 0)
  redis.call('ZADD', KEYS[2], expires, KEYS[1])
end
return {redis.call('INCR', KEYS[1]), expires - now}
"""

# Sliding window: drop entries older than the window, count, admit if below the limit.
# KEYS[1] window, KEYS[2] expiry index; ARGV now_ms, window_ms, limit, unique member.
# Returns {admitted (1|0), ms until the oldest entry leaves the window}.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('ZADD', KEYS[2], now + window, KEYS[1])
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""

# KEYS[1] expiry index, KEYS[2..] candidates read from it; ARGV[1] now_ms. Re-checks each expiry
# inside the script, so a key renewed since it was read is kept. DEL/ZREM work even when Redis is
# out of memory. Returns the number of keys deleted.
_PRUNE = """
local removed = 0
for i = 2, #KEYS do
  local expires = redis.call('ZSCORE', KEYS[1], KEYS[i])
  if expires and tonumber(expires) <= tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', KEYS[1], KEYS[i])
    removed = removed + 1
  end
end
return removed
"""


def too_many(retry_after_seconds: float, what: str) -> ApiError:
    seconds = max(1, math.ceil(retry_after_seconds))
    return ApiError(
        429,
        f"Rate limit exceeded{what}. Please retry after {seconds} seconds.",
        headers={"Retry-After": str(seconds)},
    )


def limit_address(address: str) -> str:
    """The unit a per-address limit counts: the IP, an IPv6 client's /64, an IPv4-mapped IPv6's IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _now_ms() -> int:
    return int(time.time() * 1000)


class RateLimiter:
    def __init__(self, store: RedisStore):
        self.store = store
        self._hit_script = store.client.register_script(_FIXED_WINDOW_HIT)
        self._sliding = store.client.register_script(_SLIDING_WINDOW)
        self._prune_script = store.client.register_script(_PRUNE)
        self._next_prune = 0.0
        self._prune_lock = threading.Lock()

    # --- primitives (fail closed) ---------------------------------------------------------------

    def _hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        """Count one hit in key's fixed window: (count, seconds left in the window)."""
        count, left_ms = self.store.secure(
            lambda c: self._hit_script(
                keys=[key, EXPIRY_INDEX], args=[_now_ms(), window_seconds * 1000], client=c
            )
        )
        self._maybe_prune()
        return int(count), int(left_ms) / 1000

    def _peek(self, key: str) -> tuple[int, float]:
        """key's count in its current window (0 once the window has ended), without counting."""
        value, expires = self.store.secure(
            lambda c: c.pipeline(transaction=False).get(key).zscore(EXPIRY_INDEX, key).execute()
        )
        left_ms = (expires or 0) - _now_ms()
        if value is None or left_ms <= 0:
            return 0, 0.0
        return int(value), left_ms / 1000

    def _forget(self, key: str) -> None:
        def delete(c):
            c.pipeline().delete(key).zrem(EXPIRY_INDEX, key).execute()

        with contextlib.suppress(Unavailable):  # a stale counter only errs on the strict side
            self.store.call(delete)

    # --- pruning -------------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + PRUNE_INTERVAL
            with contextlib.suppress(Unavailable):  # maintenance: the next pass catches up
                self.prune()
        finally:
            self._prune_lock.release()

    def prune(self) -> int:
        """Delete rate-limit keys whose window has ended; returns how many were deleted."""
        removed = 0
        for _ in range(PRUNE_MAX_BATCHES):
            now = _now_ms()
            expired = self.store.call(
                lambda c, now=now: c.zrangebyscore(EXPIRY_INDEX, "-inf", now, start=0, num=PRUNE_BATCH)
            )
            if not expired:
                break
            removed += int(
                self.store.call(
                    lambda c, now=now, expired=expired: self._prune_script(
                        keys=[EXPIRY_INDEX, *expired], args=[now], client=c
                    )
                )
            )
            if len(expired) < PRUNE_BATCH:
                break
        return removed

    # --- limits --------------------------------------------------------------------------------

    def search(self, user_id: int) -> None:
        """Per-user sliding window on car searches; raises 429 with Retry-After when exceeded."""
        config = self.store.config
        now_ms = _now_ms()
        admitted, wait_ms = self.store.secure(
            lambda c: self._sliding(
                keys=[f"rate_limit:user:{user_id}", EXPIRY_INDEX],
                args=[
                    now_ms,
                    config.search_rate_window * 1000,
                    config.search_rate_limit,
                    f"{now_ms}:{uuid.uuid4().hex}",
                ],
                client=c,
            )
        )
        self._maybe_prune()
        if not admitted:
            raise too_many(int(wait_ms) / 1000, "")

    @staticmethod
    def _failures_key(email: str, client_address: str) -> str:
        # Hashed: keys and logs never carry the email address itself.
        account = hashlib.sha256(email.lower().encode()).hexdigest()[:32]
        return f"rate_limit:login:account:{account}:{limit_address(client_address)}"

    def login_attempt(self, client_address: str, email: str) -> None:
        """Count an attempt from this address; refuse when the address, or this account from this
        address, is over its limit."""
        config = self.store.config
        count, left = self._hit(
            f"rate_limit:login:address:{limit_address(client_address)}", config.login_rate_window
        )
        if count > config.login_max_attempts_per_address:
            raise too_many(left, " for this address")
        failures, left = self._peek(self._failures_key(email, client_address))
        if failures >= config.login_max_failures_per_account:
            raise too_many(left, " for this account")

    def login_failed(self, client_address: str, email: str) -> None:
        self._hit(self._failures_key(email, client_address), self.store.config.login_rate_window)

    def login_succeeded(self, client_address: str, email: str) -> None:
        self._forget(self._failures_key(email, client_address))

    def signup_attempt(self, client_address: str) -> None:
        config = self.store.config
        count, left = self._hit(
            f"rate_limit:signup:address:{limit_address(client_address)}", config.signup_rate_window
        )
        if count > config.signup_max_per_address:
            raise too_many(left, " for signups from this address")
