"""The blackbox exporter on the monitoring host (role autodealgenie.ops.blackbox_exporter).

It probes like a client for its own Prometheus: a live URL is probe_success 1, a refused port 0.
Probes are asked for on the monitoring host itself (only the monitoring hosts may ask: the
exporter connects wherever a request tells it to). This lab has no app host, so the probe job
blackbox-api has no targets and is left out; the default scenario covers it
(molecule/default/tests/test_26_blackbox_probe.py). The exporter's own scrape target
(job blackbox-exporter) is among the targets test_monitoring.py expects up.
"""

from __future__ import annotations

import re
import urllib.parse

import testinfra
import yaml
from adg_molecule import port, remote_tcp_probe, tcp_probe
from monitoring_lab import INVENTORY, MONITORING_HOSTS, PROMETHEUS_PORT, RUNNER, monitoring_urls, request

testinfra_hosts = MONITORING_HOSTS

BLACKBOX_PORT = port("blackbox_exporter_port")
UNIT = "prometheus-blackbox-exporter"


def probe_on_host(host, target: str, module: str = "http_2xx") -> dict[str, float]:
    """The probe_* series of one /probe request, sent from the monitoring host to its exporter."""
    ip = monitoring_urls()["ip"]
    query = urllib.parse.urlencode({"module": module, "target": target})
    url = f"http://{ip}:{BLACKBOX_PORT}/probe?{query}"
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=15).read().decode())"
    text = host.check_output("python3 -c %s", script)
    return {m[0]: float(m[1]) for m in re.findall(r"^(probe_\w+) (\S+)$", text, re.MULTILINE)}


def test_listens_on_the_private_address_only(host):
    ip = monitoring_urls()["ip"]
    assert host.service(UNIT).is_running, host.run("journalctl -u %s -n 30 --no-pager", UNIT).stdout
    assert host.service(UNIT).is_enabled
    assert host.socket(f"tcp://{ip}:{BLACKBOX_PORT}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{BLACKBOX_PORT}").is_listening
    # the package's postinst start was blocked: every listener ever logged used our address
    log = host.check_output("journalctl -u %s --no-pager -o cat", UNIT)
    addresses = set(re.findall(r'msg="Listening on" address=(\S+)', log))
    assert addresses == {f"{ip}:{BLACKBOX_PORT}"}, addresses


def test_hardened_and_self_healing(host):
    show = host.check_output(
        "systemctl show %s -p User -p NoNewPrivileges -p ProtectSystem -p CapabilityBoundingSet -p Restart",
        UNIT,
    )
    props = dict(line.split("=", 1) for line in show.splitlines())
    assert props["User"] == "prometheus"
    assert props["NoNewPrivileges"] == "yes" and props["ProtectSystem"] == "strict"
    assert props["CapabilityBoundingSet"] == ""
    assert props["Restart"] == "always"


def test_only_the_role_modules_are_loaded(host):
    config = host.file("/etc/prometheus/blackbox.yml")
    assert config.mode == 0o640 and config.user == "root" and config.group == "prometheus"
    modules = yaml.safe_load(config.content_string)["modules"]
    assert set(modules) == {"http_2xx"}  # not Debian's example modules
    http = modules["http_2xx"]["http"]
    assert http["method"] == "GET" and http["preferred_ip_protocol"] == "ip4"
    assert http["fail_if_not_ssl"] is False and "tls_config" not in http


def test_config_check_refuses_a_broken_module(host):
    """The check the role's validate: runs before a swap can fail (an unknown field)."""
    bad = host.run(
        "f=$(mktemp) && printf 'modules:\\n  x:\\n    prober: http\\n    http:\\n      bogus: 1\\n' > $f"
        " && /usr/bin/prometheus-blackbox-exporter --config.check --config.file=$f; rc=$?; rm -f $f; exit $rc"
    )
    assert bad.rc != 0, bad.stdout + bad.stderr
    good = host.run(
        "/usr/bin/prometheus-blackbox-exporter --config.check --config.file=/etc/prometheus/blackbox.yml"
    )
    assert good.rc == 0, good.stderr


def test_a_live_url_is_probe_success_1(host):
    ip = monitoring_urls()["ip"]
    series = probe_on_host(host, f"http://{ip}:{PROMETHEUS_PORT}/-/healthy")
    assert series["probe_success"] == 1, series
    assert series["probe_http_status_code"] == 200, series
    assert 0 < series["probe_duration_seconds"] < 5, series


def test_a_refused_port_is_probe_success_0(host):
    """Nothing listens on port 1 of the monitoring host: refused at once, the probe fails."""
    ip = monitoring_urls()["ip"]
    series = probe_on_host(host, f"http://{ip}:1/")
    assert series["probe_success"] == 0, series
    assert series["probe_http_status_code"] == 0, series


def test_a_non_2xx_answer_is_probe_success_0(host):
    ip = monitoring_urls()["ip"]
    series = probe_on_host(host, f"http://{ip}:{PROMETHEUS_PORT}/no-such-page")
    assert series["probe_http_status_code"] == 404, series
    assert series["probe_success"] == 0, series


def test_only_monitoring_hosts_may_ask_for_probes(host):
    """Not the lab's operator address (the controller), not another host of the deployment."""
    ip = monitoring_urls()["ip"]
    assert remote_tcp_probe(host, ip, BLACKBOX_PORT) == "open"
    assert tcp_probe(ip, BLACKBOX_PORT) == "filtered"
    others = [name for name in RUNNER.get_hosts("all") if name not in MONITORING_HOSTS]
    assert others, "the scenario has an app-like host"
    for name in others:
        other = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
        assert remote_tcp_probe(other, ip, BLACKBOX_PORT) == "filtered", name


def test_prometheus_runs_no_probe_job_without_app_hosts():
    status, body = request(monitoring_urls()["prometheus"] + "/api/v1/status/config")
    assert status == 200, body
    jobs = {job["job_name"]: job for job in yaml.safe_load(body["data"]["yaml"])["scrape_configs"]}
    assert "blackbox-exporter" in jobs
    assert "blackbox-api" not in jobs
