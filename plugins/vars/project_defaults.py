"""project_defaults: a deployment's shared defaults, ranked below every inventory's group_vars."""

from __future__ import annotations

import os

from ansible.errors import AnsibleParserError
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin
from ansible.utils.display import Display
from ansible.utils.vars import combine_vars

display = Display()

DOCUMENTATION = r"""
name: project_defaults
short_description: Load a project's shared defaults below every inventory's group_vars
description:
  - Reads every C(*.yml)/C(*.yaml)/C(*.json) file (sorted by name) of the directories in O(paths)
    and returns their variables for the group C(all) of every inventory source.
  - It runs only at the inventory stage, where Ansible merges what a vars plugin returns into the
    inventory's own variables of the group C(all), the lowest rank of all group variables. Every
    C(group_vars/all/) and C(group_vars/<group>/) file of the inventory, the C(vars) of any other
    group in C(hosts.yml) and every host variable rank above it, so a value an operator sets there
    always wins. (Playbook-adjacent C(group_vars/) would rank above an inventory's
    C(group_vars/all) and silently override it.)
  - The one place that ranks the same is the C(vars) of the group C(all) in an inventory file
    (C(hosts.yml)), which these defaults override; the plugin warns about every such variable.
  - Values are templated lazily, as group_vars are, so they may refer to facts and other hosts.
  - Enable it in C(vars_plugins_enabled) next to C(host_group_vars).
options:
  paths:
    description: Directories to read, in order (later files win on the same variable).
    type: pathlist
    default: []
    ini:
      - section: autodealgenie_ops_project_defaults
        key: paths
    env:
      - name: ADG_PROJECT_DEFAULTS_PATHS
  stage:
    description:
      - Only C(inventory) gives the ranking described above; at C(task) stage the defaults would be
        merged at the rank of C(group_vars/all) files and override an operator's values there.
    type: str
    default: inventory
    choices: [inventory]
    ini:
      - section: autodealgenie_ops_project_defaults
        key: stage
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# vars_plugins_enabled = host_group_vars, autodealgenie.ops.project_defaults
# [autodealgenie_ops_project_defaults]
# paths = ./playbooks/defaults
"""

_EXTENSIONS = (".yml", ".yaml", ".json")


class VarsModule(BaseVarsPlugin):
    is_stateless = True

    def _load(self, loader, found, data):
        new = loader.load_from_file(found, cache="all", unsafe=True, trusted_as_template=True)
        if not new:
            return data
        if not isinstance(new, dict):
            raise AnsibleParserError(f"project_defaults: {found} is not a mapping of variables")
        return combine_vars(data, new)

    @staticmethod
    def _warn_shadowed(all_group, defaults):
        """Warn about `all: vars:` of an inventory file (hosts.yml) that a default overrides."""
        for name in sorted(set(all_group.vars) & set(defaults)):
            display.warning(
                f"{name} is set in the inventory file's `all: vars:`, which ranks below the project "
                "defaults, so it has no effect: set it in group_vars/all/ instead."
            )

    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        entities = entities if isinstance(entities, list) else [entities]
        if not any(isinstance(entity, Group) and entity.name == "all" for entity in entities):
            return {}
        data = {}
        for directory in self.get_option("paths") or []:
            if not os.path.isdir(directory):
                raise AnsibleParserError(f"project_defaults: {directory!r} is not a directory")
            for name in sorted(os.listdir(directory)):
                if not name.startswith(".") and name.endswith(_EXTENSIONS):
                    data = self._load(loader, os.path.join(directory, name), data)
        self._warn_shadowed(next(e for e in entities if isinstance(e, Group) and e.name == "all"), data)
        return data
