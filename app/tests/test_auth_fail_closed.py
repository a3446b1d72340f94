"""Auth state fails closed, the cache fails open, and eviction cannot reach security keys.

Each test runs its own redis-server (stopped, SIGSTOPped or squeezed by maxmemory) next to the
session's PostgreSQL and MongoDB stand-in.
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from appsupport import register, unique
from autodealgenie.app import create_app
from autodealgenie.ratelimit import EXPIRY_INDEX, limit_address
from autodealgenie.security import REVOKED_TOKENS, revoke
from autodealgenie.services import EXTENSION

from tests.support.datastores import start_redis

TIMEOUT = 0.3  # REDIS_TIMEOUT of the test environment (appsupport.env_for)
EVALUATION = {
    "vehicle_vin": "4T1BF1FK5MU123456",
    "asking_price": 21000,
    "condition": "good",
    "mileage": 36000,
}


def user_id(svc, tokens) -> int:
    return int(svc.tokens.decode(tokens["access_token"], "access")["sub"])


@pytest.fixture
def own_redis(tmp_path):
    instance = start_redis(tmp_path)
    yield instance
    instance.stop()


def raw(instance) -> redis.Redis:
    return redis.Redis(host=instance.host, port=instance.port, decode_responses=True)


def tokens_for(client, user) -> dict:
    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200, response.get_json()
    client.delete_cookie("access_token")
    client.delete_cookie("refresh_token")
    return response.get_json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_503(response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert body["status"] == 503 and "unavailable" in body["detail"], what
    assert int(response.headers["Retry-After"]) >= 1, what


@pytest.mark.parametrize("failure", ["stopped", "hung"])
def test_redis_down_or_hung_fails_auth_state_closed(make_config, migrated, own_redis, failure):
    app = create_app(make_config(REDIS_PORT=own_redis.port))
    client = app.test_client()
    user = register(client)
    revoked = tokens_for(client, user)
    assert (
        client.post("/api/v1/auth/logout", headers=bearer(revoked["access_token"]), json=revoked).status_code
        == 200
    )
    live = tokens_for(client, user)

    own_redis.stop() if failure == "stopped" else own_redis.pause()  # paused: accepts TCP, never answers
    try:
        start = time.monotonic()
        assert_503(client.get("/api/v1/auth/me", headers=bearer(live["access_token"])), "valid access token")
        assert time.monotonic() - start < TIMEOUT + 0.5, "one Redis timeout, no retries"
        assert_503(
            client.get("/api/v1/auth/me", headers=bearer(revoked["access_token"])), "revoked access token"
        )
        assert_503(
            client.post("/api/v1/auth/refresh", json={"refresh_token": revoked["refresh_token"]}),
            "revoked refresh",
        )
        assert_503(
            client.post("/api/v1/auth/refresh", json={"refresh_token": live["refresh_token"]}), "refresh"
        )
        wrong = [
            client.post("/api/v1/auth/login", json={"email": user.email, "password": "wrong-password"})
            for _ in range(20)
        ]
        for response in wrong:  # no 401: an unlimited password oracle is exactly what must not exist
            assert_503(response, "wrong password")
        assert_503(
            client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password}),
            "right password",
        )
        name = unique("closed")
        assert_503(
            client.post(
                "/api/v1/auth/signup",
                json={"email": f"{name}@example.test", "username": name, "password": "longenough1"},
            ),
            "signup",
        )
        assert_503(
            client.post("/api/v1/auth/logout", headers=bearer(live["access_token"]), json=live), "logout"
        )
        assert_503(
            client.post("/api/v1/cars/search", json={"make": "Ford"}, headers=bearer(live["access_token"])),
            "search",
        )
        # what needs no auth state still answers
        assert client.get("/api/v1/health").status_code == 200
        assert client.get("/api/v1/cars/health").status_code == 200
        if failure == "hung":
            own_redis.resume()
            time.sleep(0.6)  # REDIS_RETRY_INTERVAL of the test environment
            assert client.get("/api/v1/auth/me", headers=bearer(live["access_token"])).status_code == 200
            again = client.get("/api/v1/auth/me", headers=bearer(revoked["access_token"]))
            assert again.status_code == 401 and again.get_json()["detail"] == "Token revoked"
    finally:
        own_redis.resume() if failure == "hung" else None


def test_full_redis_fails_cache_open_and_auth_writes_closed(make_config, migrated, own_redis):
    """maxmemory reached with nothing evictable: Redis refuses writes (OOM) but still answers reads."""
    app = create_app(make_config(REDIS_PORT=own_redis.port))
    svc = app.extensions[EXTENSION]
    client = app.test_client()
    user = register(client)
    live = tokens_for(client, user)
    store = raw(own_redis)
    store.config_set("maxmemory-policy", "volatile-lru")
    # One byte: below anything Redis ever uses, so every write is refused once the keys with a TTL are
    # evicted. A limit a margin under used_memory was not enough: used_memory moves by tens of kB as
    # client buffers come and go, and a logout got through in CI with 150 kB of margin.
    store.config_set("maxmemory", "1")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        store.set("probe", "1")
    try:
        for _ in range(3):
            response = client.post(
                "/api/v1/deals/evaluate", json=EVALUATION, headers=bearer(live["access_token"])
            )
            assert response.status_code == 200, response.get_json()
            assert response.get_json()["cached"] is False, "the cache write failed, silently"
        assert not svc.redis.breaker.is_open, "an OOM reply must not take Redis away from auth reads"
        assert client.get("/api/v1/auth/me", headers=bearer(live["access_token"])).status_code == 200
        # auth state is never skipped: a limit that cannot be counted refuses the request
        window = f"rate_limit:user:{user_id(svc, live)}"
        before = store.zcard(window)
        search = client.post(
            "/api/v1/cars/search", json={"make": "Kia"}, headers=bearer(live["access_token"])
        )
        if search.status_code == 200:  # Redis 7.0 lets a script write once it has written (ZREMRANGEBYSCORE)
            assert store.zcard(window) == before + 1, "admitted, so it must have been counted"
            assert search.get_json()["vehicles"] and search.get_json()["cached"] is False
        else:
            assert_503(search, "search")
            assert store.zcard(window) == before
        # the login counter's script writes first with SET/INCR, which Redis refuses: never admitted
        attempts = f"rate_limit:login:address:{limit_address('127.0.0.1')}"  # the test client's address
        counted = int(store.get(attempts) or 0)
        login = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
        assert_503(login, "login")
        assert int(store.get(attempts) or 0) == counted, "refused, so nothing was counted"
        assert_503(
            client.post("/api/v1/auth/logout", headers=bearer(live["access_token"]), json=live), "logout"
        )
        assert client.get("/api/v1/auth/me", headers=bearer(live["access_token"])).status_code == 200
    finally:
        store.config_set("maxmemory", "0")
    assert (
        client.post("/api/v1/auth/logout", headers=bearer(live["access_token"]), json=live).status_code == 200
    )
    assert client.get("/api/v1/auth/me", headers=bearer(live["access_token"])).status_code == 401


FLOOD_VALUE_BYTES = 10_000
FLOOD_KEYS = 4_000  # ~40 MB of cache through a 16 MB Redis
REVOCATIONS = 3_000
ADDRESSES = 200


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-ttl", "allkeys-lru"])
def test_security_keys_survive_a_cache_flood(make_config, migrated, own_redis, policy, capsys):
    store = raw(own_redis)
    store.config_set("maxmemory", "16mb")
    store.config_set("maxmemory-policy", policy)
    app = create_app(make_config(REDIS_PORT=own_redis.port, LOGIN_MAX_FAILURES_PER_ACCOUNT=3))
    svc = app.extensions[EXTENSION]
    client = app.test_client()
    user = register(client)
    logged_out = tokens_for(client, user)
    assert (
        client.post(
            "/api/v1/auth/logout", headers=bearer(logged_out["access_token"]), json=logged_out
        ).status_code
        == 200
    )
    live = tokens_for(client, user)
    expires = int(time.time()) + 3600
    with app.app_context():
        for _ in range(REVOCATIONS):
            assert revoke(svc.redis, {"jti": uuid.uuid4().hex, "exp": expires})
    attacker = "198.51.100.99"
    for _ in range(3):
        response = client.post(
            "/api/v1/auth/login",
            json={"email": user.email, "password": "wrong-password"},
            environ_base={"REMOTE_ADDR": attacker},
        )
        assert response.status_code == 401
    for i in range(ADDRESSES):  # one attempt from each of many addresses: per-address counters
        client.post(
            "/api/v1/auth/login",
            json={"email": f"nobody{i}@example.test", "password": "x"},
            environ_base={"REMOTE_ADDR": f"203.0.113.{i % 250}" if i < 250 else f"192.0.2.{i % 250}"},
        )
    revoked_before = store.zcard(REVOKED_TOKENS)
    counters_before = store.zcard(EXPIRY_INDEX)
    assert revoked_before == REVOCATIONS + 2 and counters_before >= ADDRESSES

    payload = "v" * FLOOD_VALUE_BYTES
    for i in range(FLOOD_KEYS):
        svc.redis.cache_set("car_search", f"car_search:flood{i}", payload, 900)
    evicted = store.info("stats")["evicted_keys"]
    memory = store.info("memory")
    assert evicted > FLOOD_KEYS / 2, "the flood did not squeeze Redis: the test would prove nothing"
    revoked_after = store.zcard(REVOKED_TOKENS)
    counters_after = sum(1 for key in store.zrange(EXPIRY_INDEX, 0, -1) if store.exists(key))
    with capsys.disabled():
        print(
            f"\n  {policy}: flooded {FLOOD_KEYS * FLOOD_VALUE_BYTES / 1e6:.0f} MB of cache into "
            f"maxmemory {memory['maxmemory'] / 2**20:.0f} MiB, {evicted} keys evicted; revocations "
            f"{revoked_before} -> {revoked_after}, rate-limit keys {counters_before} -> {counters_after}"
        )
    if policy == "allkeys-lru":  # the layout needs a volatile-* policy; this is what it prevents
        assert revoked_after < revoked_before or counters_after < counters_before
        return

    assert revoked_after == revoked_before and counters_after == counters_before
    replay = client.get("/api/v1/auth/me", headers=bearer(logged_out["access_token"]))
    assert replay.status_code == 401 and replay.get_json()["detail"] == "Token revoked"
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": logged_out["refresh_token"]})
    assert reuse.status_code == 401 and reuse.get_json()["detail"] == "Token revoked"
    locked = client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": user.password},
        environ_base={"REMOTE_ADDR": attacker},
    )
    assert locked.status_code == 429, "the lock-out survived the flood"
    # the cache keeps working: the newest entries are there (approximate LRU may take a few of them)
    # and a fresh write is read back
    recent = [
        svc.redis.cache_get("car_search", f"car_search:flood{i}") for i in range(FLOOD_KEYS - 20, FLOOD_KEYS)
    ]
    assert recent[-1] == payload and recent.count(payload) >= 10
    svc.redis.cache_set("car_search", "car_search:after-flood", "fresh", 900)
    assert svc.redis.cache_get("car_search", "car_search:after-flood") == "fresh"
    search = client.post("/api/v1/cars/search", json={"make": "Honda"}, headers=bearer(live["access_token"]))
    assert search.status_code == 200
    again = client.post("/api/v1/cars/search", json={"make": "Honda"}, headers=bearer(live["access_token"]))
    assert again.status_code == 200 and again.get_json()["cached"] is True
