"""Redis through Sentinel (REDIS_SENTINELS): a real master, replica and Sentinel on loopback ports.

The ACL rules are the roles' own (roles/redis and roles/redis_sentinel defaults): the Sentinel logs
in to Redis with the rules the redis role gives it, the app asks the Sentinel with the client user's
rules. SENTINEL FAILOVER promotes the replica; the same RedisStore (no restart) then writes to it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml
from autodealgenie.config import Config, ConfigError
from autodealgenie.stores import RedisStore, Unavailable

from tests.support.datastores import free_port

ROOT = Path(__file__).resolve().parents[2]
REDIS_DEFAULTS = yaml.safe_load((ROOT / "roles/redis/defaults/main.yml").read_text())
SENTINEL_DEFAULTS = yaml.safe_load((ROOT / "roles/redis_sentinel/defaults/main.yml").read_text())
PASSWORD = "test-password-0123456789"
MASTER = "autodealgenie"

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def _start(directory: Path, name: str, lines: list[str], *sentinel: str) -> subprocess.Popen:
    conf = directory / f"{name}.conf"
    conf.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        ["redis-server", str(conf), *sentinel],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process


def _wait(what: str, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def _redis_lines(directory: Path, name: str, port: int) -> list[str]:
    d = REDIS_DEFAULTS
    return [
        f"port {port}",
        "bind 127.0.0.1",
        f"dir {directory}",
        f"logfile {directory / name}.log",
        'save ""',
        "appendonly no",
        "user default off resetpass ~* &* +@all",
        f"user app on >{PASSWORD} {d['redis_app_acl_rules']}",
        f"user {d['redis_replication_user']} on >{PASSWORD} {d['redis_replication_acl_rules']}",
        f"user {d['redis_replication_sentinel_user']} on >{PASSWORD} "
        f"{d['redis_replication_sentinel_acl_rules']}",
        f"masteruser {d['redis_replication_user']}",
        f"masterauth {PASSWORD}",
    ]


@pytest.fixture
def trio(tmp_path):
    """(master port, replica port, sentinel port, processes) on loopback."""
    ports = {"master": free_port(), "replica": free_port(), "sentinel": free_port()}
    processes = []
    try:
        processes.append(_start(tmp_path, "master", _redis_lines(tmp_path, "master", ports["master"])))
        replica = [
            *_redis_lines(tmp_path, "replica", ports["replica"]),
            f"replicaof 127.0.0.1 {ports['master']}",
        ]
        processes.append(_start(tmp_path, "replica", replica))
        s = SENTINEL_DEFAULTS
        sentinel = [
            f"port {ports['sentinel']}",
            "bind 127.0.0.1",
            f"dir {tmp_path}",
            f"logfile {tmp_path / 'sentinel.log'}",
            "user default off resetpass -@all",
            f"user admin on >{PASSWORD} ~* &* +@all",
            f"user client on >{PASSWORD} {s['redis_sentinel_client_acl_rules']}",
            f"sentinel monitor {MASTER} 127.0.0.1 {ports['master']} 1",
            f"sentinel auth-user {MASTER} {REDIS_DEFAULTS['redis_replication_sentinel_user']}",
            f"sentinel auth-pass {MASTER} {PASSWORD}",
            f"sentinel down-after-milliseconds {MASTER} 1000",
            f"sentinel failover-timeout {MASTER} 5000",
        ]
        processes.append(_start(tmp_path, "sentinel", sentinel, "--sentinel"))
        admin = redis.Redis(
            port=ports["sentinel"], username="admin", password=PASSWORD, decode_responses=True
        )
        _wait(
            "the replica's link",
            lambda: _as_sentinel(ports["replica"]).info("replication")["master_link_status"] == "up",
        )

        # Seen is not enough: Sentinel promotes only a replica it has connected to and got a fresh
        # INFO from, with its link up (else FAILOVER answers NOGOODSLAVE).
        def promotable() -> bool:
            replicas = admin.sentinel_slaves(MASTER)
            return (
                len(replicas) == 1
                and replicas[0].get("master-link-status") == "ok"
                and not replicas[0].get("is_disconnected")
                and not replicas[0].get("is_sdown")
            )

        _wait("the Sentinel to see a promotable replica", promotable)
        yield ports, admin
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _config(ports, **extra) -> Config:
    env = {
        "REDIS_SENTINELS": f"127.0.0.1:{ports['sentinel']}",
        "REDIS_SENTINEL_USERNAME": "client",
        "REDIS_SENTINEL_PASSWORD": PASSWORD,
        "REDIS_USERNAME": "app",
        "REDIS_PASSWORD": PASSWORD,
        "REDIS_TIMEOUT": "0.3",
        "REDIS_RETRY_INTERVAL": "0.5",
        "REDIS_HOST": "192.0.2.1",  # ignored with Sentinels (TEST-NET: would never answer)
        **extra,
    }
    return Config.from_env(env)


def _as_sentinel(port: int) -> redis.Redis:
    """The Sentinel's ACL user on Redis (INFO and ROLE; the app user may not run them)."""
    user = REDIS_DEFAULTS["redis_replication_sentinel_user"]
    return redis.Redis(port=port, username=user, password=PASSWORD, decode_responses=True)


def _on(port: int) -> redis.Redis:
    return redis.Redis(port=port, username="app", password=PASSWORD, decode_responses=True)


def test_master_for_follows_a_failover_without_a_restart(trio):
    ports, admin = trio
    store = RedisStore(_config(ports))
    store.call(lambda c: c.set("before", "1"))
    assert _on(ports["master"]).get("before") == "1"
    assert store.check(1.0)

    started = time.monotonic()
    assert admin.execute_command("SENTINEL", "FAILOVER", MASTER)
    _wait(
        "the promotion",
        lambda: admin.sentinel_get_master_addr_by_name(MASTER) == ("127.0.0.1", ports["replica"]),
    )

    # Until Sentinel demotes the old master (it is alive in a forced failover), a connection still
    # open to it may write there: those writes are lost when it resyncs (asynchronous replication).
    # The store must end up writing to the promoted replica, through the same client.
    def write_after_failover():
        try:
            store.call(lambda c: c.set("after", "2"))
        except Unavailable:
            return False
        return _on(ports["replica"]).get("after") == "2"

    _wait("the store to write to the new master", write_after_failover, timeout=30)
    recovered = time.monotonic() - started
    assert _on(ports["replica"]).get("after") == "2"  # the promoted replica took the write
    assert _as_sentinel(ports["replica"]).info("replication")["role"] == "master"
    assert store.check(1.0)
    print(f"store recovered {recovered:.1f}s after SENTINEL FAILOVER")


def test_the_client_user_cannot_reconfigure_sentinel(trio):
    ports, _ = trio
    client = redis.Redis(port=ports["sentinel"], username="client", password=PASSWORD)
    assert client.sentinel_get_master_addr_by_name(MASTER)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command("SENTINEL", "FAILOVER", MASTER)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command("SENTINEL", "SET", MASTER, "quorum", "3")


def test_no_sentinel_answering_is_unavailable_not_a_hang():
    store = RedisStore(_config({"sentinel": free_port()}))
    started = time.monotonic()
    with pytest.raises(Unavailable):
        store.call(lambda c: c.get("x"))
    assert time.monotonic() - started < 3
    assert not store.check(0.5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "10.0.0.1"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.1:x"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.1:26379", "REDIS_SENTINEL_MASTER": " "}, None),
        ({"REDIS_SENTINEL_USERNAME": "u"}, "REDIS_SENTINEL_PASSWORD"),
    ],
)
def test_sentinel_settings_are_validated(env, message):
    if message is None:
        assert Config.from_env(env).redis_sentinel_master == "autodealgenie"  # blank = the default
        return
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)
