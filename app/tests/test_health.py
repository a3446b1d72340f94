from __future__ import annotations

import time

import pytest
from autodealgenie.app import create_app

from tests.support.datastores import free_port, start_redis

TIMEOUT = 1.0  # HEALTH_CHECK_TIMEOUT in the test environment


def test_liveness_endpoints(client):
    assert client.get("/health").get_json() == {"status": "healthy"}
    body = client.get("/api/v1/health").get_json()
    assert body["status"] == "healthy" and "T" in body["timestamp"]
    root = client.get("/").get_json()
    assert root["message"] == "Welcome to AutoDealGenie API" and root["version"] == "1.0.0"


def test_detailed_healthy(client):
    response = client.get("/api/v1/health/detailed")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy"
    assert body["services"] == {"postgres": "healthy", "redis": "healthy", "mongodb": "healthy"}


@pytest.mark.parametrize("failure", ["stopped", "hung"])
def test_redis_down_gives_503_degraded_quickly_and_auth_fails_closed(make_config, migrated, failure):
    redis_instance = start_redis()
    try:
        app = create_app(make_config(REDIS_PORT=redis_instance.port))
        client = app.test_client()
        assert client.get("/api/v1/health/detailed").status_code == 200
        if failure == "stopped":
            redis_instance.stop()
        else:
            redis_instance.pause()  # accepts TCP, never answers
        start = time.monotonic()
        response = client.get("/api/v1/health/detailed")
        elapsed = time.monotonic() - start
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "degraded"
        assert body["services"] == {"postgres": "healthy", "redis": "unhealthy", "mongodb": "healthy"}
        assert elapsed < TIMEOUT + 0.5, f"took {elapsed:.2f}s"
        # degraded: auth state fails closed (503 + Retry-After, quickly), never silently skipped;
        # tests/test_auth_fail_closed.py covers every auth endpoint
        name = f"degraded{failure}{int(time.time() * 1000)}"
        start = time.monotonic()
        for path, body in (
            (
                "/api/v1/auth/signup",
                {"email": f"{name}@example.test", "username": name, "password": "longenough1"},
            ),
            ("/api/v1/auth/login", {"email": f"{name}@example.test", "password": "longenough1"}),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1, path
            assert "unavailable" in response.get_json()["detail"]
        assert time.monotonic() - start < 2 * TIMEOUT
        assert client.get("/api/v1/health").status_code == 200
    finally:
        redis_instance.stop()


def test_redis_with_password(make_config, migrated):
    redis_instance = start_redis(password="redis-secret")
    try:
        good = create_app(make_config(REDIS_PORT=redis_instance.port, REDIS_PASSWORD="redis-secret"))
        assert good.test_client().get("/api/v1/health/detailed").status_code == 200
        bad = create_app(make_config(REDIS_PORT=redis_instance.port, REDIS_PASSWORD="wrong"))
        response = bad.test_client().get("/api/v1/health/detailed")
        assert response.status_code == 503 and response.get_json()["services"]["redis"] == "unhealthy"
    finally:
        redis_instance.stop()


def test_hung_mongodb_gives_503_quickly(make_config, migrated):
    from tests.support.datastores import start_mongodb

    mongo = start_mongodb()
    try:
        client = create_app(make_config(MONGODB_URL=mongo.url)).test_client()
        assert client.get("/api/v1/health/detailed").status_code == 200
        mongo.pause()
        start = time.monotonic()
        response = client.get("/api/v1/health/detailed")
        assert time.monotonic() - start < TIMEOUT + 0.5
        assert response.status_code == 503 and response.get_json()["services"]["mongodb"] == "unhealthy"
    finally:
        mongo.stop()


def test_all_dependencies_down(make_config, migrated):
    dead = free_port()
    client = create_app(
        make_config(POSTGRES_PORT=dead, REDIS_PORT=dead, MONGODB_URL=f"mongodb://127.0.0.1:{dead}")
    ).test_client()
    start = time.monotonic()
    response = client.get("/api/v1/health/detailed")
    assert time.monotonic() - start < TIMEOUT + 0.5
    assert response.status_code == 503
    assert set(response.get_json()["services"].values()) == {"unhealthy"}
    assert client.get("/health").status_code == 200, "liveness checks no dependency"
    # database down: a JSON 503, never a 500
    login = client.post("/api/v1/auth/login", json={"email": "a@b.test", "password": "whatever1"})
    assert login.status_code == 503 and login.is_json


def test_dead_pooled_connections_are_replaced(make_config, migrated, datastores, monkeypatch):
    """A server-side disconnect costs at most one 503 (never a 500); with pre-ping it costs nothing."""
    import psycopg2
    from autodealgenie import db
    from autodealgenie.services import EXTENSION

    app = create_app(make_config())
    client = app.test_client()

    def login_status():
        response = client.post("/api/v1/auth/login", json={"email": "x@y.test", "password": "whatever1"})
        assert response.is_json
        return response.status_code

    assert login_status() == 401
    pool = app.extensions[EXTENSION].db._pool

    def kill_pooled_backends():
        pids = [conn.get_backend_pid() for conn in pool._pool]
        assert pids
        with psycopg2.connect(datastores["pg"].superuser_dsn) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))

    kill_pooled_backends()
    assert login_status() in (401, 503)
    assert login_status() == 401

    monkeypatch.setattr(db, "PRE_PING_AFTER_SECONDS", -1.0)
    kill_pooled_backends()
    assert login_status() == 401
