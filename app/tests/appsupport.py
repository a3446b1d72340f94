"""Helpers shared by the app tests (a module name unlikely to clash with other test suites)."""

from __future__ import annotations

import itertools

from prometheus_client import REGISTRY

from tests.support.appenv import app_env

SEED_VEHICLES = 400
_counter = itertools.count(1)


def env_for(pg, redis_instance, mongo, **extra) -> dict[str, str]:
    """The service environment pointing at the test datastores (also used for gunicorn subprocesses)."""
    quick_failures = {
        "MONGODB_DB_NAME": "autodealgenie_test",
        "HEALTH_CHECK_TIMEOUT": 1,
        "REDIS_TIMEOUT": 0.3,
        "REDIS_RETRY_INTERVAL": 0.5,
        "MONGODB_TIMEOUT_MS": 1000,
        # every test logs in from 127.0.0.1; the per-address limit has its own test
        "LOGIN_MAX_ATTEMPTS_PER_ADDRESS": 100000,
        "SIGNUP_MAX_PER_ADDRESS": 100000,  # likewise every signup; the limit has its own test
    }
    return app_env(pg, redis_instance, mongo.url, **{**quick_failures, **extra})


def unique(prefix: str = "user") -> str:
    return f"{prefix}{next(_counter)}x{id(_counter) % 10000}"


class User:
    def __init__(self, client, email, username, password, tokens):
        self.client, self.email, self.username, self.password = client, email, username, password
        self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.access}"}


def register(client, password="correct-horse-9") -> User:  # noqa: S107 - test password
    name = unique()
    email = f"{name}@example.test"
    response = client.post(
        "/api/v1/auth/signup", json={"email": email, "username": name, "password": password}
    )
    assert response.status_code == 201, response.get_json()
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    # the test client keeps cookies: drop them so each user authenticates by header only
    client.delete_cookie("access_token")
    client.delete_cookie("refresh_token")
    return User(client, email, name, password, response.get_json())


def sample(name: str, labels: dict | None = None) -> float:
    """Current value of a sample in the (single-process) default registry; 0 when absent."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


DEAL = {
    "customer_name": "Ada Buyer",
    "customer_email": "ada@example.test",
    "vehicle_make": "Toyota",
    "vehicle_model": "Camry",
    "vehicle_year": 2021,
    "vehicle_mileage": 42000,
    "vehicle_vin": "4T1BF1FK5MU123456",
    "asking_price": 24500,
}
