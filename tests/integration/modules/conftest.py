"""Fixtures for the module integration tests: the Grafana API double, and a real Prometheus,
Alertmanager and webhook sink on loopback ports (tests/support/monitoring.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.modules.adg_stack import ADMIN_PASSWORD, GOOD_RULES, TOKEN, alertmanager_config
from tests.support.monitoring import Alertmanager, GrafanaDouble, Prometheus, WebhookSink, free_port
from tests.unit.plugins.ansible_module_runner import run_in_process, run_with_ansible

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def grafana(tmp_path):
    """A fresh Grafana API double (TEST DOUBLE, not Grafana) with an admin user and an Admin token."""
    with GrafanaDouble(tmp_path / "grafana", admin_password=ADMIN_PASSWORD, token=TOKEN) as double:
        yield double


@pytest.fixture
def grafana_args(grafana):
    return {"url": grafana.url, "url_username": "admin", "url_password": ADMIN_PASSWORD}


@pytest.fixture
def run():
    return run_in_process


@pytest.fixture
def run_ansible():
    return run_with_ansible


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Sink + Alertmanager + Grafana double + Prometheus scraping them (and one dead target).

    Jobs: prometheus, alertmanager, grafana (the double's /metrics) are up; `redis` points at a closed
    loopback port, so it is down.
    """
    base = tmp_path_factory.mktemp("stack")
    with (
        WebhookSink() as sink,
        Alertmanager(base / "am", alertmanager_config(sink.url)) as am,
        GrafanaDouble(base / "grafana", admin_password=ADMIN_PASSWORD) as grafana,
    ):
        dead = f"127.0.0.1:{free_port()}"  # nothing listens there
        prom = Prometheus(base / "prom")
        scrape = [
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [prom.address], "labels": {"instance": "mon1"}}],
            },
            {
                "job_name": "alertmanager",
                "static_configs": [{"targets": [am.address], "labels": {"instance": "mon1"}}],
            },
            {
                "job_name": "grafana",
                "static_configs": [{"targets": [grafana.address], "labels": {"instance": "mon1"}}],
            },
            {"job_name": "redis", "static_configs": [{"targets": [dead], "labels": {"instance": "db1"}}]},
        ]
        prom.write_config(scrape, {"good.yml": GOOD_RULES}, [am.address])
        with prom:
            yield {"prometheus": prom, "alertmanager": am, "sink": sink, "grafana": grafana, "dead": dead}
