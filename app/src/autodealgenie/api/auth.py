"""/api/v1/auth: signup, login, refresh, logout, me."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated

import psycopg2
from flask import Blueprint, g, jsonify, make_response, request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .. import metrics
from ..db import run
from ..errors import ApiError, parse_body
from ..security import ACCESS, REFRESH
from ..services import services
from ..stores import Unavailable
from . import USER_COLUMNS, bearer_or_cookie, client_address, jsonable, load_active_user, login_required

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]
ACTIVE_USERS_KEY = "active_users"


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    username: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$"),
    ]
    password: Annotated[str, Field(min_length=8, max_length=128)]
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = None


def _token_response(user_id: int, status: int = 200):
    svc = services()
    access = svc.tokens.issue(user_id, ACCESS)
    refresh = svc.tokens.issue(user_id, REFRESH)
    response = make_response(
        jsonify(
            access_token=access,
            refresh_token=refresh,
            token_type="bearer",  # noqa: S106 - not a password
            expires_in=int(svc.tokens.lifetimes[ACCESS].total_seconds()),
        ),
        status,
    )
    for name, token, kind in (("access_token", access, ACCESS), ("refresh_token", refresh, REFRESH)):
        response.set_cookie(
            name,
            token,
            max_age=int(svc.tokens.lifetimes[kind].total_seconds()),
            httponly=True,
            samesite="Lax",
            secure=svc.config.cookie_secure,
            path="/",
        )
    _mark_active(user_id)
    return response


def _mark_active(user_id: int) -> None:
    """Record activity in Redis and publish the number of users active within the access-token lifetime."""
    svc = services()
    now = time.time()
    horizon = svc.tokens.lifetimes[ACCESS].total_seconds()

    def update(client):
        pipe = client.pipeline()
        pipe.zadd(ACTIVE_USERS_KEY, {str(user_id): now})
        pipe.zremrangebyscore(ACTIVE_USERS_KEY, 0, now - horizon)
        pipe.expire(ACTIVE_USERS_KEY, int(horizon))
        pipe.zcard(ACTIVE_USERS_KEY)
        return pipe.execute()[-1]

    with contextlib.suppress(Unavailable):
        metrics.active_users.set(svc.redis.call(update))


def _revoke(claims: dict) -> None:
    ttl = int(claims["exp"] - time.time())
    if ttl > 0:
        with contextlib.suppress(Unavailable):
            services().redis.call(lambda c: c.set(f"revoked_token:{claims['jti']}", "1", ex=ttl))


def _is_revoked(claims: dict) -> bool:
    try:
        return bool(services().redis.call(lambda c: c.exists(f"revoked_token:{claims.get('jti')}")))
    except Unavailable:
        return False  # degraded: cannot check revocation while Redis is down


@bp.post("/signup")
def signup():
    body = parse_body(SignupIn)
    svc = services()
    hashed = svc.passwords.hash(body.password)
    try:
        with svc.db.connection() as conn:
            user = run(
                conn,
                f"INSERT INTO users (email, username, full_name, hashed_password) "  # noqa: S608 - identifiers from code, values bound
                f"VALUES (%s, %s, %s, %s) RETURNING {USER_COLUMNS}",
                (body.email, body.username, body.full_name, hashed),
                operation="insert",
                table="users",
                fetch="one",
            )
    except psycopg2.errors.UniqueViolation as exc:
        field = "Email already registered" if "email" in str(exc) else "Username already taken"
        raise ApiError(409, field) from None
    metrics.user_signups.inc()
    return jsonify(jsonable(user)), 201


@bp.post("/login")
def login():
    body = parse_body(LoginIn)
    svc = services()
    svc.limiter.login_attempt(client_address(), body.email)
    with svc.db.connection() as conn:
        row = run(
            conn,
            "SELECT id, hashed_password, is_active FROM users WHERE lower(email) = %s",
            (body.email,),
            operation="select",
            table="users",
            fetch="one",
        )
    if row is None or not svc.passwords.verify(row["hashed_password"], body.password):
        metrics.auth_failures.inc()
        svc.limiter.login_failed(body.email)
        raise ApiError(401, "Incorrect email or password", headers={"WWW-Authenticate": "Bearer"})
    if not row["is_active"]:
        metrics.auth_failures.inc()
        raise ApiError(403, "Inactive user")
    if svc.passwords.needs_rehash(row["hashed_password"]):
        svc.db.query(
            "UPDATE users SET hashed_password = %s, updated_at = now() WHERE id = %s",
            (svc.passwords.hash(body.password), row["id"]),
            operation="update",
            table="users",
            fetch="none",
        )
    svc.limiter.login_succeeded(body.email)
    metrics.auth_success.inc()
    return _token_response(row["id"])


@bp.post("/refresh")
def refresh():
    body = parse_body(RefreshIn) if request.get_data() else RefreshIn()
    token = body.refresh_token or request.cookies.get("refresh_token")
    if not token:
        raise ApiError(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    svc = services()
    claims = svc.tokens.decode(token, REFRESH)
    if _is_revoked(claims):
        raise ApiError(401, "Token revoked", headers={"WWW-Authenticate": "Bearer"})
    user = load_active_user(int(claims["sub"]), columns="id, is_active")
    _revoke(claims)  # rotation: each refresh token works once
    return _token_response(user["id"])


@bp.post("/logout")
def logout():
    """Revoke the refresh token (body or cookie) if one is presented, and clear both cookies."""
    svc = services()
    body = request.get_json(silent=True) if request.get_data() else None
    token = (body or {}).get("refresh_token") if isinstance(body, dict) else None
    token = token or request.cookies.get("refresh_token")
    if isinstance(token, str) and token:
        with contextlib.suppress(ApiError):  # an invalid or expired token needs no revocation
            _revoke(svc.tokens.decode(token, REFRESH))
    response = make_response(jsonify(message="Logged out"))
    for name in ("access_token", "refresh_token"):
        response.delete_cookie(name, path="/", httponly=True, samesite="Lax", secure=svc.config.cookie_secure)
    return response


@bp.get("/me")
@login_required
def me():
    return jsonify(jsonable(g.user))


__all__ = ["bearer_or_cookie", "bp"]
