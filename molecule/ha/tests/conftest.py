"""Fixtures of the `ha` scenario: the shared ones (tests/molecule/scenario_support.py) plus what
its drills watch (tests/molecule/ha/cluster.py) and a signed-in client of the API's VIP.

The figures report (printed at the end of verify, written to .cache/reports/molecule-ha.txt) has
the converge times and every drill's measured delay next to its bound.
"""

from __future__ import annotations

import os
import secrets

import pytest
from adg_molecule import port
from scenario_support import (  # (tests/molecule on PYTHONPATH) fixtures are found by name here
    EPHEMERAL,
    REPO,
    addresses,
    alertmanager_url,
    ansible_env,
    app_urls,
    drill_settings,
    gateway,
    groups,
    inventory,
    prometheus_url,
    remote,
    report,
    run_on,
    run_playbook,
    terminal_summary,
    webhook,
)

from tests.molecule.ha.cluster import Bounds, Patroni, Sentinels, role_default
from tests.molecule.ha.deal_writer import sign_in

__all__ = [
    "EPHEMERAL",
    "REPO",
    "addresses",
    "alertmanager_url",
    "ansible_env",
    "app_urls",
    "drill_settings",
    "gateway",
    "groups",
    "inventory",
    "prometheus_url",
    "remote",
    "report",
    "run_on",
    "run_playbook",
    "webhook",
]


def secret(name: str) -> str:
    """A generated secret of this scenario run (tests/molecule/group_vars/all/secrets.yml)."""
    return (EPHEMERAL / "secrets" / name).read_text().strip()


@pytest.fixture(scope="session")
def lab() -> str:
    return os.environ["ADG_TESTHOSTS_LAB"]


@pytest.fixture(scope="session")
def vip(gateway) -> str:
    """keepalived's VIP: the lab subnet's .100 (molecule/ha/group_vars/all/ha.yml)."""
    return gateway.rsplit(".", 1)[0] + ".100"


@pytest.fixture(scope="session")
def api(vip) -> tuple[str, int]:
    return vip, port("haproxy_api_port")


@pytest.fixture(scope="session")
def token(api) -> str:
    return sign_in(*api, f"hadrill{secrets.token_hex(4)}", secrets.token_urlsafe(18))


@pytest.fixture(scope="session")
def patroni(addresses, groups) -> Patroni:
    return Patroni(addresses, groups["postgres"], port("patroni_rest_port"))


@pytest.fixture(scope="session")
def sentinels(addresses, groups) -> Sentinels:
    return Sentinels(
        addresses,
        groups["redis_sentinel"],
        port("redis_sentinel_port"),
        role_default("redis_sentinel", "redis_sentinel_master_name"),
        role_default("redis_sentinel", "redis_sentinel_client_user"),
        secret("redis_sentinel_client_password"),
    )


@pytest.fixture(scope="session")
def sentinel_admin(sentinels) -> tuple[str, str]:
    return role_default("redis_sentinel", "redis_sentinel_admin_user"), secret(
        "redis_sentinel_admin_password"
    )


@pytest.fixture(scope="session")
def bounds(remote, groups) -> Bounds:
    backup = groups["lb"][1]
    conf = run_on(remote, backup, "cat /etc/keepalived/keepalived.conf")
    priority = next(
        int(line.split()[1]) for line in conf.splitlines() if line.strip().startswith("priority ")
    )
    return Bounds.load(vrrp_backup_priority=priority)


def pytest_terminal_summary(terminalreporter):
    terminal_summary(terminalreporter, "ha")
