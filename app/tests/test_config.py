from __future__ import annotations

import pytest
from autodealgenie.config import Config, ConfigError


def test_defaults_match_the_sample_file():
    """Every variable in autodealgenie.env.sample is a setting, with the same default."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "autodealgenie.env.sample"
    documented = {}
    for line in sample.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            documented[key] = value
    defaults = Config()
    not_settings = {"PROMETHEUS_MULTIPROC_DIR", "COOKIE_SECURE", "APP_VERSION"} | {
        k for k in documented if k.startswith("GUNICORN_")
    }
    for key, value in documented.items():
        if key in not_settings:
            continue
        field = key.lower()
        assert hasattr(defaults, field), f"{key} documented but not read"
        parsed = Config.from_env({key: value})
        assert getattr(parsed, field) == getattr(defaults, field), key
    undocumented = {f.upper() for f in defaults.__dataclass_fields__} - set(documented)
    assert not undocumented


def test_production_requires_secrets_and_secure_cookies():
    with pytest.raises(ConfigError) as err:
        Config.from_env({"ENVIRONMENT": "production"})
    assert any("SECRET_KEY" in p for p in err.value.problems)
    config = Config.from_env(
        {"ENVIRONMENT": "production", "SECRET_KEY": "a" * 32, "JWT_SECRET_KEY": "b" * 32}
    )
    assert config.cookie_secure is True
    assert (
        Config.from_env(
            {
                "ENVIRONMENT": "production",
                "SECRET_KEY": "a" * 32,
                "JWT_SECRET_KEY": "b" * 32,
                "COOKIE_SECURE": "false",
            }
        ).cookie_secure
        is False
    )


@pytest.mark.parametrize(
    "env",
    [
        {"POSTGRES_PORT": "x"},
        {"METRICS_ENABLED": "maybe"},
        {"ENVIRONMENT": "prod"},
        {"NEGOTIATION_ADVISOR": "openai"},
        {"POSTGRES_POOL_MIN": "5", "POSTGRES_POOL_MAX": "2"},
        {"METRICS_BASIC_AUTH_USERNAME": "only-user"},
        {"SEARCH_RATE_LIMIT": "0"},
        {"METRICS_ALLOWED_CIDRS": "nonsense"},
    ],
)
def test_invalid_settings_are_reported(env):
    with pytest.raises(ConfigError):
        Config.from_env(env)


def test_cidr_list_parsing():
    assert Config.from_env(
        {"METRICS_ALLOWED_CIDRS": "10.0.0.5/32, 192.168.0.0/24"}
    ).metrics_allowed_cidrs == ("10.0.0.5/32", "192.168.0.0/24")
    assert Config.from_env({"METRICS_ALLOWED_CIDRS": ""}).metrics_allowed_cidrs == ()


PRODUCTION = {"ENVIRONMENT": "production", "SECRET_KEY": "a" * 32, "JWT_SECRET_KEY": "b" * 32}


def test_trusted_proxy_cidrs_are_parsed_and_validated():
    config = Config.from_env(
        {"TRUSTED_PROXY_COUNT": "1", "TRUSTED_PROXY_CIDRS": "10.20.0.0/24, 2001:db8::/32"}
    )
    assert config.trusted_proxy_cidrs == ("10.20.0.0/24", "2001:db8::/32")
    assert [str(n) for n in config.trusted_proxy_networks] == ["10.20.0.0/24", "2001:db8::/32"]
    assert Config.from_env({"TRUSTED_PROXY_CIDRS": "10.0.0.7"}).trusted_proxy_networks[0].num_addresses == 1
    with pytest.raises(ConfigError) as err:
        Config.from_env({"TRUSTED_PROXY_COUNT": "1", "TRUSTED_PROXY_CIDRS": "10.20.0.0/24,lb.internal"})
    assert err.value.problems == [
        "TRUSTED_PROXY_CIDRS: 'lb.internal' is not an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/24)"
    ]
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_COUNT must be 0 or more"):
        Config.from_env({"TRUSTED_PROXY_COUNT": "-1"})


def test_a_proxy_count_without_cidrs_is_refused_outside_development_and_test():
    for environment in ("development", "test"):
        assert (
            Config.from_env({"ENVIRONMENT": environment, "TRUSTED_PROXY_COUNT": "1"}).trusted_proxy_count == 1
        )
    for environment in ("staging", "production"):
        with pytest.raises(ConfigError) as err:
            Config.from_env({**PRODUCTION, "ENVIRONMENT": environment, "TRUSTED_PROXY_COUNT": "1"})
        assert err.value.problems == [
            f"TRUSTED_PROXY_COUNT=1 needs TRUSTED_PROXY_CIDRS (the proxies' addresses) in {environment}"
        ]
    ok = Config.from_env({**PRODUCTION, "TRUSTED_PROXY_COUNT": "2", "TRUSTED_PROXY_CIDRS": "10.20.0.0/24"})
    assert ok.trusted_proxy_count == 2
    assert Config.from_env(PRODUCTION).trusted_proxy_count == 0


@pytest.mark.parametrize("name", ["SIGNUP_MAX_PER_ADDRESS", "SIGNUP_RATE_WINDOW"])
def test_signup_limit_settings(name):
    assert getattr(Config.from_env({name: "7"}), name.lower()) == 7
    with pytest.raises(ConfigError, match=f"{name} must be positive"):
        Config.from_env({name: "0"})
