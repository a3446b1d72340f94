"""PostgreSQL HA client settings: libpq multi-host, target_session_attrs, keepalives, tcp_user_timeout."""

from __future__ import annotations

import pytest
from autodealgenie.config import Config, ConfigError
from autodealgenie.db import Database, connect_params
from autodealgenie.errors import ServiceUnavailable


def test_one_host_sends_no_target_session_attrs():
    params = Config.from_env({"POSTGRES_HOST": "10.0.0.1"}).postgres_dsn_params
    assert params["host"] == "10.0.0.1"
    assert "target_session_attrs" not in params


def test_several_hosts_default_to_read_write():
    config = Config.from_env({"POSTGRES_HOST": "10.0.0.1, 10.0.0.2,10.0.0.3"})
    params = config.postgres_dsn_params
    assert params["host"] == "10.0.0.1,10.0.0.2,10.0.0.3"
    assert params["target_session_attrs"] == "read-write"


def test_keepalives_and_tcp_user_timeout_are_sent():
    config = Config.from_env({"POSTGRES_KEEPALIVES_IDLE": "7", "POSTGRES_TCP_USER_TIMEOUT_MS": "4000"})
    params = connect_params(config)
    assert params["keepalives"] == 1
    assert params["keepalives_idle"] == 7
    assert (params["keepalives_interval"], params["keepalives_count"]) == (5, 3)
    assert params["tcp_user_timeout"] == 4000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"POSTGRES_HOST": "10.0.0.1,,10.0.0.2"}, "empty host"),
        ({"POSTGRES_TARGET_SESSION_ATTRS": "leader"}, "POSTGRES_TARGET_SESSION_ATTRS must be one of"),
        ({"POSTGRES_HOST": "a,b", "POSTGRES_TARGET_SESSION_ATTRS": "any"}, "writes could reach a replica"),
        ({"POSTGRES_KEEPALIVES_COUNT": "0"}, "POSTGRES_KEEPALIVES_COUNT must be at least 1"),
        ({"POSTGRES_TCP_USER_TIMEOUT_MS": "-1"}, "POSTGRES_TCP_USER_TIMEOUT_MS"),
    ],
)
def test_bad_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_a_dead_first_host_is_skipped(make_config, datastores):
    """libpq tries the next host: 127.0.0.2 has nothing on the port (the server binds 127.0.0.1)."""
    config = make_config(POSTGRES_HOST="127.0.0.2,127.0.0.1", POSTGRES_CONNECT_TIMEOUT=2)
    db = Database(config)
    try:
        row = db.query(
            "SELECT inet_server_addr()::text AS addr", operation="select", table="users", fetch="one"
        )
        assert row["addr"].startswith("127.0.0.1")
    finally:
        db.close()


def test_a_read_only_server_drops_the_connection(make_config):
    """A write refused as read-only (a demoted leader) fails the request and leaves the pool."""
    config = make_config(POSTGRES_POOL_MAX=1)
    db = Database(config)
    try:
        with pytest.raises(ServiceUnavailable), db.connection() as conn, conn.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("CREATE TEMP TABLE t (x int)")
        # The pool's only slot was freed by closing that connection: a new one works.
        assert db.query("SELECT 1 AS one", operation="select", table="users", fetch="one")["one"] == 1
    finally:
        db.close()
