"""playbooks/preflight.yml through ansible-playbook on the controller (connection local: no network).

The action resolves each host's values (inventory over the roles' defaults, vault_* mapping from
playbooks/defaults/secrets.yml), reports every problem in one failure, works in --check, and no
later play runs for any host. The platform lines depend on the controller (its service manager),
so they are left out of the exact comparisons; the molecule scenario `preflight` covers them on
real test hosts.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import subprocess
import sys

import pytest
import yaml

from tests.support.paths import REPO

LINE = re.compile(r"^  (?P<host>\S+): (?P<var>\S+?)(?: \(from (?P<source>[^)]*)\))?: (?P<reason>.+)$")
PLATFORM_VARS = {"ansible_facts['service_mgr']", "ansible_facts['distribution']"}
PLATFORM_VARS |= {"ansible_facts['distribution_major_version']"}


def strong():
    return secrets.token_urlsafe(24)


GOOD_VAULT = {
    "vault_postgresql_app_password": strong(),
    "vault_postgresql_monitor_password": strong(),
    "vault_redis_app_password": strong(),
    "vault_redis_exporter_password": strong(),
    "vault_mongodb_admin_password": strong(),
    "vault_mongodb_app_password": strong(),
    "vault_mongodb_exporter_password": strong(),
    "vault_grafana_admin_password": strong(),
    "vault_backend_secret_key": strong(),
    "vault_backend_jwt_secret": strong(),
}
HOSTS = {
    "all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {
            "app": {"hosts": {"app1": {"private_ip": "127.0.0.11"}}},
            "postgres": {"hosts": {"data1": {"private_ip": "127.0.0.21"}}},
            "redis": {"hosts": {"data1": None}},
            "mongodb": {"hosts": {"data1": None}},
            "monitoring": {"hosts": {"mon1": {"private_ip": "127.0.0.31"}}},
        },
    }
}
LATER_PLAY = """
- name: Preflight
  ansible.builtin.import_playbook: {preflight}

- name: A later play that must never run after a failed preflight
  hosts: all
  gather_facts: false
  tasks:
    - name: Leave a marker on the controller
      ansible.builtin.copy:
        content: "ran\\n"
        dest: "{marker_dir}/{{{{ inventory_hostname }}}}"
        mode: "0600"
      delegate_to: localhost
"""


# A host nobody can reach (ssh to a closed loopback port): reported with the rest, not aborting.
GHOST = {
    "ansible_connection": "ssh",
    "ansible_host": "127.0.0.1",
    "ansible_port": 1,
    "private_ip": "127.0.0.41",
}


def run(tmp_path, vault, extra_vars=None, check=False, ghost=False):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    hosts = copy.deepcopy(HOSTS)
    if ghost:
        hosts["all"]["hosts"] = {"ghost": GHOST}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    # the wheel-building interpreter is the one the hosts run, as on a matching controller
    settings = {"backend_build_python": sys.executable, "alertmanager_webhook_urls": ["http://127.0.0.1:9/x"]}
    settings.update(extra_vars or {})
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(settings))
    (inventory / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump(vault))
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    playbook = tmp_path / "site.yml"
    playbook.write_text(LATER_PLAY.format(preflight=REPO / "playbooks/preflight.yml", marker_dir=markers))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = [sys.executable, "-m", "ansible.cli.playbook", "-i", str(inventory), str(playbook)]
    done = subprocess.run(
        argv + (["--check"] if check else []), cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    return done, sorted(p.name for p in markers.iterdir())


def reported(stdout):
    found = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match and match["var"] not in PLATFORM_VARS:
            reason = match["reason"].split(": ssh:")[0]  # ssh's own words vary
            found[(match["host"], match["var"])] = (match["source"] or "", reason)
    return found


BAD = {
    **GOOD_VAULT,
    "vault_backend_jwt_secret": "changeme",
    "vault_mongodb_admin_password": "REPLACE_ME",
    "vault_alertmanager_slack_webhook_url": "http://hooks.slack.com/services/T01/B02/tokenSLACKvalue",
}
del BAD["vault_redis_exporter_password"]
# inventory values win over the roles' defaults (grafana_version) and over the project's defaults
BAD_SETTINGS = {"grafana_version": "latest", "redis_exporter_port": 9187}
EXPECTED = {
    ("app1", "backend_jwt_secret"): ("vault_backend_jwt_secret", "is a well-known default"),
    ("data1", "mongodb_admin_password"): ("vault_mongodb_admin_password", "is a placeholder"),
    # one vault variable feeds the server's monitoring user and the exporter's login
    ("data1", "redis_monitor_password"): (
        "vault_redis_exporter_password",
        "is not set: 'vault_redis_exporter_password' is undefined",
    ),
    ("data1", "redis_exporter_redis_password"): (
        "vault_redis_exporter_password",
        "is not set: 'vault_redis_exporter_password' is undefined",
    ),
    ("data1", "redis_exporter_port"): ("", "port 9187 is also postgres_exporter_port on this host"),
    ("mon1", "alertmanager_slack_webhook_url"): ("vault_alertmanager_slack_webhook_url", "must use https"),
    ("mon1", "grafana_version"): (
        "",
        r"'latest' is not a pinned version (expected ^[0-9]+\.[0-9]+\.[0-9]+$)",
    ),
    ("ghost", "ansible_host"): ("", "is unreachable: Failed to connect to the host via ssh"),
}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("bad"), BAD, BAD_SETTINGS, ghost=True)


def test_every_problem_is_reported_once_with_host_variable_and_source(failed_run):
    done, _markers = failed_run
    assert done.returncode != 0
    assert reported(done.stdout) == EXPECTED, done.stdout[-3000:]


def test_no_later_play_runs_for_any_host(failed_run):
    done, markers = failed_run
    assert markers == []
    assert "PLAY [A later play" not in done.stdout
    plays = re.findall(r"^PLAY \[(.+?)\]", done.stdout, re.MULTILINE)
    assert plays == ["Preflight - check every host and setting before anything changes"]
    # every host ends failed, not only the one the report ran on
    for host in ("app1", "data1", "mon1", "ghost"):
        assert re.search(rf"^{host}\s+: .*failed=1", done.stdout, re.MULTILINE), host


def test_no_value_is_printed(failed_run):
    done, _markers = failed_run
    for value in ("REPLACE_ME", "changeme", "tokenSLACKvalue", *GOOD_VAULT.values()):
        assert value not in done.stdout + done.stderr


def test_check_mode_reports_the_same(tmp_path):
    done, markers = run(tmp_path, BAD, BAD_SETTINGS, check=True, ghost=True)
    assert done.returncode != 0
    assert reported(done.stdout) == EXPECTED
    assert markers == []


def test_a_clean_inventory_passes(tmp_path):
    done, markers = run(tmp_path, GOOD_VAULT)
    platform = [line for line in done.stdout.splitlines() if LINE.match(line)]
    assert reported(done.stdout) == {}, done.stdout[-3000:]
    if not platform:  # a systemd controller: nothing at all to report, the later play runs
        assert done.returncode == 0
        assert "Preflight: no problem found on 3 host(s)." in done.stdout
        assert markers == ["app1", "data1", "mon1"]
    else:
        assert all("ansible_facts[" in line for line in platform)
