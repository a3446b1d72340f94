"""Side converges of the monitoring scenario, run from the controller like an operator would.

* a bad rule fails the promtool check of the staged rule set while Prometheus keeps serving the old
  rules (no live rule file replaced); an unknown flag never reaches /etc/default/prometheus or
  /etc/default/prometheus-alertmanager;
* a good rule change is applied by a reload (same PID), and removing it cleans up;
* --check after the converge reports nothing to change;
* the three roles' install paths pass --check on a host without them (Grafana by the vendor path,
  with a fingerprint-checked key: a throw-away key served from the controller's lab address), and
  the vendor path refuses a key with another fingerprint.

This module changes Prometheus' rules for a moment, so it runs after test_monitoring.py.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from monitoring_lab import (
    MONITORING,
    MONITORING_HOSTS,
    REPO,
    RUNNER,
    SCENARIO,
    ansible_playbook,
    expected_rule_groups,
    gpg,
    last_reload_successful,
    monitoring_urls,
    prometheus_pid,
    recap,
    request,
    rule_group_names,
    serve_directory,
    throwaway_signing_key,
)

testinfra_hosts = MONITORING_HOSTS


@pytest.fixture(scope="module")
def mon():
    return monitoring_urls()


BAD_RULES = [
    {"name": "molecule_bad", "rules": [{"alert": "MoleculeBad", "expr": "sum(up{job=", "for": "1m"}]},
]
GOOD_RULES = [
    {"name": "molecule_extra", "rules": [{"record": "adg:molecule_targets_up:sum", "expr": "sum(up)"}]},
]


def converge_prometheus(extra_rules, **extra_vars):
    return ansible_playbook(
        str(SCENARIO / "converge.yml"),
        "--tags",
        "prometheus",
        "--limit",
        MONITORING,
        "--extra-vars",
        json.dumps({"prometheus_alert_rules_extra": extra_rules, **extra_vars}),
    )


def handler_result(output, handler):
    """'changed', 'ok' or 'skipping' for a handler that ran (None when it was not notified)."""
    match = re.search(
        rf"RUNNING HANDLER \[(?:autodealgenie\.ops\.)?prometheus : {handler}\].*?^(changed|ok|skipping):",
        output,
        re.MULTILINE | re.DOTALL,
    )
    return match.group(1) if match else None


def test_bad_rule_fails_validation_and_prometheus_keeps_the_old_rules(host, mon):
    """The rule set is staged and checked as one set: a bad file in it replaces no live file."""
    before = host.check_output("sha256sum /etc/prometheus/rules.d/*.yml")
    groups_before, pid_before = rule_group_names(mon), prometheus_pid(host)
    # A good change to a shipped file's setting in the same run must not reach the live files either.
    result = converge_prometheus(BAD_RULES, prometheus_alert_rules_interval="45s")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Fail before the swap when promtool rejects the rule set" in output
    assert "promtool rejected the rule set staged in /etc/prometheus/rules.d.candidate" in output, output[
        -3000:
    ]
    assert "zz-site-extra.yml" in output
    assert "Swap the checked rule set in" not in output
    assert host.check_output("sha256sum /etc/prometheus/rules.d/*.yml") == before
    assert rule_group_names(mon) == groups_before == expected_rule_groups()
    assert prometheus_pid(host) == pid_before
    assert last_reload_successful(mon)


def test_unknown_flag_never_reaches_the_live_flags_file(host, mon):
    before = host.file("/etc/default/prometheus").sha256sum
    pid = prometheus_pid(host)
    result = converge_prometheus([], prometheus_flags_extra=["--storage.tsdb.retension.time=31d"])
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Render the command-line flags (/etc/default/prometheus" in output
    assert (
        "check-env-file: /etc/default/prometheus: ARGS: --storage.tsdb.retension.time"
        " is not a flag of /usr/bin/prometheus" in output
    ), output[-3000:]
    assert host.file("/etc/default/prometheus").sha256sum == before
    assert prometheus_pid(host) == pid
    assert host.service("prometheus").is_running


def test_unknown_alertmanager_flag_never_reaches_the_live_flags_file(host):
    am_service = "prometheus-alertmanager"
    am_pid = host.check_output("systemctl show -P MainPID %s", am_service)
    flags_before = host.file("/etc/default/prometheus-alertmanager").sha256sum
    result = ansible_playbook(
        str(SCENARIO / "converge.yml"),
        "--tags",
        "alertmanager",
        "--limit",
        MONITORING,
        "--extra-vars",
        json.dumps({"alertmanager_flags_extra": ["--cluster.gossip-interval-typo=200ms"]}),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert (
        "check-env-file: /etc/default/prometheus-alertmanager: ARGS:"
        " --cluster.gossip-interval-typo is not a flag" in output
    )
    assert host.file("/etc/default/prometheus-alertmanager").sha256sum == flags_before
    assert host.check_output("systemctl show -P MainPID %s", am_service) == am_pid


def test_good_rule_change_is_a_reload_and_removal_cleans_up(host, mon):
    pid = prometheus_pid(host)
    added = converge_prometheus(GOOD_RULES)
    assert added.returncode == 0, added.stdout[-3000:]
    assert recap(added.stdout, MONITORING_HOSTS[0])["changed"] >= 1
    assert "molecule_extra" in rule_group_names(mon)
    removed = converge_prometheus([])
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert rule_group_names(mon) == expected_rule_groups()
    assert not host.file("/etc/prometheus/rules.d/zz-site-extra.yml").exists
    assert prometheus_pid(host) == pid, "a rule change must reload Prometheus, not restart it"
    assert last_reload_successful(mon)


def test_flag_and_rule_change_together_restart_once(host, mon):
    """A flag change restarts; the reload notified by the rule change in the same run is skipped."""
    pid = prometheus_pid(host)
    both = converge_prometheus(GOOD_RULES, prometheus_retention_time="31d")
    try:
        assert both.returncode == 0, both.stdout[-3000:]
        assert handler_result(both.stdout, "Restart prometheus") == "changed", both.stdout[-3000:]
        assert handler_result(both.stdout, "Reload prometheus") == "skipping", both.stdout[-3000:]
        assert prometheus_pid(host) != pid
        assert "molecule_extra" in rule_group_names(mon)
        status, body = request(mon["prometheus"] + "/api/v1/status/flags")
        assert status == 200 and body["data"]["storage.tsdb.retention.time"] == "31d"
    finally:
        restored = converge_prometheus([])
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert rule_group_names(mon) == expected_rule_groups()
    assert last_reload_successful(mon)


def task_result(output, task):
    """'ok', 'changed', 'skipping'... for the first run of a task (None when it did not run)."""
    match = re.search(
        rf"TASK \[(?:autodealgenie\.ops\.)?{re.escape(task)}\].*?^(changed|ok|skipping|fatal):",
        output,
        re.MULTILINE | re.DOTALL,
    )
    return match.group(1) if match else None


def test_tags_configure_ends_with_the_readiness_checks():
    """--tags configure re-applies the configuration and does not finish before every service
    answers with it (the roles tag their run phase configure too); on a converged lab it changes nothing."""
    result = ansible_playbook(str(REPO / "playbooks" / "monitoring.yml"), "--tags", "configure")
    assert result.returncode == 0, result.stdout[-3000:]
    for task in (
        "alertmanager : Wait for Alertmanager to be ready",
        "alertmanager : Check the live configuration is the one just written (last reload successful)",
        "prometheus : Wait for Prometheus to be ready",
        "prometheus : Check the live configuration is the one just written (last reload successful)",
        "grafana : Push the dashboards",
    ):
        assert task_result(result.stdout, task) == "ok", (task, result.stdout[-3000:])
    for name in MONITORING_HOSTS:
        assert recap(result.stdout, name)["changed"] == 0, result.stdout[-5000:]


def test_check_mode_after_converge_changes_nothing():
    result = ansible_playbook(str(REPO / "playbooks" / "monitoring.yml"), "--check")
    assert result.returncode == 0, result.stdout[-3000:]
    for name in MONITORING_HOSTS:
        assert recap(result.stdout, name)["changed"] == 0, result.stdout[-5000:]


# --- the vendor install path, in check mode, on a host without Grafana -----------------------------------
@pytest.fixture(scope="module")
def key_server():
    """A throw-away OpenPGP key served from the controller's lab address, like a repository mirror."""
    with tempfile.TemporaryDirectory() as tmp:
        home, fingerprint = throwaway_signing_key(tmp)
        webroot = Path(tmp, "www")
        webroot.mkdir()
        (webroot / "gpg.key").write_bytes(gpg(home, "--armor", "--export").stdout)
        with serve_directory(webroot) as url:
            yield {"url": url, "fingerprint": fingerprint}


def other_host():
    others = [name for name in RUNNER.get_hosts("all") if name not in MONITORING_HOSTS]
    assert others, "the scenario needs a host outside the monitoring group"
    return others[0]


def vendor_check(key_server, fingerprint):
    return ansible_playbook(
        str(SCENARIO / "fresh_host_check.yml"),
        "--check",
        "--limit",
        other_host(),
        "--extra-vars",
        json.dumps({"grafana_apt_repo_url": key_server["url"], "grafana_apt_key_fingerprint": fingerprint}),
    )


def test_install_paths_pass_check_mode_on_a_fresh_host(key_server):
    """All three roles in --check where nothing is installed; Grafana by the vendor path."""
    result = vendor_check(key_server, key_server["fingerprint"])
    output = result.stdout
    assert result.returncode == 0, output[-4000:]
    assert "Check the key is Grafana's" in output
    for package in ("prometheus-alertmanager", "prometheus", "grafana"):
        assert f"Check mode: {package} is not installed yet" in output, output[-4000:]
    assert recap(output, other_host())["failed"] == 0


def test_vendor_install_path_refuses_a_key_with_another_fingerprint(key_server):
    result = vendor_check(key_server, "B53AE77BADB630A683046005963FA27710458545")
    assert result.returncode != 0
    assert "expected only" in result.stdout, result.stdout[-3000:]
