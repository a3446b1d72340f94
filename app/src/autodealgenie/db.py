"""PostgreSQL access: a psycopg2 connection pool per worker and instrumented queries."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.pool

from . import metrics
from .config import Config
from .errors import ServiceUnavailable

log = logging.getLogger(__name__)
# A pooled connection idle for longer than this is pinged before use (server restarts, idle timeouts).
PRE_PING_AFTER_SECONDS = 30.0


def connect_params(config: Config, statement_timeout_ms: int | None = None) -> dict:
    params = dict(config.postgres_dsn_params)
    timeout = config.postgres_statement_timeout_ms if statement_timeout_ms is None else statement_timeout_ms
    params["options"] = f"-c statement_timeout={int(timeout)}"
    # Keepalives and tcp_user_timeout (config.postgres_dsn_params) detect a dead server on an
    # established connection instead of hanging on TCP retransmits.
    return params


class Database:
    """Lazily created ThreadedConnectionPool (created in the worker, after gunicorn forks)."""

    def __init__(self, config: Config):
        self._config = config
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()
        self._last_used: dict[int, float] = {}

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = psycopg2.pool.ThreadedConnectionPool(
                        self._config.postgres_pool_min,
                        self._config.postgres_pool_max,
                        **connect_params(self._config),
                    )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.closeall()
            self._pool = None

    def _checkout(self):
        """A pooled connection; one idle for a while is pinged first and replaced when dead."""
        try:
            pool = self._get_pool()
            conn = pool.getconn()
            idle_since = self._last_used.get(id(conn))
            if idle_since is not None and time.monotonic() - idle_since > PRE_PING_AFTER_SECONDS:
                try:
                    self._ping(conn)
                except psycopg2.Error:
                    self._last_used.pop(id(conn), None)
                    pool.putconn(conn, close=True)
                    conn = pool.getconn()
        except (psycopg2.Error, psycopg2.pool.PoolError) as exc:
            log.warning("postgres unavailable: %s", exc)
            raise ServiceUnavailable("Database") from exc
        return pool, conn

    def _ping(self, conn) -> None:
        """SELECT 1; with read-write required, a server now in recovery counts as dead too."""
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            in_recovery = cur.fetchone()[0]
        conn.rollback()
        if in_recovery and self._config.postgres_session_attrs in ("read-write", "primary"):
            # A demoted leader (Patroni failover) that kept its connections: reconnect, and libpq's
            # target_session_attrs finds the new leader.
            raise psycopg2.OperationalError("the server is in recovery (no longer the leader)")

    @contextmanager
    def connection(self):
        """A connection for one unit of work: committed on success, rolled back on error."""
        pool, conn = self._checkout()
        broken = False
        try:
            yield conn
            conn.commit()
        except (psycopg2.OperationalError, psycopg2.errors.ReadOnlySqlTransaction) as exc:
            # ReadOnlySqlTransaction: this connection reached a server that is (now) a replica.
            broken = True
            log.warning("postgres connection failed: %s", exc)
            raise ServiceUnavailable("Database") from exc
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            broken = broken or bool(conn.closed)
            if broken:
                self._last_used.pop(id(conn), None)
            else:
                self._last_used[id(conn)] = time.monotonic()
            pool.putconn(conn, close=broken)

    def query(self, sql: str, params=None, *, operation: str, table: str, fetch: str = "all"):
        """Run one statement in its own transaction. fetch: "all" | "one" | "none" (rowcount)."""
        with self.connection() as conn:
            return run(conn, sql, params, operation=operation, table=table, fetch=fetch)


# Every (operation, table) the code queries: db_queries/db_query_errors start at 0 for each
# (tests/test_zero_series.py finds the pairs in the source and checks this list).
QUERY_LABELS = (
    ("select", "users"),
    ("insert", "users"),
    ("update", "users"),
    ("select", "deals"),
    ("insert", "deals"),
    ("update", "deals"),
    ("delete", "deals"),
    ("select", "vehicles"),
    ("select", "negotiation_sessions"),
    ("insert", "negotiation_sessions"),
    ("update", "negotiation_sessions"),
    ("select", "negotiation_messages"),
    ("insert", "negotiation_messages"),
    ("select", "loan_applications"),
    ("insert", "loan_applications"),
)
_queries = metrics.cached_labels(metrics.db_queries)
_query_errors = metrics.cached_labels(metrics.db_query_errors)
_query_duration = metrics.cached_labels(metrics.db_query_duration)


def run(conn, sql: str, params=None, *, operation: str, table: str, fetch: str = "all"):
    """Execute on an open connection with the db_* metrics (labels are fixed strings: bounded)."""
    _queries(operation, table).inc()
    start = time.perf_counter()
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            if fetch == "one":
                return cur.fetchone()
            if fetch == "all":
                return cur.fetchall()
            return cur.rowcount
    except psycopg2.Error:
        _query_errors(operation, table).inc()
        raise
    finally:
        _query_duration(operation, table).observe(time.perf_counter() - start)


def check(config: Config, timeout: float) -> bool:
    """Health probe on a dedicated connection, so a hung server cannot hold a pool slot."""
    params = connect_params(config, statement_timeout_ms=int(timeout * 1000))
    params["connect_timeout"] = max(2, int(timeout))
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False
    finally:
        conn.close()
