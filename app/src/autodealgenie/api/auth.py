"""/api/v1/auth: signup, login, refresh, logout, me."""

from __future__ import annotations

import contextlib
import time

import psycopg2
from flask import Blueprint, g, jsonify, make_response, request

from .. import metrics
from ..db import run
from ..errors import ApiError, json_body, parse_body
from ..security import ACCESS, REFRESH, revoke
from ..services import services
from ..stores import Unavailable
from ..types import Email, RequestModel, Token, line
from . import USER_COLUMNS, bearer_or_cookie, client_address, jsonable, load_active_user, login_required

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

Username = line(min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
FullName = line(max_length=200)
Password = line(min_length=8, max_length=128, strip=False)
GivenPassword = line(min_length=1, max_length=128, strip=False)
ACTIVE_USERS_KEY = "active_users"
SIGNUP_CONFLICT = "An account with this email or username already exists"


class SignupIn(RequestModel):
    email: Email
    username: Username
    password: Password
    full_name: FullName | None = None


class LoginIn(RequestModel):
    email: Email
    password: GivenPassword


class RefreshIn(RequestModel):
    refresh_token: Token | None = None


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


@bp.post("/signup")
def signup():
    body = parse_body(SignupIn)
    svc = services()
    svc.limiter.signup_attempt(client_address())
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
    except psycopg2.errors.UniqueViolation:
        # One answer for both: which of the two exists is not the caller's business.
        raise ApiError(409, SIGNUP_CONFLICT) from None
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
        svc.limiter.login_failed(client_address(), body.email)
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
    svc.limiter.login_succeeded(client_address(), body.email)
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
    user = load_active_user(int(claims["sub"]), columns="id, is_active")
    # Rotation: each refresh token works once. Check-and-revoke is one atomic step (a revoked token
    # is refused here), so two concurrent refreshes with the same token cannot both succeed.
    if not revoke(svc.redis, claims):
        raise ApiError(401, "Token revoked", headers={"WWW-Authenticate": "Bearer"})
    return _token_response(user["id"])


@bp.post("/logout")
def logout():
    """Revoke the access token (header or cookie) and the refresh token (body or cookie) presented,
    and clear both cookies. 503 when Redis cannot record a revocation: the token would stay valid."""
    svc = services()
    body = json_body(silent=True) if request.get_data() else None
    token = (body or {}).get("refresh_token") if isinstance(body, dict) else None
    token = token or request.cookies.get("refresh_token")
    for presented, kind in ((bearer_or_cookie("access_token"), ACCESS), (token, REFRESH)):
        if not isinstance(presented, str) or not presented:
            continue
        try:
            claims = svc.tokens.decode(presented, kind)
        except ApiError:  # an invalid or expired token needs no revocation
            continue
        revoke(svc.redis, claims)
    response = make_response(jsonify(message="Logged out"))
    for name in ("access_token", "refresh_token"):
        response.delete_cookie(name, path="/", httponly=True, samesite="Lax", secure=svc.config.cookie_secure)
    return response


@bp.get("/me")
@login_required
def me():
    return jsonify(jsonable(g.user))


__all__ = ["bearer_or_cookie", "bp"]
