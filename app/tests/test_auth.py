from __future__ import annotations

import pytest
from appsupport import register, sample, unique
from autodealgenie.app import create_app


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


def test_signup_duplicates_conflict(client, user):
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": user.email.upper(), "username": unique(), "password": "longenough1"},
    )
    assert response.status_code == 409 and response.get_json()["detail"] == "Email already registered"
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": f"{unique()}@example.test", "username": user.username, "password": "longenough1"},
    )
    assert response.status_code == 409 and response.get_json()["detail"] == "Username already taken"


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


def test_logout_revokes_refresh_and_clears_cookies(app, user):
    client = app.test_client()
    tokens = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}
    ).get_json()
    response = client.post("/api/v1/auth/logout")
    assert response.status_code == 200
    cleared = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("access_token=;") for c in cleared) and any(
        c.startswith("refresh_token=;") for c in cleared
    )
    assert client.get("/api/v1/auth/me").status_code == 401
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )
    assert (
        client.post("/api/v1/auth/logout", data="garbage", content_type="application/json").status_code == 200
    )


def test_login_rate_limit_per_account(make_config, migrated):
    app = create_app(make_config(LOGIN_MAX_FAILURES_PER_ACCOUNT=3))
    client = app.test_client()
    user = register(client)
    for _ in range(3):
        assert (
            client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": "bad-password"}
            ).status_code
            == 401
        )
    response = client.post("/api/v1/auth/login", json={"email": user.email, "password": user.password})
    assert response.status_code == 429, "even the right password is refused while the account is locked"
    assert 1 <= int(response.headers["Retry-After"]) <= 900
    other = register(client)  # other accounts from the same address are not affected
    assert (
        client.post("/api/v1/auth/login", json={"email": other.email, "password": other.password}).status_code
        == 200
    )


def test_login_rate_limit_per_address(make_config, client):
    user = register(client)
    client = create_app(make_config(LOGIN_MAX_ATTEMPTS_PER_ADDRESS=4)).test_client()
    env = {"REMOTE_ADDR": "192.0.2.77"}
    for _ in range(4):
        response = client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": user.password}, environ_base=env
        )
        assert response.status_code == 200
    response = client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": user.password}, environ_base=env
    )
    assert response.status_code == 429 and "address" in response.get_json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1
    ok = client.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": user.password},
        environ_base={"REMOTE_ADDR": "192.0.2.78"},
    )
    assert ok.status_code == 200
