"""Acceptance tests of the monitoring tier on real systemd test hosts (molecule scenario `monitoring`).

Read-only checks of the converged lab, plus one synthetic alert. They run on the controller;
traffic goes only to the lab's hosts and to the webhook sink started on the lab bridge's gateway
address (the controller's own address on the project's test network). Grafana here is the API TEST
DOUBLE, configured as an existing Grafana. Side converges are in test_side_converges.py (run after
this module).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from monitoring_lab import (
    ALERTMANAGER_PORT,
    DASHBOARD_FILES,
    MONITORING_HOSTS,
    PROMETHEUS_PORT,
    RUNNER,
    expected_rule_groups,
    expected_targets,
    lab_var,
    last_reload_successful,
    monitoring_urls,
    request,
    secret,
    wait_until,
)

from tests.support.monitoring import WebhookSink  # the repository is on PYTHONPATH (molecule config)

testinfra_hosts = MONITORING_HOSTS


@pytest.fixture(scope="module")
def mon():
    return monitoring_urls()


# --- services --------------------------------------------------------------------------------------
def test_services_never_listened_on_debian_defaults(host, mon):
    """The packages' postinst start was blocked: every listener ever logged used our address."""
    listening = r'msg="(?:Listening on|Start listening for connections)" address=(\S+)'
    units = (("prometheus", PROMETHEUS_PORT), ("prometheus-alertmanager", ALERTMANAGER_PORT))
    for unit, port_number in units:
        log = host.check_output("journalctl -u %s --no-pager -o cat", unit)
        addresses = set(re.findall(listening, log))
        assert addresses == {f"{mon['ip']}:{port_number}"}, (unit, addresses)


def test_prometheus_and_alertmanager_listen_on_the_private_address_only(host, mon):
    for unit in ("prometheus", "prometheus-alertmanager"):
        assert host.service(unit).is_running, host.run("journalctl -u %s -n 30 --no-pager", unit).stdout
        assert host.service(unit).is_enabled
    assert host.socket(f"tcp://{mon['ip']}:{PROMETHEUS_PORT}").is_listening
    assert host.socket(f"tcp://{mon['ip']}:{ALERTMANAGER_PORT}").is_listening
    for port_number in (PROMETHEUS_PORT, ALERTMANAGER_PORT):
        assert not host.socket(f"tcp://0.0.0.0:{port_number}").is_listening
        assert not host.socket(f"tcp://127.0.0.1:{port_number}").is_listening


def test_alertmanager_gossip_is_off(host, mon):
    """Single node: no cluster listener (Debian's default is TCP+UDP 0.0.0.0:9094)."""
    pid = host.check_output("systemctl show -p MainPID --value prometheus-alertmanager")
    sockets = host.check_output("ss -Hlntup")
    mine = [line for line in sockets.splitlines() if f"pid={pid}," in line]
    assert len(mine) == 1 and mine[0].startswith("tcp"), mine
    assert f":{ALERTMANAGER_PORT} " in mine[0]
    status, body = request(mon["alertmanager"] + "/api/v2/status")
    assert status == 200
    assert body["cluster"]["status"] == "disabled"


def test_configs_validate_on_the_host(host):
    assert host.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0
    config = host.file("/etc/prometheus/alertmanager.yml")
    assert config.mode == 0o640 and config.user == "root" and config.group == "prometheus"


def test_prometheus_runs_with_the_intended_flags(host, mon):
    status, body = request(mon["prometheus"] + "/api/v1/status/flags")
    assert status == 200
    flags = body["data"]
    assert flags["web.enable-lifecycle"] == "true"
    assert flags["storage.tsdb.retention.time"] == "30d"
    assert flags["web.listen-address"] == f"{mon['ip']}:{PROMETHEUS_PORT}"
    status, body = request(mon["prometheus"] + "/api/v1/status/config")
    config = yaml.safe_load(body["data"]["yaml"])
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "30s"


# --- Prometheus ------------------------------------------------------------------------------------
def test_prometheus_ready(mon):
    status, _ = request(mon["prometheus"] + "/-/ready")
    assert status == 200


def test_every_configured_target_is_up(mon):
    """The active targets are exactly the topology's jobs x inventory groups, named by host, all up."""

    def probe():
        status, body = request(mon["prometheus"] + "/api/v1/targets?state=active")
        if status != 200:
            return False, body
        targets = {(t["labels"]["job"], t["labels"]["instance"]): t for t in body["data"]["activeTargets"]}
        down = {
            key: (t["health"], t["scrapeUrl"], t["lastError"])
            for key, t in targets.items()
            if t["health"] != "up"
        }
        return set(targets) == expected_targets() and not down, {"targets": sorted(targets), "not up": down}

    ok, detail = wait_until(probe)
    assert ok, f"expected {sorted(expected_targets())}, got {detail}"
    assert {instance for _, instance in expected_targets()} == set(RUNNER.get_hosts("all"))
    assert len(RUNNER.get_hosts("all")) >= 2, "the scenario has a monitoring host and an app-like host"


def test_every_rule_group_loaded_and_healthy(mon):
    def probe():
        status, body = request(mon["prometheus"] + "/api/v1/rules")
        if status != 200:
            return False, body
        groups = body["data"]["groups"]
        health = {r["name"]: (r["health"], r.get("lastError", "")) for g in groups for r in g["rules"]}
        not_ok = {name: h for name, h in health.items() if h[0] != "ok"}
        return sorted(g["name"] for g in groups) == expected_rule_groups() and not not_ok, not_ok

    ok, detail = wait_until(probe)
    assert ok, f"rule groups {expected_rule_groups()} not all loaded with health ok: {detail}"


def test_prometheus_sees_alertmanager(mon):
    """Discovery is asynchronous (after a start or reload), so allow it a few seconds."""
    wanted = [f"{mon['alertmanager']}/api/v2/alerts"]

    def probe():
        status, body = request(mon["prometheus"] + "/api/v1/alertmanagers")
        urls = [a["url"] for a in body["data"]["activeAlertmanagers"]] if status == 200 else body
        return urls == wanted, urls

    ok, urls = wait_until(probe, timeout=30)
    assert ok, f"Prometheus knows Alertmanagers {urls}, expected {wanted}"


def test_last_reloads_successful(mon):
    assert last_reload_successful(mon)
    status, text = request(mon["alertmanager"] + "/metrics")
    assert status == 200
    assert re.search(r"^alertmanager_config_last_reload_successful 1$", text, re.MULTILINE)


# --- Alertmanager -> webhook on the controller --------------------------------------------------------
def test_synthetic_alert_reaches_the_controller_webhook(mon):
    gateway, sink_port = lab_var("monitoring_lab_gateway"), int(lab_var("monitoring_lab_webhook_port"))
    test_id = uuid.uuid4().hex
    # A new alert name is a new group (group_by has alertname): notified after group_wait, not after
    # group_interval as a change to an earlier run's group would be.
    labels = {
        "alertname": f"MoleculeSynthetic_{test_id[:12]}",
        "severity": "critical",
        "component": "backend",
        "instance": "molecule",
        "adg_test_id": test_id,
    }
    alert = {
        "labels": labels,
        "annotations": {"summary": "synthetic alert from the monitoring scenario"},
        "generatorURL": "http://molecule.invalid/",
    }
    with WebhookSink(gateway, sink_port) as sink:
        try:
            status, body = request(mon["alertmanager"] + "/api/v2/alerts", data=[alert], method="POST")
            assert status == 200, body
            received = sink.wait_for(timeout=60, adg_test_id=test_id)
        finally:
            ended = dict(alert, endsAt=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
            request(mon["alertmanager"] + "/api/v2/alerts", data=[ended], method="POST")
    assert received, "no webhook notification reached the controller within 60 s"
    # a notification carries the whole group; earlier synthetic alerts may be in it too
    assert {payload["receiver"] for payload in received} == {"critical-alerts"}
    ours = [a for p in received for a in p["alerts"] if a["labels"].get("adg_test_id") == test_id]
    assert ours and ours[0]["status"] == "firing"
    assert ours[0]["annotations"]["summary"] == alert["annotations"]["summary"]


# --- Grafana (API double as an existing Grafana) -------------------------------------------------------
def test_grafana_is_the_standin_and_says_so(host):
    unit = host.file("/etc/systemd/system/adg-grafana-double.service").content_string
    assert "TEST STAND-IN" in unit
    assert host.service("adg-grafana-double").is_running
    assert not host.package("grafana").is_installed


def test_grafana_admin_password_enforced_and_anonymous_refused(mon):
    assert request(mon["grafana"] + "/api/user", auth=("admin", secret("grafana_admin_password")))[0] == 200
    # the existing server's bootstrap password was changed by the role
    bootstrap = ("admin", secret("grafana_bootstrap_admin_password"))
    assert request(mon["grafana"] + "/api/user", auth=bootstrap)[0] == 401
    assert request(mon["grafana"] + "/api/search")[0] == 401


def test_grafana_datasource_folder_and_dashboards(mon):
    auth = ("admin", secret("grafana_admin_password"))
    status, ds = request(mon["grafana"] + "/api/datasources/uid/prometheus", auth=auth)
    assert status == 200, ds
    wanted_datasource = ("prometheus", mon["prometheus"], "proxy", True)
    assert (ds["type"], ds["url"], ds["access"], ds["isDefault"]) == wanted_datasource
    status, folder = request(mon["grafana"] + "/api/folders/autodealgenie", auth=auth)
    assert status == 200 and folder["title"] == "AutoDealGenie", folder
    wanted = {json.loads(Path(path).read_text())["uid"] for path in DASHBOARD_FILES}
    assert len(wanted) == len(DASHBOARD_FILES), "two dashboard files share a uid"
    for uid in wanted:
        status, dashboard = request(f"{mon['grafana']}/api/dashboards/uid/{uid}", auth=auth)
        assert status == 200, (uid, dashboard)
        assert dashboard["meta"]["folderUid"] == "autodealgenie"
