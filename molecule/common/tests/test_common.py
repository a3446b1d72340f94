"""Verify playbooks/common.yml (roles common and node_exporter) on real systemd test hosts:
firewall, node_exporter, time sync, check mode after the converge."""

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import testinfra.utils.ansible_runner
from adg_molecule import port, private_ip, remote_tcp_probe, tcp_probe

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("all")

NODE_EXPORTER = port("node_exporter_port")
MONITORING = "monitoring"
# No allow list opens this port; the test runs a listener there itself.
UNLISTED_PORT = 18099


def test_firewall_ruleset_active(host):
    ruleset = host.check_output("nft list table inet common_firewall")
    assert "policy drop" in ruleset
    assert 'comment "ssh"' in ruleset
    assert host.service("nftables").is_enabled


def test_node_exporter_listens_on_private_address_only(host):
    service = host.service("prometheus-node-exporter")
    assert service.is_enabled
    assert service.is_running
    assert host.socket(f"tcp://{private_ip(host)}:{NODE_EXPORTER}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{NODE_EXPORTER}").is_listening
    assert not host.socket(f"tcp://127.0.0.1:{NODE_EXPORTER}").is_listening


def test_node_exporter_answers_the_controller(host):
    url = f"http://{private_ip(host)}:{NODE_EXPORTER}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    assert response.status == 200
    assert "node_cpu_seconds_total" in body


def test_unlisted_port_is_dropped_for_the_controller(host):
    """A port with a listener but no allow list entry: open from the host itself, dropped from outside."""
    address = private_ip(host)
    unit = "common-verify-listener"
    serve = "systemd-run --unit %s python3 -m http.server %s --bind %s"
    host.check_output(serve, unit, str(UNLISTED_PORT), address)
    try:
        wait = (
            "for i in $(seq 50); do ss -Htln 'sport = :%s' | grep -q . && echo up && break; sleep 0.1; done"
        )
        assert host.check_output(wait, str(UNLISTED_PORT)) == "up"
        assert remote_tcp_probe(host, address, UNLISTED_PORT) == "open"
        assert tcp_probe(address, UNLISTED_PORT) == "filtered"
    finally:
        host.run("systemctl stop %s", unit)


def test_node_exporter_reachable_only_from_monitoring(host):
    """From a monitoring host every other host's node_exporter answers; from any other host none does."""
    me = host.backend.get_hostname()
    scraper = MONITORING in RUNNER.get_variables(me).get("group_names", [])
    others = [name for name in RUNNER.get_hosts("all") if name != me]
    assert others, "the scenario needs at least two hosts"
    for name in others:
        result = remote_tcp_probe(host, RUNNER.get_variables(name)["ansible_host"], NODE_EXPORTER)
        assert result == ("open" if scraper else "filtered"), f"{me} -> {name}: {result}"


def test_time_sync(host):
    """timesyncd is enabled everywhere; it runs on VMs and is skipped by its condition in containers."""
    timesyncd = host.service("systemd-timesyncd")
    assert timesyncd.is_enabled
    container = host.run("systemd-detect-virt --container").rc == 0
    if container:
        host.run("systemctl start systemd-timesyncd")
        assert not timesyncd.is_running
        assert (
            host.check_output("systemctl show -p ConditionResult systemd-timesyncd") == "ConditionResult=no"
        )
    else:
        assert timesyncd.is_running


def run_common(*args):
    """playbooks/common.yml against this scenario's inventory, the way molecule runs it."""
    repo = Path(__file__).resolve().parents[3]
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(repo / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "facts"),
        ANSIBLE_NOCOLOR="1",
    )
    command = [shutil.which("ansible-playbook") or "ansible-playbook"]
    command += ["-i", os.environ["MOLECULE_INVENTORY_FILE"], str(repo / "playbooks" / "common.yml"), *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=repo, timeout=600, check=False
    )


def test_check_mode_after_converge_changes_nothing():
    result = run_common("--check")
    assert result.returncode == 0, result.stdout[-3000:]
    for name in RUNNER.get_hosts("all"):
        recap = re.search(rf"^{re.escape(name)}\s+:.*\bchanged=(\d+)", result.stdout, re.MULTILINE)
        assert recap and recap.group(1) == "0", result.stdout[-4000:]


def test_node_exporter_refuses_a_wildcard_address_before_changing_anything():
    result = run_common("--check", "--tags", "node_exporter", "-e", "node_exporter_listen_address=0.0.0.0")
    assert result.returncode != 0
    output = result.stdout
    assert "node_exporter_listen_address" in output and "every interface" in output, output[-3000:]
