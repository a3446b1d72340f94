"""tests/support/paths.py reads the monitoring content directories from Ansible: the project's values
agree with the roles' own defaults, and an inventory's value is what the tests then read."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.support import paths
from tests.support.paths import REPO


def role_default(role: str, variable: str) -> str:
    """The role's default with role_path filled in (the role ships its content under files/)."""
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    return defaults[variable].replace("{{ role_path }}", str(REPO / "roles" / role))


def test_project_values_are_the_roles_own_content():
    """The project names the content the roles ship, so a role applied on its own deploys the same."""
    assert paths.rules_dir() == Path(role_default("prometheus", paths.RULES_VARIABLE))
    assert paths.dashboards_dir() == Path(role_default("grafana", paths.DASHBOARDS_VARIABLE))
    assert (paths.rules_dir() / paths.RULES_FILE_NAME).is_file()
    assert sorted(paths.dashboards_dir().glob("*.json")), "no dashboard in the project's directory"


def test_an_inventory_override_is_what_the_tests_read(tmp_path):
    rules, dashboards = tmp_path / "rules", tmp_path / "dashboards"
    rules.mkdir()
    dashboards.mkdir()
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    hosts = {"all": {"hosts": {"mon1": {"ansible_connection": "local"}}}}
    (inventory / "hosts.json").write_text(json.dumps(hosts))
    (inventory / "group_vars" / "all" / "content.json").write_text(
        json.dumps({paths.RULES_VARIABLE: str(rules), paths.DASHBOARDS_VARIABLE: str(dashboards)})
    )
    assert paths.rules_dir(str(inventory / "hosts.json"), "mon1") == rules
    assert paths.dashboards_dir(str(inventory / "hosts.json"), "mon1") == dashboards
    # the project's values are unchanged for everyone else
    assert paths.rules_dir() != rules
