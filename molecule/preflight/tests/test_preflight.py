"""The preflight on real test hosts: the staging inventory's settings and placeholder vault stop
site.yml in the preflight with the complete list, and leave every host exactly as it was.

The inventory is this scenario's hosts (addresses, SSH key, groups) plus the staging inventory's
group_vars (its placeholder vault opened with the documented password `placeholder`). A second,
clean inventory of the same hosts (generated secrets, a webhook on the controller) passes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner
import yaml

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
WORK = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "preflight"
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("all")

TIERS = ("app", "postgres", "redis", "mongodb", "monitoring")
PREFLIGHT_PLAY = "Preflight - check every host and setting before anything changes"
LINE = re.compile(r"^  (?P<host>\S+): (?P<var>\S+?)(?: \(from (?P<source>[^)]*)\))?: (?P<reason>.+)$")
# What the staging placeholders must produce on these three hosts: every secret and receiver each
# host's components use, and nothing a host does not use (app1 is never asked for MongoDB's admin
# password, data1 never for Slack).
EXPECTED = {
    ("app1", "backend_jwt_secret"),
    ("app1", "backend_postgresql_password"),
    ("app1", "backend_redis_password"),
    ("app1", "backend_secret_key"),
    ("app1", "mongodb_app_password"),
    ("data1", "mongodb_admin_password"),
    ("data1", "mongodb_app_password"),
    ("data1", "mongodb_monitor_password"),
    ("data1", "postgres_exporter_db_password"),
    ("data1", "postgresql_app_password"),
    ("data1", "postgresql_monitor_password"),
    ("data1", "redis_app_password"),
    ("data1", "redis_exporter_redis_password"),
    ("data1", "redis_monitor_password"),
    ("mon1", "alertmanager_pagerduty_routing_key"),
    ("mon1", "alertmanager_slack_webhook_url"),
    ("mon1", "alertmanager_smtp_auth_password"),
    ("mon1", "alertmanager_smtp_from"),
    ("mon1", "alertmanager_smtp_smarthost"),
    ("mon1", "alertmanager_webhook_urls[0]"),
    ("mon1", "grafana_admin_password"),
}
# Packages the roles install; none may appear (the full package list is compared as well).
ROLE_PACKAGES = (
    "nftables",
    "prometheus-node-exporter",
    "postgresql",
    "prometheus-postgres-exporter",
    "redis-server",
    "prometheus-redis-exporter",
    "mongodb-org",
    "prometheus",
    "prometheus-alertmanager",
    "grafana",
    "python3-venv",
)
MARKER = "/run/adg-preflight-before"
SNAPSHOT = {
    "packages": "dpkg-query -W -f '${Package} ${Version} ${Status}\\n' | sort",
    "enabled_units": "systemctl list-unit-files --state=enabled --no-legend --no-pager | sort",
    "nft": "command -v nft >/dev/null && nft list ruleset || echo 'no nft'",
    "users": "getent passwd | cut -d: -f1 | sort",
    # files written since the marker, outside what the login itself touches (/root, logs, state)
    "new_files": f"find /etc /opt /usr /srv /var/lib -xdev -newer {MARKER} -not -path '/var/lib/systemd/*'",
}


def _ansible_playbook():
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else "ansible-playbook"


def _hosts_inventory():
    """The scenario's hosts as an inventory: connection settings, private_ip and tier groups."""
    hosts, children = {}, {tier: {"hosts": {}} for tier in TIERS}
    for name in RUNNER.get_hosts("all"):
        variables = RUNNER.get_variables(name)
        connection = {k: v for k, v in variables.items() if k.startswith("ansible_")}
        hosts[name] = {**connection, "private_ip": variables["ansible_host"]}
        for group in variables.get("group_names", []):
            if group in children:
                children[group]["hosts"][name] = None
    return {"all": {"hosts": hosts, "children": children}}


def _inventory(name, group_vars):
    """An inventory directory: the hosts plus `group_vars` (a directory linked in, or files)."""
    directory = WORK / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(_hosts_inventory()))
    if isinstance(group_vars, Path):
        (directory / "group_vars").symlink_to(group_vars)
    else:
        for relative, content in group_vars.items():
            path = directory / "group_vars" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                path.symlink_to(content)
            else:
                path.write_text(yaml.safe_dump(content))
    return directory


def _run(inventory, playbook, *extra):
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(WORK / "facts"),  # a fresh fact cache
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = [_ansible_playbook(), "-i", str(inventory), str(REPO / "playbooks" / playbook), *extra]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    mode = "-check" if "--check" in extra else ""
    log = WORK / f"{inventory.name}-{playbook.removesuffix('.yml')}{mode}.log"
    log.write_text(done.stdout + done.stderr + f"\n# rc={done.returncode} {elapsed:.1f} s\n")
    return done


def _reported(stdout):
    """(host, variable) of every problem line, from the preflight's one failure message."""
    return {(m["host"], m["var"]) for m in map(LINE.match, stdout.splitlines()) if m}


def _snapshot(host):
    return {key: host.run(command).stdout for key, command in SNAPSHOT.items()}


def _python_version(host):
    return host.check_output("python3 -c 'import platform; print(platform.python_version())'")


@pytest.fixture(scope="module")
def staging_run():
    """site.yml on the test hosts with the staging settings, framed by host snapshots."""
    WORK.mkdir(parents=True, exist_ok=True)
    hosts = {name: RUNNER.get_host(name) for name in RUNNER.get_hosts("all")}
    for host in hosts.values():
        host.check_output(f"touch {MARKER} && sleep 1")
    before = {name: _snapshot(host) for name, host in hosts.items()}
    password = WORK / "vault-password"
    password.write_text("placeholder\n")
    password.chmod(0o600)
    inventory = _inventory("staging", REPO / "inventories" / "staging" / "group_vars")
    site = _run(inventory, "site.yml", f"--vault-password-file={password}")
    check = _run(inventory, "preflight.yml", f"--vault-password-file={password}", "--check")
    after = {name: _snapshot(host) for name, host in hosts.items()}
    return {"site": site, "check": check, "before": before, "after": after, "hosts": hosts}


def _expected(staging_run):
    expected = set(EXPECTED)
    # app1 would also be reported if the controller built wheels for another Python
    controller = subprocess.run(
        ["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if controller != _python_version(staging_run["hosts"]["app1"]):
        expected.add(("app1", "backend_build_python"))
    return expected


def test_site_stops_in_the_preflight_with_the_complete_list(staging_run):
    site = staging_run["site"]
    assert site.returncode == 2, site.stdout[-4000:]
    assert _reported(site.stdout) == _expected(staging_run), site.stdout[-6000:]
    assert f"Preflight found {len(_expected(staging_run))} problem(s) on 3 host(s)" in site.stdout


def test_no_later_play_starts_and_every_host_is_stopped(staging_run):
    out = staging_run["site"].stdout
    assert re.findall(r"^PLAY \[(.+?)\]", out, re.MULTILINE) == [PREFLIGHT_PLAY]
    for name in testinfra_hosts:
        assert re.search(rf"^{name}\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=1\b", out, re.MULTILINE)


def test_check_mode_reports_the_same_list(staging_run):
    check = staging_run["check"]
    assert check.returncode == 2
    assert _reported(check.stdout) == _expected(staging_run)


def test_no_secret_value_is_printed(staging_run):
    for run in (staging_run["site"], staging_run["check"]):
        assert "REPLACE_ME" not in run.stdout + run.stderr


def test_host_is_unchanged(host, staging_run):
    name = host.backend.get_hostname()
    before, after = staging_run["before"][name], staging_run["after"][name]
    for key in SNAPSHOT:
        assert after[key] == before[key], f"{name}: {key} changed"
    assert after["new_files"] == "", f"{name}: files written: {after['new_files']}"
    for package in ROLE_PACKAGES:
        assert not host.package(package).is_installed, package
    assert host.run("nft list table inet common_firewall").rc != 0
    assert not host.file("/etc/autodealgenie").exists
    assert not host.file("/opt/autodealgenie").exists


def test_a_clean_inventory_passes_the_preflight():
    """The same hosts with usable settings: generated secrets, alerts to a webhook on the controller
    (never called: the preflight only reads). Nothing after the preflight runs here."""
    gateway = re.sub(r"\.\d+$", ".1", RUNNER.get_variables("mon1")["ansible_host"])
    inventory = _inventory(
        "clean",
        {
            "all/secrets.yml": REPO / "tests/molecule/group_vars/all/secrets.yml",
            "all/lab.yml": {
                "adg_secrets_dir": str(WORK / "clean-secrets"),
                "alertmanager_webhook_urls": [f"http://{gateway}:19099/alerts"],
            },
        },
    )
    done = _run(inventory, "preflight.yml")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Preflight: no problem found on 3 host(s)." in done.stdout
    assert _reported(done.stdout) == set()
