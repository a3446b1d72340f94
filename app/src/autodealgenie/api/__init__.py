"""Blueprints, one per area; shared request helpers."""

from __future__ import annotations

from decimal import Decimal
from functools import wraps

from flask import g, request

from ..errors import ApiError
from ..security import ACCESS, is_revoked
from ..services import services

USER_COLUMNS = "id, email, username, full_name, is_active, is_superuser, created_at, updated_at"


def bearer_or_cookie(cookie_name: str) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(cookie_name) or None


def load_active_user(user_id: int, columns: str = USER_COLUMNS) -> dict:
    """The user a token names: 401 when the account is gone, 403 when it is deactivated."""
    user = services().db.query(
        f"SELECT {columns} FROM users WHERE id = %s",  # noqa: S608 - identifiers from code, values bound
        (user_id,),
        operation="select",
        table="users",
        fetch="one",
    )
    if user is None:
        raise ApiError(401, "User not found", headers={"WWW-Authenticate": "Bearer"})
    if not user["is_active"]:
        raise ApiError(403, "Inactive user")
    return user


def login_required(view):
    """Authenticate by `Authorization: Bearer <access>` or the httponly `access_token` cookie; a token
    revoked by logout is refused (and with Redis unable to tell, 503: never let it through)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_or_cookie("access_token")
        if not token:
            raise ApiError(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
        svc = services()
        claims = svc.tokens.decode(token, ACCESS)
        if is_revoked(svc.redis, claims):
            raise ApiError(401, "Token revoked", headers={"WWW-Authenticate": "Bearer"})
        g.user = load_active_user(int(claims["sub"]))
        return view(*args, **kwargs)

    return wrapper


def jsonable(row: dict) -> dict:
    """Row -> JSON-ready dict (Decimal -> float, datetimes -> ISO 8601)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            value = float(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out


def client_address() -> str:
    """The client's address for per-address limits: X-Forwarded-For only via trusted proxies (app.py)."""
    return request.remote_addr or "unknown"
