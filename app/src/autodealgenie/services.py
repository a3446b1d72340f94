"""Per-application service objects (stores, security, advisor), kept in app.extensions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flask import current_app

from .advisor import BuiltinAdvisor, OpenAICompatibleAdvisor, build_advisor
from .config import Config
from .db import Database
from .ratelimit import RateLimiter
from .security import Passwords, Tokens
from .stores import MongoStore, RedisStore

EXTENSION = "autodealgenie"


@dataclass
class Services:
    config: Config
    db: Database
    redis: RedisStore
    mongo: MongoStore
    limiter: RateLimiter
    passwords: Passwords
    tokens: Tokens
    advisor: BuiltinAdvisor | OpenAICompatibleAdvisor
    # Runs the health checks in parallel under one deadline; sized for a few concurrent probes.
    health_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=9, thread_name_prefix="health")
    )

    @classmethod
    def build(cls, config: Config) -> Services:
        redis_store = RedisStore(config)
        return cls(
            config=config,
            db=Database(config),
            redis=redis_store,
            mongo=MongoStore(config),
            limiter=RateLimiter(redis_store),
            passwords=Passwords(config),
            tokens=Tokens(config),
            advisor=build_advisor(config),
        )


def services() -> Services:
    return current_app.extensions[EXTENSION]
