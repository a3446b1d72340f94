"""Alertmanager configuration tests: rendering, `amtool check-config`, `amtool config routes test`
for every severity x component combination, and inhibition/delivery on a real Alertmanager
started on loopback. Run: bash tests/integration/amtool/run.sh"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from render import RenderError, render

from tests.support.monitoring import Alertmanager, WebhookSink, http_json

AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (apt-get install prometheus-alertmanager)"
)

# Every integration configured; addresses are loopback placeholders (nothing is sent here).
FULL = {
    "alertmanager_slack_webhook_url": "http://127.0.0.1:9/slack",
    "alertmanager_pagerduty_routing_key": "0123456789abcdef0123456789abcdef",
    "alertmanager_smtp_smarthost": "127.0.0.1:25",
    "alertmanager_smtp_from": "alertmanager@autodealgenie.test",
    "alertmanager_smtp_auth_username": "alertmanager",
    "alertmanager_smtp_auth_password": "not-a-secret",
    "alertmanager_webhook_urls": ["http://127.0.0.1:9/hook"],
}

# The routing contract: (severity, component) -> receivers in tree order. "none" = label absent.
ROUTES = {
    ("critical", "backend"): "critical-alerts",
    ("critical", "database"): "critical-alerts,database-alerts",
    ("critical", "cache"): "critical-alerts",
    ("critical", "infrastructure"): "critical-alerts",
    ("critical", "business"): "critical-alerts",
    ("critical", "security"): "critical-alerts,security-alerts",
    ("critical", "none"): "critical-alerts",
    ("warning", "backend"): "warning-alerts",
    ("warning", "database"): "warning-alerts,database-alerts",
    ("warning", "cache"): "warning-alerts",
    ("warning", "infrastructure"): "warning-alerts",
    ("warning", "business"): "warning-alerts",
    ("warning", "security"): "warning-alerts,security-alerts",
    ("warning", "none"): "warning-alerts",
    ("info", "backend"): "info-alerts",
    ("info", "database"): "info-alerts,database-alerts",
    ("info", "cache"): "info-alerts",
    ("info", "infrastructure"): "info-alerts",
    ("info", "business"): "info-alerts",
    ("info", "security"): "info-alerts,security-alerts",
    ("info", "none"): "info-alerts",
    ("none", "backend"): "default",
    ("none", "database"): "database-alerts",
    ("none", "cache"): "default",
    ("none", "infrastructure"): "default",
    ("none", "business"): "default",
    ("none", "security"): "security-alerts",
    ("none", "none"): "default",
}
RECEIVERS = [
    "default",
    "critical-alerts",
    "warning-alerts",
    "info-alerts",
    "database-alerts",
    "security-alerts",
    "null",  # Watchdog's, when no dead-man's switch is configured (FULL has none)
]
DEADMAN = "http://127.0.0.1:9/heartbeat?token=not-a-secret"


def _receivers(config: Path) -> dict:
    return {r["name"]: r for r in yaml.safe_load(config.read_text())["receivers"]}


def _check_config(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, "check-config", str(config)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def full_config(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("am") / "alertmanager.yml", FULL)


@needs_amtool
def test_full_config_passes_amtool(full_config):
    check = _check_config(full_config)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "4 inhibit rules" in check.stdout and "7 receivers" in check.stdout


def test_full_config_wires_every_integration(full_config):
    receivers = _receivers(full_config)
    assert sorted(receivers) == sorted(RECEIVERS)
    assert [c["channel"] for c in receivers["critical-alerts"]["slack_configs"]] == ["#critical-alerts"]
    assert [c["channel"] for c in receivers["warning-alerts"]["slack_configs"]] == ["#warnings"]
    assert [c["channel"] for c in receivers["info-alerts"]["slack_configs"]] == ["#info-alerts"]
    assert [c["channel"] for c in receivers["default"]["slack_configs"]] == ["#alerts"]
    assert (
        receivers["critical-alerts"]["pagerduty_configs"][0]["routing_key"]
        == FULL["alertmanager_pagerduty_routing_key"]
    )
    assert [n for n, r in receivers.items() if "pagerduty_configs" in r] == ["critical-alerts"]
    assert receivers["database-alerts"]["email_configs"][0]["to"] == "dba-team@autodealgenie.com"
    assert receivers["security-alerts"]["email_configs"][0]["to"] == "security-team@autodealgenie.com"
    assert "slack_configs" not in receivers["database-alerts"]
    for name, receiver in receivers.items():
        if name == "null":
            assert receiver == {"name": "null"}  # no integration: Watchdog is dropped
            continue
        assert [w["url"] for w in receiver["webhook_configs"]] == ["http://127.0.0.1:9/hook"], name
    config = yaml.safe_load(full_config.read_text())
    assert config["global"]["smtp_auth_password"] == "not-a-secret"
    assert "templates" not in config  # nothing referenced that is not installed


def test_info_route_is_a_digest(full_config):
    routes = {r["receiver"]: r for r in yaml.safe_load(full_config.read_text())["route"]["routes"]}
    assert routes["info-alerts"]["group_interval"] == "24h"
    assert routes["critical-alerts"]["group_wait"] == "0s"
    assert all("matchers" in r and "match" not in r for r in routes.values())


@needs_amtool
def test_webhook_only_config_reaches_every_receiver(tmp_path):
    config = render(tmp_path / "am.yml", {"alertmanager_webhook_urls": ["http://127.0.0.1:9/hook", ""]})
    assert _check_config(config).returncode == 0
    for name, receiver in _receivers(config).items():
        if name == "null":
            assert receiver == {"name": "null"}  # Watchdog's, never any integration
            continue
        assert set(receiver) == {"name", "webhook_configs"}, name
        assert len(receiver["webhook_configs"]) == 1, name  # the empty URL is ignored


@needs_amtool
def test_receiver_without_own_integration_falls_back_to_default(tmp_path):
    config = render(tmp_path / "am.yml", {"alertmanager_slack_webhook_url": "https://hooks.slack.test/T/B/x"})
    assert _check_config(config).returncode == 0
    receivers = _receivers(config)
    # no SMTP: the team receivers use the default receiver's Slack channel instead of nothing
    assert [c["channel"] for c in receivers["database-alerts"]["slack_configs"]] == ["#alerts"]
    assert [c["channel"] for c in receivers["security-alerts"]["slack_configs"]] == ["#alerts"]
    # no PagerDuty key: critical still goes to its Slack channel
    assert "pagerduty_configs" not in receivers["critical-alerts"]
    assert [c["channel"] for c in receivers["critical-alerts"]["slack_configs"]] == ["#critical-alerts"]


def test_no_integration_at_all_refuses_to_render(tmp_path):
    with pytest.raises(RenderError, match=r'receiver "default" has no notification integration'):
        render(tmp_path / "am.yml", {})
    assert not (tmp_path / "am.yml").exists()


@needs_amtool
def test_bad_webhook_url_is_caught_by_amtool(tmp_path):
    # e.g. a vault_alertmanager_webhook_url generated as a random password instead of a URL
    config = render(tmp_path / "am.yml", {"alertmanager_webhook_urls": ["Zx9random"]})
    assert _check_config(config).returncode != 0


@needs_amtool
@pytest.mark.parametrize(("severity", "component"), sorted(ROUTES))
def test_route(full_config, severity, component):
    labels = ["alertname=RoutingTest"]
    labels += [] if severity == "none" else [f"severity={severity}"]
    labels += [] if component == "none" else [f"component={component}"]
    expected = ROUTES[(severity, component)]
    run = subprocess.run(
        [
            AMTOOL,
            "config",
            "routes",
            "test",
            f"--config.file={full_config}",
            f"--verify.receivers={expected}",
            *labels,
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"{labels}: expected {expected}, amtool said: {run.stdout}{run.stderr}"
    assert run.stdout.strip() == expected


# --- Watchdog and the dead-man's switch -------------------------------------------------------


@pytest.fixture(scope="module")
def deadman_config(tmp_path_factory) -> Path:
    return render(
        tmp_path_factory.mktemp("am-deadman") / "alertmanager.yml",
        {
            **FULL,
            "alertmanager_deadmans_switch_url": DEADMAN,
            "alertmanager_deadmans_switch_repeat_interval": "2m",
        },
    )


def _routes_test(config: Path, expected: str, *labels: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            AMTOOL,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"--verify.receivers={expected}",
            *labels,
        ],
        capture_output=True,
        text=True,
    )


@needs_amtool
@pytest.mark.parametrize(
    ("which", "expected"), [("deadman", "deadmans-switch"), ("full", "null")], ids=["switch", "no-switch"]
)
def test_watchdog_reaches_only_its_receiver(deadman_config, full_config, which, expected):
    config = deadman_config if which == "deadman" else full_config
    assert _check_config(config).returncode == 0
    # Watchdog's real labels (severity none, component infrastructure): no team receiver too
    run = _routes_test(config, expected, "alertname=Watchdog", "severity=none", "component=infrastructure")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == expected
    # even labelled like a page, it goes nowhere else (first route, continue false)
    run = _routes_test(config, expected, "alertname=Watchdog", "severity=critical", "component=database")
    assert run.stdout.strip() == expected, run.stdout + run.stderr


@needs_amtool
def test_other_alerts_never_reach_the_deadmans_switch(deadman_config):
    for (severity, component), expected in ROUTES.items():
        labels = ["alertname=RoutingTest"]
        labels += [] if severity == "none" else [f"severity={severity}"]
        labels += [] if component == "none" else [f"component={component}"]
        run = _routes_test(deadman_config, expected, *labels)
        assert run.returncode == 0 and run.stdout.strip() == expected, (labels, run.stdout, run.stderr)


def test_deadmans_switch_receiver_and_route(deadman_config):
    config = yaml.safe_load(deadman_config.read_text())
    receivers = _receivers(deadman_config)
    assert "null" not in receivers
    # the heartbeat URL only, not the generic webhooks; a heartbeat has no resolution
    assert receivers["deadmans-switch"] == {
        "name": "deadmans-switch",
        "webhook_configs": [{"url": DEADMAN, "send_resolved": False}],
    }
    first = config["route"]["routes"][0]
    assert first["matchers"] == ['alertname="Watchdog"']
    assert first["receiver"] == "deadmans-switch"
    assert first["continue"] is False
    assert (first["group_wait"], first["group_interval"], first["repeat_interval"]) == ("0s", "10s", "2m")
    # the URL is nowhere else
    assert deadman_config.read_text().count(DEADMAN) == 1


def test_route_table_covers_every_combination():
    severities = ["critical", "warning", "info", "none"]
    components = ["backend", "database", "cache", "infrastructure", "business", "security", "none"]
    assert set(ROUTES) == {(s, c) for s in severities for c in components}


# --- a real Alertmanager on loopback -----------------------------------------------------------


@pytest.fixture(scope="module")
def live_alertmanager(tmp_path_factory):
    """(Alertmanager base URL, webhook sink every receiver delivers to)."""
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager not installed")
    workdir = tmp_path_factory.mktemp("am-live")
    fast = {  # short waits so notifications arrive within the test
        "alertmanager_group_wait": "1s",
        "alertmanager_group_interval": "1s",
        "alertmanager_critical_group_wait": "0s",
        "alertmanager_warning_group_wait": "1s",
        "alertmanager_info_group_wait": "1s",
        "alertmanager_info_group_interval": "1s",
    }
    with WebhookSink() as sink:
        config = render(
            workdir / "alertmanager.yml",
            {
                "alertmanager_webhook_urls": [f"{sink.url}/hook"],
                "alertmanager_deadmans_switch_url": f"{sink.url}/heartbeat",
                "alertmanager_deadmans_switch_repeat_interval": "1s",
                **fast,
            },
        )
        with Alertmanager(workdir, config) as alertmanager:
            yield alertmanager.url, sink


LIVE_ALERTS = [
    {
        "alertname": "ServiceDown",
        "severity": "critical",
        "component": "backend",
        "job": "autodealgenie-backend",
        "instance": "app1",
    },
    {"alertname": "HighErrorRate", "severity": "critical", "component": "backend", "instance": "app1"},
    {"alertname": "HighAPILatency", "severity": "warning", "component": "backend", "instance": "app1"},
    {
        "alertname": "HighCPUUsage",
        "severity": "warning",
        "component": "infrastructure",
        "job": "autodealgenie-backend",
        "instance": "app1",
    },
    {"alertname": "HighErrorRate", "severity": "critical", "component": "backend", "instance": "app2"},
    {
        "alertname": "DiskSpaceLow",
        "severity": "critical",
        "component": "infrastructure",
        "job": "node",
        "instance": "app1",
        "mountpoint": "/",
    },
    {
        "alertname": "DatabaseDown",
        "severity": "critical",
        "component": "database",
        "job": "postgres",
        "instance": "db1",
    },
    {
        "alertname": "DatabaseConnectionPoolHigh",
        "severity": "warning",
        "component": "database",
        "instance": "db1",
    },
    {
        "alertname": "SlowQueries",
        "severity": "warning",
        "component": "database",
        "instance": "db1",
        "datname": "autodealgenie",
    },
    {
        "alertname": "DatabaseConnectionPoolHigh",
        "severity": "warning",
        "component": "database",
        "instance": "db2",
    },
    {
        "alertname": "HighAuthenticationFailureRate",
        "severity": "info",
        "component": "security",
        "job": "autodealgenie-backend",
    },
    {"alertname": "HostDown", "severity": "critical", "component": "infrastructure", "instance": "db3"},
    {
        "alertname": "ExporterDown",
        "severity": "warning",
        "component": "infrastructure",
        "job": "redis",
        "instance": "db3",
    },
    {"alertname": "APIProbeFailing", "severity": "critical", "component": "backend", "instance": "db3"},
    {"alertname": "Watchdog", "severity": "none", "component": "infrastructure"},
]
# (alertname, instance) -> the alert that inhibits it, or None if it must stay active
EXPECTED_INHIBITION = {
    ("ServiceDown", "app1"): None,  # never inhibits itself
    ("HighErrorRate", "app1"): "ServiceDown",
    ("HighAPILatency", "app1"): "ServiceDown",
    ("HighCPUUsage", "app1"): "ServiceDown",
    ("HighErrorRate", "app2"): None,  # other instance
    ("DiskSpaceLow", "app1"): None,  # same instance, but not a backend alert
    ("DatabaseDown", "db1"): None,
    ("DatabaseConnectionPoolHigh", "db1"): "DatabaseDown",
    ("SlowQueries", "db1"): "DatabaseDown",
    ("DatabaseConnectionPoolHigh", "db2"): None,
    ("HighAuthenticationFailureRate", None): None,
    ("HostDown", "db3"): None,  # never inhibits itself
    ("ExporterDown", "db3"): "HostDown",
    ("APIProbeFailing", "db3"): "HostDown",
    ("Watchdog", None): None,  # no instance: HostDown never mutes the heartbeat
}


def test_live_inhibition_and_delivery(live_alertmanager):
    base, sink = live_alertmanager
    fingerprint_of = {}
    http_json(
        base + "/api/v2/alerts",
        [
            {"labels": labels, "annotations": {"summary": f"test {labels['alertname']}"}}
            for labels in LIVE_ALERTS
        ],
    )
    deadline = time.monotonic() + 15
    while True:
        alerts = http_json(base + "/api/v2/alerts")
        state = {}
        for alert in alerts:
            key = (alert["labels"]["alertname"], alert["labels"].get("instance"))
            fingerprint_of[alert["fingerprint"]] = alert["labels"]["alertname"]
            state[key] = alert["status"]["inhibitedBy"]
        inhibited_by = {key: [fingerprint_of.get(fp, fp) for fp in fps] for key, fps in state.items()}
        expected = {key: [] if by is None else [by] for key, by in EXPECTED_INHIBITION.items()}
        if inhibited_by == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert inhibited_by == expected

    # Delivery through the routing tree: every receiver carries the webhook, so the sink sees
    # which receiver each notification went through; inhibited alerts are never notified.
    wanted = {
        ("critical-alerts", "ServiceDown"),
        ("critical-alerts", "DatabaseDown"),
        ("database-alerts", "DatabaseDown"),
        ("critical-alerts", "DiskSpaceLow"),
        ("critical-alerts", "HighErrorRate"),
        ("warning-alerts", "DatabaseConnectionPoolHigh"),
        ("database-alerts", "DatabaseConnectionPoolHigh"),
        ("info-alerts", "HighAuthenticationFailureRate"),
        ("security-alerts", "HighAuthenticationFailureRate"),
    }
    deadline = time.monotonic() + 20
    while True:
        seen = {
            (message["receiver"], alert["labels"]["alertname"], alert["labels"].get("instance"))
            for message in sink.received()
            for alert in message["alerts"]
        }
        if wanted <= {(r, a) for r, a, _ in seen} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert wanted <= {(r, a) for r, a, _ in seen}, sorted(seen)
    muted = {(a, i) for (a, i), by in EXPECTED_INHIBITION.items() if by}
    assert not {(a, i) for _, a, i in seen} & muted, sorted(seen)
    assert ("critical-alerts", "HighErrorRate", "app2") in seen
    assert ("warning-alerts", "DatabaseConnectionPoolHigh", "db2") in seen
    assert ("critical-alerts", "HostDown", "db3") in seen
    # Watchdog reaches the dead-man's switch and nothing else, again and again (repeat_interval 1s,
    # checked on the route's 10 s group_interval ticks)
    deadline = time.monotonic() + 30
    while len(sink.received("deadmans-switch", alertname="Watchdog")) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    beats = [n for n in sink.notifications if n["payload"].get("receiver") == "deadmans-switch"]
    assert len(beats) >= 2, beats
    assert {n["path"] for n in beats} == {"/heartbeat"}
    assert {a["labels"]["alertname"] for n in beats for a in n["payload"]["alerts"]} == {"Watchdog"}
    assert not [r for r, a, _ in seen if a == "Watchdog" and r != "deadmans-switch"], sorted(seen)
