"""Redis HA (issue 12): the files the redis, redis_sentinel and backend roles render, and their checkers.

- sentinel.conf as rendered is accepted by sentinel-check-candidate (a throw-away Sentinel) and a bad
  directive is refused; the candidate never reaches the master it names (pointed at 127.0.0.1:1);
- replication.conf: replicaof on a replica, none on the master; redis-check-replication refuses
  anything else; redis.conf carries the replication users and the include only with replication;
- the backend env file renders no HA setting in the single-host topology, and the host list and the
  Sentinels in the HA one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
REDIS = ROOT / "roles" / "redis"
SENTINEL = ROOT / "roles" / "redis_sentinel"
BACKEND = ROOT / "roles" / "backend"
PASSWORD = "a-long-test-password-0123"
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def _defaults(role: Path) -> dict:
    values = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    values.update(
        yaml.safe_load((role / "vars" / "main.yml").read_text()) if (role / "vars").is_dir() else {}
    )
    return values


def _render(path: Path, values: dict) -> str:
    env = jinja2.Environment(  # noqa: S701 - config files, not HTML
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True
    )
    env.filters["hash"] = lambda value, kind: hashlib.new(kind, value.encode()).hexdigest()
    env.filters["ternary"] = lambda value, yes, no: yes if value else no
    # the defaults' own templates (listen addresses from facts) are replaced below
    return env.from_string(path.read_text()).render(ansible_managed="Ansible managed", **values)


def _sentinel_values(**extra) -> dict:
    values = _defaults(SENTINEL)
    values.update(
        redis_sentinel_listen_addresses=["127.0.0.1"],
        redis_sentinel_admin_password=PASSWORD,
        redis_sentinel_client_password=PASSWORD,
        redis_sentinel_redis_password=PASSWORD,
        _redis_sentinel_master="10.99.0.11:6379",
        _redis_sentinel_myid="",
    )
    values.update(extra)
    return values


def _redis_values(**extra) -> dict:
    values = _defaults(REDIS)
    values.update(
        redis_listen_addresses=["10.99.0.12", "127.0.0.1"],
        redis_app_password=PASSWORD,
        redis_monitor_password=PASSWORD,
        **extra,
    )
    return values


def test_the_rendered_sentinel_conf_has_the_marker_the_role_looks_for():
    text = _render(
        SENTINEL / "templates" / "sentinel.conf.j2", _sentinel_values(_redis_sentinel_myid="ab" * 20)
    )
    marker = _defaults(SENTINEL)["_redis_sentinel_marker"]
    assert marker in text.splitlines()
    assert f"sentinel myid {'ab' * 20}" in text
    assert "sentinel monitor autodealgenie 10.99.0.11 6379 2" in text
    assert "user default off" in text
    assert PASSWORD not in text.split("sentinel sentinel-pass")[0]  # users carry hashes only


@needs_redis
def test_sentinel_check_candidate_accepts_the_rendered_file_and_refuses_a_bad_one(tmp_path):
    good = tmp_path / "sentinel.conf"
    good.write_text(_render(SENTINEL / "templates" / "sentinel.conf.j2", _sentinel_values()))
    checker = SENTINEL / "files" / "sentinel-check-candidate"
    result = subprocess.run(["sh", str(checker), str(good)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "10.99.0.11" in good.read_text()  # the candidate itself is never rewritten
    bad = tmp_path / "bad.conf"
    bad.write_text(good.read_text() + "sentinel down-after-milliseconds autodealgenie\n")
    result = subprocess.run(["sh", str(checker), str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "rejected" in result.stderr


@pytest.mark.parametrize(
    ("master", "expected"),
    [("10.99.0.11:6379", "replicaof 10.99.0.11 6379"), ("10.99.0.12:6379", None)],
)
def test_replication_conf_names_the_master_except_on_the_master(tmp_path, master, expected):
    text = _render(REDIS / "templates" / "replication.conf.j2", _redis_values(_redis_master=master))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ([expected] if expected else [])
    candidate = tmp_path / "replication.conf"
    candidate.write_text(text)
    assert (
        subprocess.run(["sh", str(REDIS / "files" / "redis-check-replication"), str(candidate)]).returncode
        == 0
    )


@pytest.mark.parametrize("content", ["replicaof a 1\nreplicaof b 2\n", "port 6380\n", "replicaof 10.0.0.1\n"])
def test_redis_check_replication_refuses_anything_else(tmp_path, content):
    candidate = tmp_path / "replication.conf"
    candidate.write_text(content)
    result = subprocess.run(
        ["sh", str(REDIS / "files" / "redis-check-replication"), str(candidate)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1


def test_redis_conf_has_replication_only_when_asked():
    standalone = _render(REDIS / "templates" / "redis.conf.j2", _redis_values())
    assert "include" not in standalone
    assert "masteruser" not in standalone
    ha = _render(
        REDIS / "templates" / "redis.conf.j2",
        _redis_values(
            redis_replication_master="10.99.0.11",
            redis_replication_password=PASSWORD,
            redis_replication_sentinel_password=PASSWORD,
        ),
    )
    assert "include /etc/redis/replication.conf" in ha
    assert "masteruser replicator" in ha
    assert "user sentinel on #" in ha


def _backend_env(**extra) -> dict[str, str]:
    values = yaml.safe_load((BACKEND / "defaults" / "main.yml").read_text())
    values.update(
        backend_environment_name="production",
        backend_secret_key="s" * 40,
        backend_jwt_secret="j" * 40,
        backend_log_level="info",
        backend_postgresql_host="10.0.0.31",
        backend_postgresql_password=PASSWORD,
        backend_redis_host="10.0.0.31",
        backend_redis_password=PASSWORD,
        backend_mongodb_uri="mongodb://x",
        backend_trusted_proxy_count=0,
        backend_trusted_proxy_cidrs=[],
        backend_metrics_allowed_cidrs=[],
        backend_listen_address="10.0.0.21",
        **extra,
    )
    text = _render(BACKEND / "templates" / "backend.env.j2", values)
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


def test_backend_env_single_host_has_no_ha_setting():
    env = _backend_env()
    assert env["POSTGRES_HOST"] == "10.0.0.31"
    assert not any(key.startswith("REDIS_SENTINEL") or key == "POSTGRES_TARGET_SESSION_ATTRS" for key in env)


def test_backend_env_ha_lists_every_postgres_host_and_the_sentinels():
    env = _backend_env(
        backend_postgresql_hosts=["10.0.0.31", "10.0.0.32", "10.0.0.33"],
        backend_redis_sentinels=["10.0.0.31:26379", "10.0.0.32:26379", "10.0.0.33:26379"],
        backend_redis_sentinel_user="adg-sentinel-client",
        backend_redis_sentinel_password=PASSWORD,
    )
    assert env["POSTGRES_HOST"] == "10.0.0.31,10.0.0.32,10.0.0.33"
    assert env["REDIS_SENTINELS"] == "10.0.0.31:26379,10.0.0.32:26379,10.0.0.33:26379"
    assert env["REDIS_SENTINEL_MASTER"] == "autodealgenie"
    assert env["REDIS_SENTINEL_USERNAME"] == "adg-sentinel-client"
