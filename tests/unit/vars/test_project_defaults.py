"""The project_defaults vars plugin, through real ansible runs on localhost (no host is contacted):
its defaults reach every host and hostvars, and every inventory place an operator uses wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ANSIBLE = Path(sys.executable).with_name("ansible")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture
def project(tmp_path):
    """A minimal project: ansible.cfg enabling the plugin, two defaults files, an inventory."""
    write(
        tmp_path / "ansible.cfg",
        f"""\
        [defaults]
        collections_path = {REPO / ".cache/collections"}
        vars_plugins_enabled = host_group_vars, autodealgenie.ops.project_defaults
        [autodealgenie_ops_project_defaults]
        paths = ./defaults
        """,
    )
    write(
        tmp_path / "defaults/10-base.yml",
        """\
        port: 1000
        tier_setting: project
        listen: "{{ private_ip }}:{{ port }}"
        overridden_by_later_file: first
        """,
    )
    write(tmp_path / "defaults/20-more.yml", "overridden_by_later_file: second\n")
    write(
        tmp_path / "inventory/hosts.yml",
        """\
        all:
          children:
            web:
              hosts:
                w1: {private_ip: 10.0.0.1, ansible_connection: local}
            db:
              hosts:
                d1: {private_ip: 10.0.0.2, ansible_connection: local}
        """,
    )
    return tmp_path


def ansible(project: Path, host: str, *args: str) -> subprocess.CompletedProcess:
    """`ansible <host> <args>` with the project's ansible.cfg and none of the caller's ANSIBLE_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    return subprocess.run(
        [str(ANSIBLE), "-i", "inventory", host, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def facts(project: Path, host: str, expression: str) -> tuple[object, str]:
    run = ansible(project, host, "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {expression} | to_json }}}}")
    assert run.returncode == 0, run.stdout + run.stderr
    body = run.stdout[run.stdout.index("{") :]
    return json.loads(json.loads(body)["msg"]), run.stderr


def test_defaults_reach_every_host_and_hostvars(project):
    value, _ = facts(project, "w1", "[port, listen, overridden_by_later_file, hostvars['d1']['listen']]")
    assert value == [1000, "10.0.0.1:1000", "second", "10.0.0.2:1000"]


def test_inventory_group_vars_all_wins_over_defaults(project):
    write(project / "inventory/group_vars/all/operator.yml", "port: 2000\n")
    value, _ = facts(project, "d1", "[port, listen]")
    assert value == [2000, "10.0.0.2:2000"]


def test_inventory_group_vars_of_a_group_win_over_defaults_and_all(project):
    write(project / "inventory/group_vars/all/operator.yml", "tier_setting: all\n")
    write(project / "inventory/group_vars/db.yml", "tier_setting: db\n")
    assert facts(project, "d1", "tier_setting")[0] == "db"
    assert facts(project, "w1", "tier_setting")[0] == "all"


def test_host_vars_and_group_vars_in_hosts_file_win(project):
    write(
        project / "inventory/hosts.yml",
        """\
        all:
          children:
            web:
              vars: {tier_setting: web-from-hosts-file}
              hosts:
                w1: {private_ip: 10.0.0.1, ansible_connection: local, port: 3000}
        """,
    )
    assert facts(project, "w1", "[port, tier_setting]")[0] == [3000, "web-from-hosts-file"]


def test_all_vars_in_hosts_file_are_shadowed_and_warned_about(project):
    write(
        project / "inventory/hosts.yml",
        """\
        all:
          vars: {port: 4000}
          hosts:
            w1: {private_ip: 10.0.0.1, ansible_connection: local}
        """,
    )
    value, stderr = facts(project, "w1", "port")
    assert value == 1000
    assert "port is set in the inventory file's `all: vars:`" in " ".join(stderr.split())


def test_a_missing_defaults_directory_is_an_error(project):
    (project / "defaults/10-base.yml").unlink()
    (project / "defaults/20-more.yml").unlink()
    (project / "defaults").rmdir()
    run = ansible(project, "w1", "-m", "ansible.builtin.ping")
    assert run.returncode != 0
    assert "is not a directory" in run.stdout + run.stderr
