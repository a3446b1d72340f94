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
  - Those variables rank below the inventory's C(group_vars/all) and C(group_vars/<group>), so a
    value an operator sets there always wins. (Playbook-adjacent C(group_vars/) would rank above an
    inventory's C(group_vars/all) and silently override it.) Ansible runs the builtin
    C(host_group_vars) before any collection vars plugin, so this plugin returns the defaults with
    the inventory's own C(group_vars/all) merged on top again.
  - Only the C(vars) section of the group C(all) in an inventory file (C(hosts.yml)) ranks below
    these defaults, as it ranks below C(group_vars/all/) files; the plugin warns about every variable
    set there that a default overrides. Other groups' C(vars), C(group_vars/) files and host
    variables all win.
  - Values are templated lazily, as group_vars are, so they may refer to facts and other hosts.
  - Enable it after C(host_group_vars) in C(vars_plugins_enabled).
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
      - Only C(inventory) keeps the ranking described above; at C(task) stage the defaults would
        also be returned next to playbook-adjacent group_vars.
    type: str
    default: inventory
    choices: [inventory]
    ini:
      - section: autodealgenie_ops_project_defaults
        key: stage
  _valid_extensions:
    description: Extensions of the C(group_vars/) files merged on top again (as C(host_group_vars)).
    type: list
    elements: string
    default: [".yml", ".yaml", ".json"]
    env:
      - name: ANSIBLE_YAML_FILENAME_EXT
    ini:
      - key: yaml_valid_extensions
        section: defaults
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
        # host_group_vars has already returned this source's group_vars/all, and ran first: merge it
        # on top of the defaults again, or the defaults would override it.
        group_vars = os.path.join(os.path.realpath(path), "group_vars")
        if os.path.isdir(group_vars):
            extensions = self.get_option("_valid_extensions")
            for found in loader.find_vars_files(group_vars, "all", extensions, allow_dir=True):
                data = self._load(loader, found, data)
        return data
