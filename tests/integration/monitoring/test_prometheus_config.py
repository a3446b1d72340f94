"""The prometheus role's prometheus.yml as the role renders it (its defaults, vars and template, with
Ansible), for both kinds of scrape job, checked by the real `promtool check config`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

ROLE = REPO / "roles" / "prometheus"
PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  vars_files:
    - {defaults}
    - {vars}
  tasks:
    - ansible.builtin.template:
        src: {template}
        dest: "{{{{ adg_test_output }}}}"
        mode: "0600"
"""
# A host of the group `web` per way of giving its address: the address variable, ansible_host, neither.
INVENTORY = {
    "all": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {
            "web": {
                "hosts": {
                    "web2": {"scrape_address": "10.0.0.12", "ansible_host": "192.0.2.1"},
                    "web1": {"ansible_host": "10.0.0.11"},
                    "web3.example.test": {},
                }
            },
            "empty": {"hosts": {}},
        },
    }
}


def render(tmp_path: Path, variables: dict) -> dict:
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        PLAYBOOK.format(
            defaults=ROLE / "defaults" / "main.yml",
            vars=ROLE / "vars" / "main.yml",
            template=ROLE / "templates" / "prometheus.yml.j2",
        )
    )
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps(INVENTORY))
    output = tmp_path / "prometheus.yml"
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({**variables, "adg_test_output": str(output)}))
    ansible_playbook = str(Path(sys.executable).with_name("ansible-playbook"))
    run = subprocess.run(
        [ansible_playbook, "-i", str(inventory), str(playbook), "-e", f"@{extra}"],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FACT_CACHING="memory"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "config", "--syntax-only", str(output)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr + output.read_text()
    return yaml.safe_load(output.read_text())


def jobs(config: dict) -> dict:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def targets(job: dict) -> list:
    return [(c["targets"], c.get("labels", {})) for c in job["static_configs"]]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("prometheus-config")


def test_explicit_targets_keep_their_labels_and_settings(tmp):
    config = render(
        tmp,
        {
            "prometheus_listen_address": "127.0.0.1",
            "prometheus_scrape_jobs": [
                {
                    "job_name": "node",
                    "scrape_interval": "5s",
                    "metrics_path": "/metrics",
                    "targets": [{"target": "10.0.0.1:9100", "labels": {"instance": "app1"}}, "10.0.0.2:9100"],
                },
                {"job_name": "nothing-yet", "targets": []},
            ],
            "prometheus_alertmanager_targets": ["10.0.0.9:9093"],
        },
    )
    node = jobs(config)["node"]
    assert targets(node) == [(["10.0.0.1:9100"], {"instance": "app1"}), (["10.0.0.2:9100"], {})]
    assert (node["scrape_interval"], node["metrics_path"]) == ("5s", "/metrics")
    assert "nothing-yet" not in jobs(config), "a job without targets is left out"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["10.0.0.9:9093"]
    assert "external_labels" not in config["global"], "the role's default adds no labels of its own"


def test_group_job_targets_every_host_by_inventory_name(tmp):
    config = render(
        tmp,
        {
            "prometheus_listen_address": "127.0.0.1",
            "prometheus_target_address_var": "scrape_address",
            "prometheus_scrape_jobs": [
                {"job_name": "web", "group": "web", "port": 8080},
                {"job_name": "none", "group": "empty", "port": 1},
                {"job_name": "unknown", "group": "no-such-group", "port": 1},
            ],
        },
    )
    assert set(jobs(config)) == {"web"}
    assert targets(jobs(config)["web"]) == [
        (["10.0.0.11:8080"], {"instance": "web1"}),  # ansible_host
        (["10.0.0.12:8080"], {"instance": "web2"}),  # the address variable wins over ansible_host
        (["web3.example.test:8080"], {"instance": "web3.example.test"}),  # neither: its name
    ]
    # no Alertmanager given and none found on the host: alerts go nowhere, the config still loads
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == []
