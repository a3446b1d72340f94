"""Shared fixtures and the figures report of the `default` scenario (tests/molecule/scenario_support.py).

The report (printed at the end of the verify step and written to .cache/reports/) has the fresh
and idempotent converge times and their ratio (from the adg_run_timing callback), the verify time,
each fault drill's alert delays next to their bounds, and the rolling-upgrade figures.
"""

from __future__ import annotations

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


def pytest_terminal_summary(terminalreporter):
    terminal_summary(terminalreporter, "default")
