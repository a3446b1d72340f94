"""Acceptance tests of the monitoring tier on real systemd test hosts (molecule scenario `monitoring`).

They run on the controller. Traffic goes only to the lab's test hosts and to the webhook sink and
key server these tests start on the lab bridge's gateway address (the controller's own address on
the project's test network). Grafana here is the API TEST DOUBLE, configured as an existing Grafana.

Side converges (ansible-playbook run from here, like an operator would) check that a bad rule is
refused before it reaches Prometheus, that a good rule change is a reload (not a restart), that
--check after a converge reports nothing to change, and that the vendor install path of the grafana
role passes --check with a fingerprint-checked key.
"""

from __future__ import annotations

import base64
import functools
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner
import yaml
from adg_molecule import port, topology

SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
sys.path.insert(0, str(REPO))
from tests.support.monitoring import WebhookSink  # noqa: E402

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
MONITORING = topology()["adg_group_monitoring"]
testinfra_hosts = RUNNER.get_hosts(MONITORING)

PROMETHEUS_PORT = port("prometheus_port")
ALERTMANAGER_PORT = port("alertmanager_port")
GRAFANA_PORT = port("grafana_port")
RULE_FILES = sorted(glob.glob(str(REPO / "roles" / "prometheus" / "files" / "rules" / "*.yml")))
DASHBOARD_FILES = sorted(glob.glob(str(REPO / "roles" / "grafana" / "files" / "dashboards" / "*.json")))
# A Prometheus evaluation interval plus a scrape interval, with margin.
SETTLE_SECONDS = 120


# --- helpers --------------------------------------------------------------------------------------
def lab_var(name):
    """A literal variable of the scenario's inventory (molecule/monitoring/group_vars/all)."""
    return RUNNER.get_variables(testinfra_hosts[0])[name]


def address(name):
    return RUNNER.get_variables(name)["ansible_host"]


def secret(name):
    """A generated test secret (tests/molecule/group_vars/all/secrets.yml writes them here)."""
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def request(url, data=None, method=None, auth=None, timeout=10.0):
    """(status, decoded JSON or text) for an HTTP request to a lab host; HTTP errors are returned."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - lab addresses only
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text.strip() else None
    except ValueError:
        return status, text


def wait_until(probe, timeout=SETTLE_SECONDS, interval=2.0):
    """Call probe() until it returns (True, detail) or time runs out; returns the last detail."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = probe()
        if done or time.monotonic() > deadline:
            return done, detail
        time.sleep(interval)


def ansible_playbook(*args, timeout=900):
    """Run ansible-playbook against the scenario inventory the way molecule does."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(EPHEMERAL / "facts"),
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_NOCOLOR="true",
    )
    command = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", INVENTORY, *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO, check=False
    )


def recap(output, host):
    match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, f"no PLAY RECAP line for {host}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def resolve_group(value):
    """adg_scrape_jobs group values are '{{ adg_group_x }}' references or literal names."""
    match = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", str(value))
    return topology()[match.group(1)] if match else str(value)


@functools.cache
def expected_targets():
    """{(job, instance)} for every topology scrape job whose inventory group has hosts."""
    targets = set()
    for job in topology()["adg_scrape_jobs"]:
        for name in RUNNER.get_hosts(resolve_group(job["group"])):
            targets.add((job["job_name"], name))
    return targets


def expected_rule_groups():
    return sorted(g["name"] for path in RULE_FILES for g in yaml.safe_load(Path(path).read_text())["groups"])


@pytest.fixture(scope="module")
def mon():
    name = testinfra_hosts[0]
    ip = address(name)
    return {
        "name": name,
        "ip": ip,
        "prometheus": f"http://{ip}:{PROMETHEUS_PORT}",
        "alertmanager": f"http://{ip}:{ALERTMANAGER_PORT}",
        "grafana": f"http://{ip}:{GRAFANA_PORT}",
    }


def prometheus_pid(host):
    return host.check_output("systemctl show -p MainPID --value prometheus")


def rule_group_names(mon):
    status, body = request(mon["prometheus"] + "/api/v1/rules")
    assert status == 200, body
    return sorted(g["name"] for g in body["data"]["groups"])


def last_reload_successful(mon):
    status, text = request(mon["prometheus"] + "/metrics")
    assert status == 200, text
    return re.search(r"^prometheus_config_last_reload_successful 1$", text, re.MULTILINE) is not None


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
    status, body = request(mon["prometheus"] + "/api/v1/alertmanagers")
    assert status == 200
    urls = [a["url"] for a in body["data"]["activeAlertmanagers"]]
    assert urls == [f"{mon['alertmanager']}/api/v2/alerts"]


def test_last_reloads_successful(mon):
    assert last_reload_successful(mon)
    status, text = request(mon["alertmanager"] + "/metrics")
    assert status == 200
    assert re.search(r"^alertmanager_config_last_reload_successful 1$", text, re.MULTILINE)


# --- Alertmanager -> webhook on the controller --------------------------------------------------------
def test_synthetic_alert_reaches_the_controller_webhook(mon):
    gateway, sink_port = lab_var("monitoring_lab_gateway"), int(lab_var("monitoring_lab_webhook_port"))
    test_id = uuid.uuid4().hex
    labels = {"alertname": "MoleculeSyntheticAlert", "severity": "critical", "component": "backend",
              "instance": "molecule", "adg_test_id": test_id}
    alert = {"labels": labels, "annotations": {"summary": "synthetic alert from the monitoring scenario"},
             "generatorURL": "http://molecule.invalid/"}
    with WebhookSink(gateway, sink_port) as sink:
        try:
            status, body = request(mon["alertmanager"] + "/api/v2/alerts", data=[alert], method="POST")
            assert status == 200, body
            received = sink.wait_for(timeout=60, adg_test_id=test_id)
        finally:
            ended = dict(alert, endsAt=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
            request(mon["alertmanager"] + "/api/v2/alerts", data=[ended], method="POST")
    assert received, "no webhook notification reached the controller within 60 s"
    assert {payload["receiver"] for payload in received} == {"critical-alerts"}
    assert received[0]["alerts"][0]["labels"]["adg_test_id"] == test_id


# --- Grafana (API double as an existing Grafana) -------------------------------------------------------
def test_grafana_is_the_standin_and_says_so(host):
    unit = host.file("/etc/systemd/system/adg-grafana-double.service").content_string
    assert "TEST STAND-IN" in unit
    assert host.service("adg-grafana-double").is_running
    assert not host.package("grafana").is_installed


def test_grafana_admin_password_enforced_and_anonymous_refused(mon):
    assert request(mon["grafana"] + "/api/user", auth=("admin", secret("grafana_admin_password")))[0] == 200
    # the existing server's bootstrap password was changed by the role
    assert request(mon["grafana"] + "/api/user", auth=("admin", secret("grafana_url_password")))[0] == 401
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
    assert len(wanted) == 3
    for uid in wanted:
        status, dashboard = request(f"{mon['grafana']}/api/dashboards/uid/{uid}", auth=auth)
        assert status == 200, (uid, dashboard)
        assert dashboard["meta"]["folderUid"] == "autodealgenie"


# --- side converges ------------------------------------------------------------------------------------
BAD_RULES = [
    {"name": "molecule_bad", "rules": [{"alert": "MoleculeBad", "expr": "sum(up{job=", "for": "1m"}]},
]
GOOD_RULES = [
    {"name": "molecule_extra", "rules": [{"record": "adg:molecule_targets_up:sum", "expr": "sum(up)"}]},
]


def converge_prometheus(extra_rules):
    return ansible_playbook(
        str(SCENARIO / "converge.yml"), "--tags", "prometheus", "--limit", MONITORING,
        "--extra-vars", json.dumps({"prometheus_alert_rules_extra": extra_rules}),
    )


def test_bad_rule_fails_validation_and_prometheus_keeps_the_old_rules(host, mon):
    before = host.check_output("sha256sum /etc/prometheus/rules.d/*.yml")
    groups_before, pid_before = rule_group_names(mon), prometheus_pid(host)
    result = converge_prometheus(BAD_RULES)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "failed to validate" in output, output[-3000:]
    assert "Render the site-specific rule groups" in output
    assert host.check_output("sha256sum /etc/prometheus/rules.d/*.yml") == before
    assert rule_group_names(mon) == groups_before == expected_rule_groups()
    assert prometheus_pid(host) == pid_before
    assert last_reload_successful(mon)


def test_good_rule_change_is_a_reload_and_removal_cleans_up(host, mon):
    pid = prometheus_pid(host)
    added = converge_prometheus(GOOD_RULES)
    assert added.returncode == 0, added.stdout[-3000:]
    assert recap(added.stdout, testinfra_hosts[0])["changed"] >= 1
    assert "molecule_extra" in rule_group_names(mon)
    removed = converge_prometheus([])
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert rule_group_names(mon) == expected_rule_groups()
    assert not host.file("/etc/prometheus/rules.d/zz-site-extra.yml").exists
    assert prometheus_pid(host) == pid, "a rule change must reload Prometheus, not restart it"
    assert last_reload_successful(mon)


def test_check_mode_after_converge_changes_nothing():
    result = ansible_playbook(str(REPO / "playbooks" / "monitoring.yml"), "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    for name in testinfra_hosts:
        assert recap(result.stdout, name)["changed"] == 0, result.stdout[-5000:]


# --- the vendor install path, in check mode, on a host without Grafana -----------------------------------
@pytest.fixture(scope="module")
def key_server():
    """A throw-away OpenPGP key served from the controller's lab address, like a repository mirror."""
    gateway = lab_var("monitoring_lab_gateway")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp, "gnupg")
        home.mkdir(mode=0o700)
        env = dict(os.environ, GNUPGHOME=str(home))
        gpg = ["gpg", "--batch", "--quiet"]
        identity = "ADG test repository <repo@test.invalid>"
        subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", identity, "ed25519", "sign", "never"],
                       env=env, check=True)
        colons = subprocess.run([*gpg, "--with-colons", "--list-keys"], env=env, check=True,
                                capture_output=True, text=True).stdout
        fingerprint = re.search(r"^fpr:::::::::([0-9A-F]{40}):", colons, re.MULTILINE).group(1)
        webroot = Path(tmp, "www")
        webroot.mkdir()
        key = subprocess.run([*gpg, "--armor", "--export"], env=env, check=True, capture_output=True).stdout
        (webroot / "gpg.key").write_bytes(key)

        class Quiet(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(webroot), **kwargs)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer((gateway, 0), Quiet)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, bound_port = server.server_address[:2]
            yield {"url": f"http://{host}:{bound_port}", "fingerprint": fingerprint}
        finally:
            server.shutdown()
            server.server_close()


def other_host():
    others = [name for name in RUNNER.get_hosts("all") if name not in testinfra_hosts]
    assert others, "the scenario needs a host outside the monitoring group"
    return others[0]


def vendor_check(key_server, fingerprint):
    return ansible_playbook(
        str(SCENARIO / "grafana_vendor_check.yml"), "--check", "--limit", other_host(),
        "--extra-vars", json.dumps({"grafana_apt_repo_url": key_server["url"],
                                    "grafana_apt_key_fingerprint": fingerprint}),
    )


def test_vendor_install_path_passes_check_mode(key_server):
    result = vendor_check(key_server, key_server["fingerprint"])
    output = result.stdout
    assert result.returncode == 0, output[-4000:]
    assert "Check the key is Grafana's" in output
    assert "grafana is not installed yet" in output
    assert recap(output, other_host())["failed"] == 0


def test_vendor_install_path_refuses_a_key_with_another_fingerprint(key_server):
    result = vendor_check(key_server, "B53AE77BADB630A683046005963FA27710458545")
    assert result.returncode != 0
    assert "expected only" in result.stdout, result.stdout[-3000:]
