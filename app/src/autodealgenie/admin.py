"""`autodealgenie create-admin`: idempotent superuser provisioning."""

from __future__ import annotations

import re

import psycopg2
import psycopg2.extras

from .config import Config
from .db import connect_params
from .security import Passwords

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{3,100}$")


def ensure_admin(config: Config, *, email: str, username: str, full_name: str | None, password: str) -> dict:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValueError("--email is not a valid email address")
    if not _USERNAME.match(username):
        raise ValueError("--username must be 3-100 characters of letters, digits, '_', '.', '-'")
    if not 8 <= len(password) <= 128:
        raise ValueError("the password (ADMIN_PASSWORD or --password-stdin) must be 8-128 characters")
    passwords = Passwords(config)
    conn = psycopg2.connect(**connect_params(config))
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(
                "SELECT id, hashed_password, is_superuser, is_active FROM users WHERE lower(email) = %s "
                "FOR UPDATE",
                (email,),
            )
            user = cur.fetchone()
            if user is None:
                cur.execute(
                    "INSERT INTO users (email, username, full_name, hashed_password, is_superuser) "
                    "VALUES (%s, %s, %s, %s, true) RETURNING id",
                    (email, username, full_name, passwords.hash(password)),
                )
                return {"changed": True, "action": "created", "user_id": cur.fetchone()["id"]}
            password_ok = passwords.verify(user["hashed_password"], password)
            if password_ok and user["is_superuser"] and user["is_active"]:
                return {"changed": False, "action": "unchanged", "user_id": user["id"]}
            hashed = user["hashed_password"] if password_ok else passwords.hash(password)
            cur.execute(
                "UPDATE users SET is_superuser = true, is_active = true, hashed_password = %s, "
                "updated_at = now() WHERE id = %s",
                (hashed, user["id"]),
            )
            return {"changed": True, "action": "updated", "user_id": user["id"]}
    except psycopg2.errors.UniqueViolation:
        raise ValueError(f"username {username!r} belongs to another account") from None
    finally:
        conn.close()
