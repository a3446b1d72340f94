"""Where the tests find things: files of the repository, and the monitoring content as Ansible sees it.

Alert rules, dashboards and runbooks are named by one variable each, ``prometheus_alert_rules_dir``,
``grafana_dashboards_dir`` and ``adg_runbooks_dir`` (set in playbooks/defaults/monitoring.yml,
overridable per inventory).
The deployment (the roles) and playbooks/verify.yml read those variables; so do the tests, through
this module, which asks Ansible for their values instead of naming a role's directory. Pointing a
variable elsewhere therefore changes what is deployed, verified and tested alike.

* ``content_dir(name, inventory=None, host=None)``: the directory a content variable names, as
  ``host`` of ``inventory`` sees it. Without an inventory: the project's own values (an inventory
  with one local host, so only playbooks/defaults applies), or the inventory in
  ``$ADG_TEST_INVENTORY`` when that is set.
* ``rules_dir()``, ``dashboards_dir()``: the same for the two variables.
* ``RULES_DIR``, ``RULES_FILE`` (the project's rule file in it), ``DASHBOARDS``, ``RUNBOOKS``:
  module attributes computed on first use (importing this module runs no Ansible).

Run ``python -m tests.support.paths prometheus_alert_rules_dir`` (from the repository root) to
print a value, e.g. for shell scripts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = REPO / "tests/integration/promtool"
TOPOLOGY = REPO / "playbooks/defaults/topology.yml"
ALERTMANAGER_TEMPLATE = REPO / "roles/alertmanager/templates/alertmanager.yml.j2"

RULES_VARIABLE = "prometheus_alert_rules_dir"
DASHBOARDS_VARIABLE = "grafana_dashboards_dir"
RUNBOOKS_VARIABLE = "adg_runbooks_dir"
CONTENT_VARIABLES = (RULES_VARIABLE, DASHBOARDS_VARIABLE, RUNBOOKS_VARIABLE)
# The project's own rule file (its alerts are what the promtool and unit tests cover).
RULES_FILE_NAME = "autodealgenie.yml"

# Read on the controller: the task is delegated to localhost, so the host's connection is never used,
# and without become: an inventory's ansible_become would ask the controller for sudo (a variable,
# so only a variable of higher precedence, not the become keyword, turns it off).
_PLAYBOOK = """\
- hosts: "{{ adg_paths_host }}"
  gather_facts: false
  vars:
    ansible_become: false
  tasks:
    - ansible.builtin.copy:
        content: >-
          {{ dict(adg_paths_names | zip(query('ansible.builtin.vars', *adg_paths_names))) | to_json }}
        dest: "{{ adg_paths_output }}"
        mode: "0600"
      delegate_to: localhost
"""


def _ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else "ansible-playbook"


@cache
def ansible_values(names: tuple[str, ...], inventory: str | None = None, host: str | None = None) -> dict:
    """The templated values of ``names`` for ``host`` (default: the inventory's first host)."""
    inventory = inventory or os.environ.get("ADG_TEST_INVENTORY") or None
    with tempfile.TemporaryDirectory(prefix="adg-paths-") as tmp:
        work = Path(tmp)
        if inventory is None:
            # A real file (not "localhost,"): Ansible runs vars plugins only for inventory files.
            inventory = str(work / "hosts.json")
            local = {"adg-paths": {"ansible_connection": "local"}}
            Path(inventory).write_text(json.dumps({"all": {"hosts": local}}))
        playbook = work / "values.yml"
        playbook.write_text(_PLAYBOOK)
        output = work / "values.json"
        extra = {
            "adg_paths_host": host or "all[0]",
            "adg_paths_names": list(names),
            "adg_paths_output": str(output),
        }
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FACT_CACHING="memory",
        )
        run = subprocess.run(
            [_ansible_playbook(), "-i", inventory, str(playbook), "-e", json.dumps(extra)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if run.returncode != 0 or not output.exists():
            raise RuntimeError(f"could not read {', '.join(names)} from Ansible:\n{run.stdout}\n{run.stderr}")
        return json.loads(output.read_text())


def content_dir(name: str, inventory: str | None = None, host: str | None = None) -> Path:
    """The controller directory the content variable ``name`` names (it must exist)."""
    if name not in CONTENT_VARIABLES:
        raise ValueError(f"{name} is not one of {CONTENT_VARIABLES}")
    path = Path(ansible_values(CONTENT_VARIABLES, inventory, host)[name])
    if not path.is_dir():
        raise FileNotFoundError(f"{name} = {path}: not a directory")
    return path


def rules_dir(inventory: str | None = None, host: str | None = None) -> Path:
    return content_dir(RULES_VARIABLE, inventory, host)


def dashboards_dir(inventory: str | None = None, host: str | None = None) -> Path:
    return content_dir(DASHBOARDS_VARIABLE, inventory, host)


def __getattr__(name: str) -> Path:
    # Module attributes computed on first use, so importing REPO costs no Ansible run.
    if name == "RULES_DIR":
        return rules_dir()
    if name == "RULES_FILE":
        return rules_dir() / RULES_FILE_NAME
    if name == "DASHBOARDS":
        return dashboards_dir()
    if name == "RUNBOOKS":
        return content_dir(RUNBOOKS_VARIABLE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    for variable in sys.argv[1:] or CONTENT_VARIABLES:
        print(content_dir(variable))
