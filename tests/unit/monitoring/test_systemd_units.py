"""node_exporter's systemd collector reports the project's units and no others (SystemdUnitFailed reads
them), and its textfile collector reads the directory the project names.

The flags file is rendered by Ansible from the node_exporter role's template with the project's values
(playbooks/defaults/monitoring.yml, through the vars plugin), then read the way systemd and
node_exporter read it: systemd unquotes ARGS and splits it on whitespace, node_exporter anchors the
unit-include regular expression (``^(?:...)$``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.support.paths import REPO

TEMPLATE = REPO / "roles/node_exporter/templates/prometheus-node-exporter.default.j2"

_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: The project's flags
      ansible.builtin.template:
        src: {template}
        dest: {out}/project.default
        mode: "0600"
      vars:
        node_exporter_extra_flags: []  # the role's default (role defaults are not loaded here)
      delegate_to: localhost
    - name: Both collectors off
      ansible.builtin.template:
        src: {template}
        dest: {out}/off.default
        mode: "0600"
      vars:
        node_exporter_extra_flags: [--collector.processes]
        node_exporter_systemd_units: []
        node_exporter_textfile_directory: ""
      delegate_to: localhost
"""


@cache
def rendered(tmp: str) -> dict[str, str]:
    work = Path(tmp)
    inventory = work / "hosts.json"  # a file: Ansible runs vars plugins only for inventory files
    inventory.write_text(
        json.dumps({"all": {"hosts": {"node1": {"ansible_connection": "local", "private_ip": "10.0.0.5"}}}})
    )
    playbook = work / "render.yml"
    playbook.write_text(_PLAYBOOK.format(template=TEMPLATE, out=work))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook)],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return {name: (work / f"{name}.default").read_text() for name in ("project", "off")}


@pytest.fixture(scope="module")
def flags(tmp_path_factory):
    files = rendered(str(tmp_path_factory.mktemp("node-exporter-flags")))
    return {name: systemd_args(text) for name, text in files.items()}


def systemd_args(text: str) -> list[str]:
    """ARGS as the service receives it. Only the characters systemd would not alter are allowed in
    it, so unquoting the one double-quoted value and splitting on whitespace is what systemd does."""
    lines = [line for line in text.splitlines() if line.startswith("ARGS=")]
    assert len(lines) == 1, text
    match = re.fullmatch(r'ARGS="([^"\\$`]*)"', lines[0])
    assert match, f"ARGS holds characters systemd would unescape or expand: {lines[0]}"
    return match.group(1).split()


def flag(args: list[str], name: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(name + "=")]
    assert len(values) <= 1, (name, args)
    return values[0] if values else None


def unit_names_from_templates() -> set[str]:
    """Units the roles install from their own templates (backend's are named by backend_service_name)."""
    names = set()
    for path in REPO.glob("roles/*/templates/*.j2"):
        unit = path.name.removesuffix(".j2")
        if not re.search(r"\.(service|socket|timer)$", unit):
            continue
        if path.parts[-3] == "backend":
            unit = unit.replace("backend", "autodealgenie", 1)
        if "@." in unit:  # a template unit: the instances the roles start
            unit = unit.replace("@.", "@full.")
        names.add(unit)
    return names


# Packaged units the roles manage, plus an instance of every template the roles start.
PACKAGED_UNITS = {
    "postgresql@15-main.service",  # Debian 12
    "postgresql@17-main.service",  # Debian 13
    "redis-server.service",
    "mongod.service",
    "prometheus-node-exporter.service",
    "prometheus.service",
    "prometheus-alertmanager.service",
    "grafana-server.service",
    "pgbackrest-backup@diff.service",
    # the HA topology's Debian units
    "etcd.service",
    "patroni@15-main.service",
    "redis-sentinel.service",
    "haproxy.service",
    "keepalived.service",
}
# Units of the base system (and Debian's umbrella postgresql.service) that must stay out.
OTHER_UNITS = {
    "ssh.service",
    "systemd-journald.service",
    "cron.service",
    "nftables.service",
    "systemd-timesyncd.service",
    "postgresql.service",
    "apt-daily.timer",
    "dbus.socket",
    "prometheus-node-exporter-apt.timer",
    "autodealgenie-extra.service",
    "redis-serverXservice",  # a dot is a literal dot
}


def test_project_units_cover_every_unit_the_roles_install():
    assert {"pgbackrest-metrics.timer", "autodealgenie.socket", "mongodb_exporter.service"} <= (
        unit_names_from_templates()
    ), "the roles' unit templates moved: update this test"


def test_systemd_collector_reports_exactly_the_project_units(flags):
    args = flags["project"]
    assert "--collector.systemd" in args and "--no-collector.systemd" not in args
    include = flag(args, "--collector.systemd.unit-include")
    assert include, args
    pattern = re.compile(f"^(?:{include})$")  # as node_exporter compiles it
    wanted = PACKAGED_UNITS | unit_names_from_templates()
    assert sorted(u for u in wanted if not pattern.match(u)) == []
    assert sorted(u for u in OTHER_UNITS if pattern.match(u)) == []


def test_textfile_directory_is_the_one_the_backups_write_to(flags):
    # The Debian package's own default; the pgbackrest role writes pgbackrest.prom there.
    assert flag(flags["project"], "--collector.textfile.directory") == "/var/lib/prometheus/node-exporter"
    assert flag(flags["project"], "--web.listen-address") == "10.0.0.5:9100"


def test_empty_values_turn_both_collectors_off(flags):
    args = flags["off"]
    assert "--no-collector.systemd" in args and "--no-collector.textfile" in args
    assert flag(args, "--collector.systemd.unit-include") is None
    assert flag(args, "--collector.textfile.directory") is None
    assert args[-1] == "--collector.processes", "extra flags come last"
