"""Blueprints, one per area; shared request helpers."""

from __future__ import annotations

from decimal import Decimal
from functools import wraps
from typing import Annotated

from flask import g, request
from pydantic import Field

from ..db import run
from ..errors import ApiError
from ..security import ACCESS, is_revoked
from ..services import services
from ..types import RequestModel

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


def owned(row: dict | None, not_found: str, forbidden: str, *, admins: bool = True) -> dict:
    """A user-owned row if the caller may see it: 404 when missing, 403 when someone else's
    (administrators see every row unless admins=False)."""
    if row is None:
        raise ApiError(404, not_found)
    if row["user_id"] != g.user["id"] and not (admins and g.user["is_superuser"]):
        raise ApiError(403, forbidden)
    return row


class PageQuery(RequestModel):
    """?skip&limit of a listing (list_page)."""

    skip: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    limit: Annotated[int, Field(ge=1, le=100)] = 50


def list_page(table: str, columns: str, conditions: list[str], params: list, query: PageQuery, item=jsonable):
    """{items, total, skip, limit}: one page of a table's rows matching every condition, newest first."""
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with services().db.connection() as conn:
        total = run(
            conn,
            f"SELECT count(*) AS n FROM {table} {where}",  # noqa: S608 - identifiers from code, values bound
            params,
            operation="select",
            table=table,
            fetch="one",
        )["n"]
        rows = run(
            conn,
            f"SELECT {columns} FROM {table} {where} ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",  # noqa: S608 - identifiers from code, values bound
            [*params, query.limit, query.skip],
            operation="select",
            table=table,
        )
    return {"items": [item(r) for r in rows], "total": total, "skip": query.skip, "limit": query.limit}


def client_address() -> str:
    """The client's address for per-address limits: X-Forwarded-For only via trusted proxies (app.py)."""
    return request.remote_addr or "unknown"
