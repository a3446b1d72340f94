"""Apply the packaged migrations. Safe to run from several hosts at once (PostgreSQL advisory lock)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg2

from .config import Config
from .db import connect_params

# Arbitrary constant shared by every host: the migrations' advisory lock id.
ADVISORY_LOCK_ID = 4_731_202_611
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def packaged_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("autodealgenie.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("duplicate migration versions in the package")
    return found


def migrate(config: Config, migrations: list[Migration] | None = None) -> dict:
    migrations = packaged_migrations() if migrations is None else migrations
    # No statement timeout: a migration may legitimately take long, and waiting for the lock too.
    params = connect_params(config, statement_timeout_ms=0)
    conn = psycopg2.connect(**params)
    applied_now: list[int] = []
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
            try:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                cur.execute("SELECT version, checksum FROM schema_migrations")
                applied = dict(cur.fetchall())
                known = {m.version for m in migrations}
                unknown = sorted(set(applied) - known)
                if unknown:
                    raise MigrationError(
                        f"database has migrations {unknown} this release does not know: refusing to run an "
                        "older release against a newer schema"
                    )
                for migration in migrations:
                    if migration.version in applied:
                        if applied[migration.version] != migration.checksum:
                            raise MigrationError(
                                f"migration {migration.version:04d}_{migration.name} was changed after it "
                                "was applied; add a new migration instead"
                            )
                        continue
                    conn.autocommit = False
                    with conn.cursor() as tx:
                        tx.execute(migration.sql)
                        tx.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                    conn.commit()
                    conn.autocommit = True
                    applied_now.append(migration.version)
            finally:
                if conn.autocommit is False:
                    conn.rollback()
                    conn.autocommit = True
                cur.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            current = cur.fetchone()[0]
    finally:
        conn.close()
    return {"changed": bool(applied_now), "applied": applied_now, "current": current}
