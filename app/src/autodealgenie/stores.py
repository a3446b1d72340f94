"""Redis and MongoDB clients with a breaker per worker.

When a store fails to answer (down, hung: a timeout), the worker stops calling it for a retry
interval (so a dead host does not add a timeout to every request) and logs once; the detailed
health check still probes it every time and reports it unhealthy. What a request does then depends
on what the store holds:

- the cache (Redis) and the history/AI logs (MongoDB) fail open: a miss, a lost record;
- auth state in Redis (token revocations, rate limits, lock-outs) fails closed: RedisStore.secure
  answers 503 with Retry-After instead of letting a revoked token or an unlimited login through.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime

import pymongo
import pymongo.errors
import redis
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import metrics
from .config import Config
from .errors import ApiError

log = logging.getLogger(__name__)
_cache_duration = metrics.cached_labels(metrics.cache_operation_duration)
_cache_hits = metrics.cached_labels(metrics.cache_hits)
_cache_misses = metrics.cached_labels(metrics.cache_misses)


class Unavailable(Exception):
    """The store is down (or was down less than the retry interval ago)."""


class Breaker:
    def __init__(self, name: str, retry_interval: float):
        self.name = name
        self.retry_interval = retry_interval
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, exc: Exception) -> None:
        if not self.is_open:
            log.warning("%s unavailable, skipping it for %.0fs: %s", self.name, self.retry_interval, exc)
        self._open_until = time.monotonic() + self.retry_interval

    def reset(self) -> None:
        self._open_until = 0.0


class RedisStore:
    """Redis at REDIS_HOST:REDIS_PORT, or the master the Sentinels name (REDIS_SENTINELS).

    With Sentinels every new connection asks them for the master, and a connection still open to a
    demoted master fails on its first write (READONLY: redis-py drops it and the pool reconnects),
    so after a failover the worker reaches the new master once the breaker's retry interval is
    over, without a restart.
    """

    def __init__(self, config: Config):
        self.config = config
        self._sentinel = self._new_sentinel(config.redis_timeout) if config.redis_sentinels else None
        self.client = self._new_client(config.redis_timeout, decode_responses=True, health_check_interval=30)
        self.breaker = Breaker("redis", config.redis_retry_interval)
        self._error_logged_until = 0.0

    def _client_options(self, timeout: float) -> dict:
        return {
            "db": self.config.redis_db,
            "username": self.config.redis_username or None,
            "password": self.config.redis_password or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(
                NoBackoff(), 0
            ),  # fail fast: the breaker, not retries with backoff, handles outages
        }

    def _new_sentinel(self, timeout: float) -> redis.sentinel.Sentinel:
        return redis.sentinel.Sentinel(
            list(self.config.redis_sentinel_addresses),
            sentinel_kwargs={
                "username": self.config.redis_sentinel_username or None,
                "password": self.config.redis_sentinel_password or None,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "retry": Retry(NoBackoff(), 0),
            },
        )

    def _new_client(self, timeout: float, sentinel=None, **options) -> redis.Redis:
        sentinel = sentinel or self._sentinel
        if sentinel is not None:
            return sentinel.master_for(
                self.config.redis_sentinel_master,
                redis_class=redis.Redis,
                **self._client_options(timeout),
                **options,
            )
        return redis.Redis(
            host=self.config.redis_host,
            port=self.config.redis_port,
            **self._client_options(timeout),
            **options,
        )

    def call(self, operation):
        """Run operation(client); raise Unavailable instead of redis errors."""
        if self.breaker.is_open:
            raise Unavailable("redis")
        try:
            return operation(self.client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self.breaker.trip(exc)
            raise Unavailable("redis") from exc
        except redis.RedisError as exc:
            # An error reply (OOM when a full Redis has nothing left to evict, NOPERM...) fails this
            # command only: the server answers, so the breaker stays closed for everything else.
            self._log_error_reply(exc)
            raise Unavailable("redis") from exc

    def secure(self, operation):
        """Run operation(client) on auth state: 503 (fail closed) when Redis cannot answer it."""
        try:
            return self.call(operation)
        except Unavailable:
            seconds = max(1, math.ceil(self.config.redis_retry_interval))
            raise ApiError(
                503,
                "Authentication and rate-limit state is unavailable, try again later",
                headers={"Retry-After": str(seconds)},
            ) from None

    def _log_error_reply(self, exc: Exception) -> None:
        now = time.monotonic()
        if now >= self._error_logged_until:  # once per retry interval, not once per request
            log.warning("redis refused a command: %s", exc)
            self._error_logged_until = now + self.config.redis_retry_interval

    def cache_get(self, cache_name: str, key: str) -> str | None:
        """A cached value, or None on a miss or when Redis is down (both counted as misses)."""
        value = None
        start = time.perf_counter()
        try:
            value = self.call(lambda c: c.get(key))
        except Unavailable:
            pass
        finally:
            _cache_duration("get", cache_name).observe(time.perf_counter() - start)
        (_cache_hits if value is not None else _cache_misses)(cache_name).inc()
        return value

    def cache_set(self, cache_name: str, key: str, value: str, ttl: int) -> None:
        start = time.perf_counter()
        try:
            self.call(lambda c: c.set(key, value, ex=ttl))
        except Unavailable:
            pass
        finally:
            _cache_duration("set", cache_name).observe(time.perf_counter() - start)

    def check(self, timeout: float) -> bool:
        # A probe of its own (Sentinels asked afresh too), so a hung connection of the pool, or a
        # Sentinel slow to answer, cannot hold it beyond the health check's timeout.
        sentinel = self._new_sentinel(timeout) if self._sentinel is not None else None
        probe = self._new_client(timeout, sentinel=sentinel)
        try:
            healthy = bool(probe.ping())
        except redis.RedisError:
            return False
        finally:
            probe.close()
            if sentinel is not None:
                for node in sentinel.sentinels:
                    node.close()
        self.breaker.reset()
        return healthy


class MongoStore:
    """MongoDB collections search_history, ai_responses, user_preferences (client created lazily)."""

    def __init__(self, config: Config):
        self.config = config
        self._client: pymongo.MongoClient | None = None
        self._lock = threading.Lock()
        self._indexed = False
        self.breaker = Breaker("mongodb", config.redis_retry_interval)

    def _new_client(self, timeout_ms: int) -> pymongo.MongoClient:
        return pymongo.MongoClient(
            self.config.mongodb_url,
            appname="autodealgenie",
            tz_aware=True,
            connect=False,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
        )

    @property
    def db(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client(self.config.mongodb_timeout_ms)
        return self._client[self.config.mongodb_db_name]

    def call(self, operation):
        if self.breaker.is_open:
            raise Unavailable("mongodb")
        try:
            if not self._indexed:
                self._ensure_indexes()
            return operation(self.db)
        except pymongo.errors.WriteError:
            raise  # the server refused this document (a bad value, 422 in errors.py), not an outage
        except pymongo.errors.PyMongoError as exc:
            self.breaker.trip(exc)
            raise Unavailable("mongodb") from exc

    def _ensure_indexes(self) -> None:
        db = self.db
        db.search_history.create_index([("user_id", 1), ("timestamp", -1)])
        db.ai_responses.create_index([("feature", 1), ("timestamp", -1)])
        db.ai_responses.create_index([("deal_id", 1), ("timestamp", -1)])
        db.ai_responses.create_index([("user_id", 1), ("timestamp", -1)])
        db.user_preferences.create_index([("user_id", 1), ("created_at", -1)])
        self._indexed = True

    def record(self, collection: str, document: dict) -> bool:
        """Insert a log document; a MongoDB outage loses the record, never the request."""
        document.setdefault("timestamp", datetime.now(UTC))
        try:
            self.call(lambda db: db[collection].insert_one(document))
            return True
        except Unavailable:
            log.debug("dropped %s record: mongodb unavailable", collection)
            return False

    def check(self, timeout: float) -> bool:
        client = self._new_client(int(timeout * 1000))
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()
        self.breaker.reset()
        return True
