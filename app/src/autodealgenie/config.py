"""Configuration from environment variables (documented in autodealgenie.env.sample)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata

ENVIRONMENTS = ("development", "test", "staging", "production")
# Environments where the built-in development secrets are acceptable.
INSECURE_ENVIRONMENTS = ("development", "test")
DEV_SECRET = "dev-insecure-secret-change-me-0123456789"  # noqa: S105 - refused outside development/test
ADVISORS = ("builtin", "openai")
# libpq target_session_attrs (PostgreSQL 14+ libpq; psycopg2-binary bundles a newer one).
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
LOG_FORMATS = ("json", "text")  # logs.py


class ConfigError(ValueError):
    """The environment does not describe a usable configuration."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def package_version() -> str:
    try:
        return metadata.version("autodealgenie")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True)
class Config:
    environment: str = "development"
    app_version: str = field(default_factory=package_version)
    secret_key: str = DEV_SECRET
    jwt_secret_key: str = DEV_SECRET
    jwt_access_token_minutes: int = 30
    jwt_refresh_token_days: int = 7
    cookie_secure: bool = False
    password_hash_time_cost: int = 2
    password_hash_memory_kib: int = 19456
    log_level: str = "INFO"
    log_format: str = "json"
    trusted_proxy_count: int = 0
    trusted_proxy_cidrs: tuple[str, ...] = ()

    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_db: str = "autodealgenie"
    postgres_user: str = "autodealgenie"
    postgres_password: str = ""
    postgres_sslmode: str = "prefer"
    postgres_connect_timeout: int = 3
    postgres_statement_timeout_ms: int = 5000
    postgres_pool_min: int = 1
    postgres_pool_max: int = 10
    # "" = read-write when POSTGRES_HOST lists several hosts (libpq multi-host), else any.
    postgres_target_session_attrs: str = ""
    postgres_keepalives_idle: int = 10
    postgres_keepalives_interval: int = 5
    postgres_keepalives_count: int = 3
    postgres_tcp_user_timeout_ms: int = 10000

    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_username: str = ""
    redis_password: str = ""
    redis_timeout: float = 0.5
    redis_retry_interval: float = 5.0
    # Sentinel discovery (empty = the fixed REDIS_HOST:REDIS_PORT).
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = "autodealgenie"
    redis_sentinel_username: str = ""
    redis_sentinel_password: str = ""

    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_db_name: str = "autodealgenie"
    mongodb_timeout_ms: int = 2000

    health_check_timeout: float = 2.0

    car_search_cache_ttl: int = 900
    deal_eval_cache_ttl: int = 3600
    search_rate_limit: int = 100
    search_rate_window: int = 3600
    login_max_failures_per_account: int = 5
    login_max_attempts_per_address: int = 60
    login_rate_window: int = 900
    signup_max_per_address: int = 20
    signup_rate_window: int = 3600

    negotiation_advisor: str = "builtin"
    llm_api_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = 10.0
    llm_temperature: float = 0.2

    metrics_enabled: bool = True
    metrics_allowed_cidrs: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    metrics_basic_auth_username: str = ""
    metrics_basic_auth_password: str = ""

    @property
    def postgres_hosts(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.postgres_host.split(","))

    @property
    def postgres_session_attrs(self) -> str:
        """The effective target_session_attrs: the setting, else read-write for several hosts."""
        if self.postgres_target_session_attrs:
            return self.postgres_target_session_attrs
        return "read-write" if len(self.postgres_hosts) > 1 else ""

    @property
    def redis_sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """REDIS_SENTINELS as (host, port) pairs; raises ValueError on a malformed entry."""
        found = []
        for entry in self.redis_sentinels:
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{entry!r} is not host:port")
            found.append((host.strip("[]"), int(port)))
        return tuple(found)

    @property
    def postgres_dsn_params(self) -> dict:
        params = {
            "host": ",".join(self.postgres_hosts),
            "port": self.postgres_port,
            "dbname": self.postgres_db,
            "user": self.postgres_user,
            "password": self.postgres_password,
            "sslmode": self.postgres_sslmode,
            "connect_timeout": max(2, self.postgres_connect_timeout),
            "application_name": "autodealgenie",
            # A dead server (a powered-off leader) is noticed on an idle connection after
            # idle + interval x count seconds, and on one waiting for an answer after tcp_user_timeout,
            # instead of after minutes of TCP retransmits.
            "keepalives": 1,
            "keepalives_idle": self.postgres_keepalives_idle,
            "keepalives_interval": self.postgres_keepalives_interval,
            "keepalives_count": self.postgres_keepalives_count,
            "tcp_user_timeout": self.postgres_tcp_user_timeout_ms,
        }
        if self.postgres_session_attrs:
            params["target_session_attrs"] = self.postgres_session_attrs
        return params

    @property
    def metrics_networks(self) -> tuple:
        return tuple(ipaddress.ip_network(c, strict=False) for c in self.metrics_allowed_cidrs)

    @property
    def trusted_proxy_networks(self) -> tuple:
        return tuple(ipaddress.ip_network(c, strict=False) for c in self.trusted_proxy_cidrs)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Config:
        """Read every setting from ``env`` (default os.environ); raise ConfigError listing all problems."""
        env = os.environ if env is None else env
        values: dict = {}
        problems: list[str] = []
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None:
                continue
            if raw.strip() == "":
                if str(f.type).startswith("tuple"):  # an explicitly empty list means "no restriction"
                    values[f.name] = ()
                continue
            raw = raw.strip()
            try:
                values[f.name] = _convert(f.type, raw)
            except ValueError:
                problems.append(f"{f.name.upper()}={raw!r} is not a valid {f.type}")
        values.update(overrides)
        if "cookie_secure" not in values:
            values["cookie_secure"] = values.get("environment", cls.environment) == "production"
        config = cls(**values)
        problems.extend(config.problems())
        if problems:
            raise ConfigError(problems)
        return config

    def problems(self) -> list[str]:
        found = []
        if self.environment not in ENVIRONMENTS:
            found.append(f"ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}")
        if self.environment not in INSECURE_ENVIRONMENTS:
            for name in ("secret_key", "jwt_secret_key"):
                value = getattr(self, name)
                if value == DEV_SECRET or len(value) < 32:
                    found.append(
                        f"{name.upper()} must be set to at least 32 characters in {self.environment}"
                    )
        if self.log_format not in LOG_FORMATS:
            found.append(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        if self.negotiation_advisor not in ADVISORS:
            found.append(f"NEGOTIATION_ADVISOR must be one of {', '.join(ADVISORS)}")
        if self.negotiation_advisor == "openai" and not self.llm_api_base_url:
            found.append("NEGOTIATION_ADVISOR=openai needs LLM_API_BASE_URL")
        if not 1 <= self.postgres_pool_min <= self.postgres_pool_max:
            found.append("need 1 <= POSTGRES_POOL_MIN <= POSTGRES_POOL_MAX")
        for name in (
            "search_rate_limit",
            "search_rate_window",
            "login_rate_window",
            "car_search_cache_ttl",
            "deal_eval_cache_ttl",
            "login_max_failures_per_account",
            "login_max_attempts_per_address",
            "signup_max_per_address",
            "signup_rate_window",
            "jwt_access_token_minutes",
            "jwt_refresh_token_days",
            "redis_timeout",
            "health_check_timeout",
            "llm_timeout",
            "mongodb_timeout_ms",
        ):
            if getattr(self, name) <= 0:
                found.append(f"{name.upper()} must be positive")
        try:
            self.metrics_networks  # noqa: B018 - parse to validate
        except ValueError as exc:
            found.append(f"METRICS_ALLOWED_CIDRS: {exc}")
        found.extend(self._proxy_problems())
        found.extend(self._ha_problems())
        if bool(self.metrics_basic_auth_username) != bool(self.metrics_basic_auth_password):
            found.append("set both METRICS_BASIC_AUTH_USERNAME and METRICS_BASIC_AUTH_PASSWORD, or neither")
        if self.password_hash_memory_kib < 8 or self.password_hash_time_cost < 1:
            found.append("PASSWORD_HASH_MEMORY_KIB >= 8 and PASSWORD_HASH_TIME_COST >= 1 required")
        return found

    def _ha_problems(self) -> list[str]:
        found = []
        if any(not host for host in self.postgres_hosts):
            found.append(f"POSTGRES_HOST={self.postgres_host!r}: an empty host in the comma-separated list")
        if (
            self.postgres_target_session_attrs
            and self.postgres_target_session_attrs not in TARGET_SESSION_ATTRS
        ):
            found.append(f"POSTGRES_TARGET_SESSION_ATTRS must be one of {', '.join(TARGET_SESSION_ATTRS)}")
        if len(self.postgres_hosts) > 1 and self.postgres_session_attrs in ("any", "read-only", "standby"):
            found.append(
                f"POSTGRES_HOST lists {len(self.postgres_hosts)} hosts but POSTGRES_TARGET_SESSION_ATTRS="
                f"{self.postgres_session_attrs}: writes could reach a replica (use read-write or primary)"
            )
        for name in ("postgres_keepalives_idle", "postgres_keepalives_interval", "postgres_keepalives_count"):
            if getattr(self, name) < 1:
                found.append(f"{name.upper()} must be at least 1")
        if self.postgres_tcp_user_timeout_ms < 0:
            found.append("POSTGRES_TCP_USER_TIMEOUT_MS must be 0 (the kernel's default) or more")
        try:
            self.redis_sentinel_addresses  # noqa: B018 - parse to validate
        except ValueError as exc:
            found.append(f"REDIS_SENTINELS: {exc} (a comma-separated list of host:port)")
        if self.redis_sentinels and not self.redis_sentinel_master:
            found.append("REDIS_SENTINEL_MASTER must name the monitored master when REDIS_SENTINELS is set")
        if bool(self.redis_sentinel_username) and not self.redis_sentinel_password:
            found.append("REDIS_SENTINEL_USERNAME needs REDIS_SENTINEL_PASSWORD")
        return found

    def _proxy_problems(self) -> list[str]:
        found = []
        if self.trusted_proxy_count < 0:
            found.append("TRUSTED_PROXY_COUNT must be 0 or more")
        for cidr in self.trusted_proxy_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                found.append(
                    f"TRUSTED_PROXY_CIDRS: {cidr!r} is not an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/24)"
                )
        if (
            self.trusted_proxy_count > 0
            and not self.trusted_proxy_cidrs
            and self.environment not in INSECURE_ENVIRONMENTS
        ):
            # Any peer's X-Forwarded-For would be believed: a client reaching the port directly could
            # pick its own address and walk around every per-address limit.
            found.append(
                f"TRUSTED_PROXY_COUNT={self.trusted_proxy_count} needs TRUSTED_PROXY_CIDRS (the proxies' "
                f"addresses) in {self.environment}"
            )
        return found


def _convert(kind, raw: str):
    kind = str(kind)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
