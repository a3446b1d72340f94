from __future__ import annotations

import time
import uuid

import pytest
from appsupport import register, sample, unique
from autodealgenie.app import create_app
from autodealgenie.services import EXTENSION


def test_signup_returns_user_without_password_and_counts(client):
    before = sample("autodealgenie_user_signups_total")
    name = unique()
    response = client.post(
        "/api/v1/auth/signup",
        json={
            "email": f"{name}@Example.test",
            "username": name,
            "password": "longenough1",
            "full_name": "A B",
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == f"{name}@example.test" and body["username"] == name
    assert "hashed_password" not in body and body["is_superuser"] is False
    assert sample("autodealgenie_user_signups_total") == before + 1


def test_signup_duplicates_conflict_with_one_uniform_answer(client, user):
    email_taken = client.post(
        "/api/v1/auth/signup",
        json={"email": user.email.upper(), "username": unique(), "password": "longenough1"},
    )
    username_taken = client.post(
        "/api/v1/auth/signup",
        json={"email": f"{unique()}@example.test", "username": user.username, "password": "longenough1"},
    )
    both_taken = client.post(
        "/api/v1/auth/signup",
        json={"email": user.email, "username": user.username, "password": "longenough1"},
    )
    assert email_taken.status_code == username_taken.status_code == both_taken.status_code == 409
    assert email_taken.get_data() == username_taken.get_data() == both_taken.get_data()
    assert email_taken.get_json()["detail"] == "An account with this email or username already exists"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "username": "abc", "password": "longenough1"},
        {"email": "a@b.test", "username": "ab", "password": "longenough1"},
        {"email": "a@b.test", "username": "abc", "password": "short"},
        {"email": "a@b.test", "username": "abc", "password": "x" * 129},
        {"email": "a@b.test", "username": "abc", "password": "longenough1", "is_superuser": True},
        {"email": "a@b.test", "username": "abc"},
        {"email": 5, "username": ["abc"], "password": None},
    ],
)
def test_signup_rejects_bad_input(client, payload):
    response = client.post("/api/v1/auth/signup", json=payload)
    assert response.status_code == 422
    assert response.get_json()["errors"]


@pytest.mark.parametrize(
    "data,content_type",
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ("email=x", "text/plain"),
        ("", None),
    ],
)
def test_non_object_bodies_are_400(client, data, content_type):
    response = client.post("/api/v1/auth/signup", data=data, content_type=content_type)
    assert response.status_code == 400
    assert response.is_json and "JSON object" in response.get_json()["detail"]


def test_login_success_and_failures_are_counted(client, user):
    ok, bad = sample("autodealgenie_auth_success_total"), sample("autodealgenie_auth_failures_total")
    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "bearer" and body["access_token"] and body["refresh_token"]
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("access_token=") and "HttpOnly" in c and "SameSite=Lax" in c for c in cookies)
    assert any(c.startswith("refresh_token=") and "HttpOnly" in c for c in cookies)
    assert (
        client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": "wrong-password"}
        ).status_code
        == 401
    )
    response = client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.test", "password": "whatever1"}
    )
    assert response.status_code == 401 and response.get_json()["detail"] == "Incorrect email or password"
    assert sample("autodealgenie_auth_success_total") == ok + 1
    assert sample("autodealgenie_auth_failures_total") == bad + 2


def test_me_with_bearer_header_and_with_cookie(app, user):
    client = app.test_client()
    assert client.get("/api/v1/auth/me").status_code == 401
    response = client.get("/api/v1/auth/me", headers=user.headers)
    assert response.status_code == 200 and response.get_json()["email"] == user.email
    cookie_client = app.test_client()
    assert (
        cookie_client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": user.password}
        ).status_code
        == 200
    )
    response = cookie_client.get("/api/v1/auth/me")  # cookie only
    assert response.status_code == 200 and response.get_json()["username"] == user.username


@pytest.mark.parametrize(
    "header,detail",
    [
        ("Bearer not.a.jwt", "Invalid token"),
        (
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwidHlwZSI6ImFjY2VzcyIsImV4cCI6OTk5OTk5OTk5OX0.bad",
            "Invalid token",
        ),
    ],
)
def test_invalid_tokens_are_401(client, header, detail):
    response = client.get("/api/v1/auth/me", headers={"Authorization": header})
    assert response.status_code == 401 and response.get_json()["detail"] == detail


def test_refresh_token_is_not_an_access_token_and_vice_versa(client, user):
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {user.refresh}"})
    assert response.status_code == 401 and response.get_json()["detail"] == "Invalid token type"
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": user.access})
    assert response.status_code == 401 and response.get_json()["detail"] == "Invalid token type"


def test_refresh_rotates_and_old_token_is_revoked(client, user):
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert response.status_code == 200
    new = response.get_json()
    assert (
        client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code
        == 200
    )
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert reused.status_code == 401 and reused.get_json()["detail"] == "Token revoked"
    # refresh from the cookie set by the previous refresh
    assert client.post("/api/v1/auth/refresh").status_code == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": 123}).status_code == 422


def test_logout_revokes_access_and_refresh_tokens_and_clears_cookies(app, user):
    client = app.test_client()
    tokens = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    ).get_json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/api/v1/auth/me", headers=bearer).status_code == 200
    response = client.post("/api/v1/auth/logout")  # cookies only
    assert response.status_code == 200
    cleared = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("access_token=;") for c in cleared) and any(
        c.startswith("refresh_token=;") for c in cleared
    )
    assert client.get("/api/v1/auth/me").status_code == 401
    # the access token itself, replayed by header after logout, is revoked
    replay = app.test_client().get("/api/v1/auth/me", headers=bearer)
    assert replay.status_code == 401 and replay.get_json()["detail"] == "Token revoked"
    assert app.test_client().get("/api/v1/users/me/preferences", headers=bearer).status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401 and refreshed.get_json()["detail"] == "Token revoked"
    assert (
        client.post("/api/v1/auth/logout", data="garbage", content_type="application/json").status_code == 200
    )


def test_logout_by_header_and_body_revokes_both(app, user):
    client = app.test_client()
    tokens = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    ).get_json()
    client.delete_cookie("access_token")
    client.delete_cookie("refresh_token")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=bearer
    )
    assert response.status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer).get_json()["detail"] == "Token revoked"
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).get_json()[
            "detail"
        ]
        == "Token revoked"
    )
    # other sessions of the same user are untouched
    assert client.get("/api/v1/auth/me", headers=user.headers).status_code == 200


def test_access_tokens_carry_a_jti_and_tokens_without_one_are_refused(app, user):
    import jwt

    svc = app.extensions[EXTENSION]
    claims = svc.tokens.decode(user.access, "access")
    assert len(claims["jti"]) == 32
    assert svc.tokens.decode(svc.tokens.issue(1, "access"), "access")["jti"] != claims["jti"]
    key = svc.config.jwt_secret_key
    for extra in ({"jti": None}, {"jti": 7}, {"jti": "x" * 65}, {"jti": "a:b"}, {"jti": ""}):
        forged = {k: v for k, v in claims.items() if k != "jti"} | extra
        if extra["jti"] is None:
            del forged["jti"]
        token = jwt.encode(forged, key, algorithm="HS256")
        response = app.test_client().get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, extra


def test_a_refresh_token_works_once_even_concurrently(app, user, datastores):
    from concurrent.futures import ThreadPoolExecutor

    tokens = (
        app.test_client()
        .post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
        .get_json()
    )

    def use(_):
        return app.test_client().post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(r.status_code for r in pool.map(use, range(8)))
    assert statuses == [200] + [401] * 7


def login(client, user, password=None, address="127.0.0.1", **kwargs):
    return client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": password or user.password},
        environ_base={"REMOTE_ADDR": address},
        **kwargs,
    )


def test_a_stranger_cannot_lock_the_owner_out(make_config, migrated):
    client = create_app(make_config(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)).test_client()
    user = register(client)
    attacker, owner = "198.51.100.66", "203.0.113.10"
    for _ in range(3):
        assert login(client, user, "bad-password", attacker).status_code == 401
    locked = login(client, user, address=attacker)
    assert locked.status_code == 429, "even the right password is refused from the address that guessed"
    assert "account" in locked.get_json()["detail"]
    assert 1 <= int(locked.headers["Retry-After"]) <= 900
    for _ in range(3):  # the attacker keeps going; the owner elsewhere is never locked out
        assert login(client, user, "bad-password", attacker).status_code == 429
        assert login(client, user, address=owner).status_code == 200
    other = register(client)  # other accounts from the attacker's address are not affected
    assert login(client, other, address=attacker).status_code == 200


def test_a_successful_login_clears_the_failures_from_that_address(make_config, migrated):
    client = create_app(make_config(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)).test_client()
    user = register(client)
    for _ in range(2):
        assert login(client, user, "bad-password").status_code == 401
    assert login(client, user).status_code == 200
    for _ in range(2):
        assert login(client, user, "bad-password").status_code == 401
    assert login(client, user).status_code == 200


def test_login_rate_limit_per_address(make_config, client):
    user = register(client)
    client = create_app(make_config(LOGIN_MAX_ATTEMPTS_PER_ADDRESS=4)).test_client()
    for _ in range(4):
        assert login(client, user, address="192.0.2.77").status_code == 200
    response = login(client, user, address="192.0.2.77")
    assert response.status_code == 429 and "address" in response.get_json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    assert login(client, user, address="192.0.2.78").status_code == 200


def test_ipv6_clients_are_limited_per_64(make_config, client):
    user = register(client)
    client = create_app(make_config(LOGIN_MAX_ATTEMPTS_PER_ADDRESS=2)).test_client()
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::ffff"):
        assert login(client, user, address=host).status_code == 200
    assert login(client, user, address="2001:db8:1:2:abcd::9").status_code == 429, "same /64"
    assert login(client, user, address="2001:db8:1:3::1").status_code == 200, "another /64"


def signup(client, address="127.0.0.1", **kwargs):
    name = unique("signup")
    body = {"email": f"{name}@example.test", "username": name, "password": "longenough1"} | kwargs
    return client.post("/api/v1/auth/signup", json=body, environ_base={"REMOTE_ADDR": address})


def test_signup_limit_per_address(make_config, migrated):
    client = create_app(make_config(SIGNUP_MAX_PER_ADDRESS=3, SIGNUP_RATE_WINDOW=600)).test_client()
    assert signup(client, "192.0.2.90").status_code == 201
    assert signup(client, "192.0.2.90").status_code == 201
    taken = signup(client, "192.0.2.91").get_json()["username"]
    assert signup(client, "192.0.2.90", username=taken).status_code == 409, "a conflict counts too"
    assert signup(client, "192.0.2.90", email="invalid").status_code == 422, "invalid bodies are not counted"
    refused = signup(client, "192.0.2.90")
    assert refused.status_code == 429 and "signups" in refused.get_json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    assert signup(client, "192.0.2.91").status_code == 201, "other addresses are not affected"


def test_thirty_signups_from_one_address_hit_the_default_limit(make_config, migrated):
    from autodealgenie.config import Config

    limit = Config().signup_max_per_address
    assert limit < 30
    client = create_app(make_config(SIGNUP_MAX_PER_ADDRESS=limit)).test_client()
    statuses = [signup(client, "192.0.2.120").status_code for _ in range(30)]
    assert statuses == [201] * limit + [429] * (30 - limit)


def test_security_keys_carry_no_ttl_and_the_app_prunes_them(make_config, migrated, datastores):
    import redis
    from autodealgenie.ratelimit import EXPIRY_INDEX
    from autodealgenie.security import REVOKED_TOKENS

    app = create_app(make_config(LOGIN_RATE_WINDOW=1, SIGNUP_RATE_WINDOW=1))
    client = app.test_client()
    user = register(client)
    store = redis.Redis(port=datastores["redis"].port, decode_responses=True)
    addresses = [f"192.0.2.{i}" for i in range(200, 220)]
    for address in addresses:
        assert login(client, user, "bad-password", address).status_code == 401
    keys = [k for a in addresses for k in store.keys(f"rate_limit:*{a}")]
    assert len(keys) == 2 * len(addresses)  # attempts per address + failures per account and address
    assert all(store.ttl(k) == -1 for k in keys), "no TTL: volatile-lru can never evict them"
    assert store.ttl(REVOKED_TOKENS) in (-1, -2) and store.ttl(EXPIRY_INDEX) == -1
    time.sleep(1.1)
    assert app.extensions[EXTENSION].limiter.prune() >= len(keys)
    assert not [k for a in addresses for k in store.keys(f"rate_limit:*{a}")]
    assert not [m for m in store.zrange(EXPIRY_INDEX, 0, -1) if any(m.endswith(a) for a in addresses)]


def test_expired_revocations_are_pruned(app, user, datastores):
    import redis
    from autodealgenie.security import REVOKED_TOKENS, revoke

    store = redis.Redis(port=datastores["redis"].port, decode_responses=True)
    svc = app.extensions[EXTENSION]
    stale = {"jti": "stale" + uuid.uuid4().hex[:16], "exp": int(time.time()) + 1}
    with app.app_context():
        assert revoke(svc.redis, stale) is True
        assert revoke(svc.redis, stale) is False, "already revoked"
        assert store.zscore(REVOKED_TOKENS, stale["jti"]) is not None
        time.sleep(1.1)
        assert revoke(svc.redis, {"jti": uuid.uuid4().hex, "exp": int(time.time()) + 60}) is True
    assert store.zscore(REVOKED_TOKENS, stale["jti"]) is None
    assert store.ttl(REVOKED_TOKENS) == -1


def test_proxy_trusted_by_cidr_gives_62_users_separate_login_limits(make_config, client):
    users = [register(client) for _ in range(62)]  # from 127.0.0.1, under the test suite's limits
    app = create_app(
        make_config(
            TRUSTED_PROXY_COUNT=1,
            TRUSTED_PROXY_CIDRS="10.20.0.0/24, 2001:db8:99::/48",
            LOGIN_MAX_ATTEMPTS_PER_ADDRESS=2,
        )
    )
    client = app.test_client()
    proxy = "10.20.0.5"
    for round_ in range(2):
        for i, user in enumerate(users):
            response = login(client, user, address=proxy, headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
            assert response.status_code == 200, (round_, i, response.get_json())
    third = login(client, users[0], address=proxy, headers={"X-Forwarded-For": "198.51.100.1"})
    assert third.status_code == 429 and "address" in third.get_json()["detail"]
    # a client-supplied entry left of the proxy's is not trusted further (count = 1 hop)
    chained = login(client, users[0], address=proxy, headers={"X-Forwarded-For": "203.0.113.1, 198.51.100.1"})
    assert chained.status_code == 429
    # an IPv6 proxy inside the CIDRs is trusted too
    v6 = login(client, users[0], address="2001:db8:99::7", headers={"X-Forwarded-For": "198.51.100.200"})
    assert v6.status_code == 200


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(make_config, client):
    user = register(client)
    app = create_app(
        make_config(
            TRUSTED_PROXY_COUNT=1, TRUSTED_PROXY_CIDRS="10.20.0.0/24", LOGIN_MAX_ATTEMPTS_PER_ADDRESS=3
        )
    )
    client = app.test_client()
    statuses = [
        login(
            client, user, address="203.0.113.50", headers={"X-Forwarded-For": f"198.51.100.{i}"}
        ).status_code
        for i in range(1, 6)
    ]
    assert statuses == [200, 200, 200, 429, 429], "every spoofed address counted as the peer's"
    # garbage from a trusted proxy: the proxy's own address is counted, never a 500
    statuses = [
        login(client, user, address="10.20.0.9", headers={"X-Forwarded-For": header}).status_code
        for header in ("not-an-ip", "1.2.3.4:5678", ",,,", "\u00e9" * 50)
    ]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize(
    "count,cidrs,peer,header,expected",
    [
        (1, "", "10.0.0.1", "198.51.100.1", "198.51.100.1"),  # empty list = any peer (dev/test only)
        (1, "10.0.0.0/8", "192.0.2.1", "198.51.100.1", "192.0.2.1"),
        (2, "10.0.0.0/8", "10.0.0.1", "198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (2, "10.0.0.0/8", "10.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # hop not trusted
        (2, "10.0.0.0/8", "10.0.0.1", "10.0.0.3", "10.0.0.3"),
        (1, "10.0.0.0/8", "::ffff:10.0.0.1", "198.51.100.1", "198.51.100.1"),
        (1, "10.0.0.0/8", "10.0.0.1", "", "10.0.0.1"),
    ],
)
def test_forwarded_for_walk(count, cidrs, peer, header, expected):
    import ipaddress

    from autodealgenie.app import ForwardedFor

    networks = tuple(ipaddress.ip_network(c) for c in cidrs.split(",") if c)
    assert ForwardedFor(None, count, networks).client(peer, header) == expected


def test_a_token_that_is_not_even_ascii_is_an_invalid_token(client, user):
    """PyJWT encodes a token before parsing it: a lone surrogate used to escape as a store error."""
    response = client.post("/api/v1/auth/logout", json={"refresh_token": "\ud800"}, headers=user.headers)
    assert response.status_code == 200  # an invalid token needs no revocation; the access token was revoked
    assert client.get("/api/v1/auth/me", headers=user.headers).get_json()["detail"] == "Token revoked"
    response = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer \u00e9t\u00e9"})
    assert response.status_code == 401 and response.get_json()["detail"] == "Invalid token"
