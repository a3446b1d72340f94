"""Fixtures: real PostgreSQL, Redis and nx-27017 (MongoDB wire protocol) started for the session."""

from __future__ import annotations

import pytest
from appsupport import SEED_VEHICLES, env_for, register
from autodealgenie.app import create_app
from autodealgenie.config import Config
from autodealgenie.migrate import migrate
from autodealgenie.seed import seed_vehicles

from tests.support.datastores import start_mongodb, start_postgres, start_redis


@pytest.fixture(scope="session")
def datastores(tmp_path_factory):
    base = tmp_path_factory.mktemp("datastores")
    pg = start_postgres(base)
    redis_instance = start_redis(base)
    mongo = start_mongodb(base)
    try:
        yield {"pg": pg, "redis": redis_instance, "mongo": mongo}
    finally:
        for instance in (mongo, redis_instance, pg):
            instance.stop()


@pytest.fixture(scope="session")
def make_config(datastores):
    def factory(**extra) -> Config:
        return Config.from_env(env_for(datastores["pg"], datastores["redis"], datastores["mongo"], **extra))

    return factory


@pytest.fixture(scope="session")
def migrated(make_config):
    config = make_config()
    migrate(config)
    seed_vehicles(config, SEED_VEHICLES, 42)
    return config


@pytest.fixture(scope="session")
def app(migrated):
    return create_app(migrated)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(client):
    return register(client)
