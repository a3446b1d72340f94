"""The backend's environment pointed at test datastores: one definition for the app's own tests and
the monitoring tests that run it under gunicorn."""

from __future__ import annotations


def app_env(pg, redis_instance, mongo_url: str, **extra) -> dict[str, str]:
    """Connection settings for pg/redis_instance/mongo_url plus cheap password hashing (tests only);
    extra variables are added as strings and win over these."""
    env = {
        "ENVIRONMENT": "test",
        "POSTGRES_HOST": pg.host,
        "POSTGRES_PORT": str(pg.port),
        "POSTGRES_DB": pg.dbname,
        "POSTGRES_USER": pg.user,
        "POSTGRES_PASSWORD": pg.password,
        "POSTGRES_SSLMODE": "disable",
        "REDIS_HOST": redis_instance.host,
        "REDIS_PORT": str(redis_instance.port),
        "REDIS_PASSWORD": getattr(redis_instance, "password", None) or "",
        "MONGODB_URL": mongo_url,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "1024",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env
