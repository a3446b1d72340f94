"""Migrations (idempotent, concurrent, tamper-evident) and the console script's commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
from appsupport import env_for
from autodealgenie.config import Config
from autodealgenie.migrate import Migration, MigrationError, migrate, packaged_migrations
from autodealgenie.seed import generate

CLI = str(Path(sys.executable).parent / "autodealgenie")


@pytest.fixture
def fresh_db(datastores, request):
    """An empty database owned by the app role, dropped afterwards."""
    pg = datastores["pg"]
    name = f"fresh_{request.node.name.lower()[:40]}".replace("[", "_").replace("]", "_").replace("-", "_")
    admin = psycopg2.connect(pg.superuser_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}" OWNER "{pg.user}"')
    env = env_for(pg, datastores["redis"], datastores["mongo"], POSTGRES_DB=name)
    yield env
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def cli(env: dict, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], env={**os.environ, **env}, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_migrate_is_idempotent(fresh_db):
    first = cli(fresh_db, "migrate")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    versions = [m.version for m in packaged_migrations()]
    assert result == {"changed": True, "applied": versions, "current": versions[-1]}
    second = json.loads(cli(fresh_db, "migrate").stdout)
    assert second == {"changed": False, "applied": [], "current": versions[-1]}


def test_concurrent_migrations_apply_each_version_once(fresh_db):
    config = Config.from_env(fresh_db)
    with ThreadPoolExecutor(6) as pool:  # six "hosts" at once
        results = list(pool.map(lambda _: migrate(config), range(6)))
    applied = [v for r in results for v in r["applied"]]
    assert sorted(applied) == [m.version for m in packaged_migrations()]
    assert sum(r["changed"] for r in results) == 1


def test_changed_or_unknown_migrations_are_refused(fresh_db):
    config = Config.from_env(fresh_db)
    migrations = packaged_migrations()
    migrate(config, migrations)
    tampered = [
        *migrations[:-1],
        Migration(migrations[-1].version, migrations[-1].name, migrations[-1].sql + "\n-- edit"),
    ]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(config, tampered)
    with pytest.raises(MigrationError, match="does not know"):
        migrate(config, migrations[:-1])
    extra = Migration(9999, "test_add_column", "ALTER TABLE users ADD COLUMN test_flag boolean;")
    assert migrate(config, [*migrations, extra])["applied"] == [9999]


def test_failed_migration_rolls_back_and_is_retried(fresh_db):
    config = Config.from_env(fresh_db)
    migrations = packaged_migrations()
    broken = Migration(9998, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();")
    with pytest.raises(psycopg2.Error):
        migrate(config, [*migrations, broken])
    result = migrate(config, migrations)
    assert result["changed"] is False and result["current"] == migrations[-1].version
    with psycopg2.connect(**config.postgres_dsn_params) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('half_done')")
        assert cur.fetchone() == (None,)


def test_seed_is_deterministic_and_idempotent(fresh_db):
    assert cli(fresh_db, "migrate").returncode == 0
    first = json.loads(cli(fresh_db, "seed", "--vehicles", "150").stdout)
    assert first == {"changed": True, "inserted": 150, "total": 150}
    assert json.loads(cli(fresh_db, "seed", "--vehicles", "150").stdout) == {
        "changed": False,
        "inserted": 0,
        "total": 150,
    }
    assert generate(20, 7) == generate(20, 7)
    assert generate(20, 7) != generate(20, 8)
    vins = [v["vin"] for v in generate(500, 42)]
    assert len(set(vins)) == 500
    from autodealgenie.pricing import vin_check_digit, vin_model_year

    for v in generate(50, 42):
        assert v["vin"][8] == vin_check_digit(v["vin"]) and vin_model_year(v["vin"]) == v["year"]
        assert v["price"] > 0 and v["mileage"] >= 0


def test_create_admin_is_idempotent(fresh_db):
    assert cli(fresh_db, "migrate").returncode == 0
    env = {**fresh_db, "ADMIN_PASSWORD": "admin-password-1"}
    args = ("create-admin", "--email", "Admin@Example.test", "--username", "admin")
    created = json.loads(cli(env, *args).stdout)
    assert created["changed"] is True and created["action"] == "created"
    assert json.loads(cli(env, *args).stdout)["action"] == "unchanged"
    updated = cli(fresh_db, *args, "--password-stdin", stdin="another-password-2\n")
    assert json.loads(updated.stdout)["action"] == "updated"
    short = cli({**fresh_db, "ADMIN_PASSWORD": "short"}, *args)
    assert short.returncode != 0 and "8-128" in short.stderr
    bad = cli(env, "create-admin", "--email", "nope", "--username", "admin")
    assert bad.returncode != 0 and "email" in bad.stderr


def test_cli_reports_database_errors_without_traceback(datastores):
    env = env_for(datastores["pg"], datastores["redis"], datastores["mongo"], POSTGRES_PASSWORD="wrong")
    result = cli(env, "migrate")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "Error:" in result.stderr


def test_check_config(datastores):
    env = env_for(datastores["pg"], datastores["redis"], datastores["mongo"])
    ok = cli(env, "check-config")
    assert ok.returncode == 0
    settings = json.loads(ok.stdout)["settings"]
    assert settings["postgres_port"] == datastores["pg"].port
    assert "postgres_password" not in settings and "jwt_secret_key" not in settings
    bad = cli(
        {**env, "ENVIRONMENT": "production", "POSTGRES_PORT": "abc", "METRICS_ALLOWED_CIDRS": "300.1.1.1/8"},
        "check-config",
    )
    assert bad.returncode == 1
    for fragment in ("POSTGRES_PORT", "SECRET_KEY", "JWT_SECRET_KEY", "METRICS_ALLOWED_CIDRS"):
        assert fragment in bad.stderr
