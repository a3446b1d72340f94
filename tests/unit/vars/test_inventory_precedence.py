"""A value an operator sets in an inventory's group_vars always takes effect over the project's
defaults (playbooks/defaults/, loaded by the project_defaults vars plugin): one variable per tier in
inventories/<env>/group_vars/<group>/ and one in group_vars/all/, each checked in what the roles
are handed (the rendered values on the hosts that use them, including values derived from them).

The inventory is the staging example (its non-secret group_vars/all/main.yml) with local-connection
hosts: nothing is contacted, no facts are needed (every host has private_ip).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

HOSTS = """\
all:
  children:
    app: {hosts: {app1: {private_ip: 10.20.1.11}}}
    postgres: {hosts: {db1: {private_ip: 10.20.1.21}}}
    redis: {hosts: {cache1: {private_ip: 10.20.1.22}}}
    mongodb: {hosts: {mongo1: {private_ip: 10.20.1.23}}}
    monitoring: {hosts: {mon1: {private_ip: 10.20.1.31}}}
  vars:
    ansible_connection: local
"""

# What each host's roles are handed, one mapping per host (read from the json callback's output).
SHOW = """\
- name: Show what the roles would be handed
  hosts: all
  gather_facts: false
  tasks:
    - name: Values
      ansible.builtin.debug:
        msg: "{{ shown[inventory_hostname] }}"
      vars:
        shown:
          app1:
            backend_listen_address: "{{ backend_listen_address }}"
            backend_redis_port: "{{ backend_redis_port | int }}"
          db1:
            postgresql_app_client_addresses: "{{ postgresql_app_client_addresses }}"
          cache1:
            redis_listen_addresses: "{{ redis_listen_addresses }}"
            redis_port: "{{ redis_port | int }}"
            redis_firewall: >-
              {{ {'firewall_allow_redis': firewall_allow_redis}
                 | autodealgenie.ops.firewall_rules({'app': groups['app']},
                                                    {'app1': hostvars['app1']['adg_private_address']},
                                                    group_names) }}
          mongo1:
            mongodb_exporter_listen_address: "{{ mongodb_exporter_listen_address }}"
          mon1:
            alertmanager_listen_address: "{{ alertmanager_listen_address }}"
            prometheus_alertmanager_targets: "{{ prometheus_alertmanager_targets }}"
"""

OPERATOR = {
    "all": "redis_port: 16379\n",
    "app": "backend_listen_address: 127.0.0.7\n",
    "postgres": "postgresql_app_client_addresses: [10.99.0.1]\n",
    "redis": "redis_listen_addresses: [10.99.0.2]\n",
    "mongodb": "mongodb_exporter_listen_address: 10.99.0.3\n",
    "monitoring": "alertmanager_listen_address: 10.99.0.4\n",
}


def rendered(inventory: Path) -> dict[str, dict]:
    (inventory.parent / "show.yml").write_text(SHOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    )
    run = subprocess.run(
        [str(PLAYBOOK), "-i", str(inventory), str(inventory.parent / "show.yml")],
        cwd=inventory.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    # the json document starts on a line of its own (profile_tasks prints around it)
    document, _ = json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("\n{") + 1 :])
    (task,) = document["plays"][0]["tasks"]
    values = {host: result["msg"] for host, result in task["hosts"].items()}
    assert set(values) == {"app1", "db1", "cache1", "mongo1", "mon1"}
    return values


@pytest.fixture
def inventory(tmp_path) -> Path:
    """inventories/staging's non-secret settings with local hosts, no operator overrides yet."""
    root = tmp_path / "staging"
    (root / "group_vars/all").mkdir(parents=True)
    shutil.copy(REPO / "inventories/staging/group_vars/all/main.yml", root / "group_vars/all/main.yml")
    (root / "hosts.yml").write_text(HOSTS)
    return root


def test_project_defaults_apply_when_the_inventory_sets_nothing(inventory):
    values = rendered(inventory)
    assert values["app1"] == {"backend_listen_address": "10.20.1.11", "backend_redis_port": 6379}
    assert values["cache1"]["redis_listen_addresses"] == ["10.20.1.22", "127.0.0.1"]
    assert values["mon1"]["prometheus_alertmanager_targets"] == ["10.20.1.31:9093"]


def test_one_value_per_tier_in_the_inventory_always_takes_effect(inventory):
    for group, text in OPERATOR.items():
        (inventory / "group_vars" / group).mkdir(parents=True, exist_ok=True)
        (inventory / "group_vars" / group / "operator.yml").write_text(textwrap.dedent(text))
    values = rendered(inventory)
    # group_vars/all: the port reaches the server's firewall and its client on another tier
    assert values["cache1"]["redis_port"] == 16379
    assert values["app1"]["backend_redis_port"] == 16379
    assert [(r["port"], r["ipv4"]) for r in values["cache1"]["redis_firewall"]] == [
        (16379, ["10.20.1.11/32"])
    ]
    # group_vars/<group>: each tier's own value, and what other settings derive from it
    assert values["app1"]["backend_listen_address"] == "127.0.0.7"
    assert values["db1"]["postgresql_app_client_addresses"] == ["10.99.0.1"]
    assert values["cache1"]["redis_listen_addresses"] == ["10.99.0.2"]
    assert values["mongo1"]["mongodb_exporter_listen_address"] == "10.99.0.3"
    assert values["mon1"]["alertmanager_listen_address"] == "10.99.0.4"
    assert values["mon1"]["prometheus_alertmanager_targets"] == ["10.99.0.4:9093"]
