"""Documentation of the autodealgenie.ops.preflight action (plugins/action/preflight.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
version_added: "1.1.0"
author: AutoDealGenie infrastructure team
short_description: Check every host's secrets, receivers, ports, addresses and platform at once
description:
  - Runs on the controller, once (C(run_once)), and changes nothing. For every host of the play it
    works out from O(components) which components the host runs (by its groups and each
    component's C(when)) and checks the variables those components use, as that host sees them
    (inventory and project values first, else the component roles' defaults).
  - Reports all problems in one failure, each naming the host and the variable (and the vault_*
    variable it is mapped from), never a secret's value.
  - Also checks that every group a component is placed on has hosts, that every host of those
    groups has a usable address (O(address_var)), unique in the deployment, that the ports of a
    host's components are integers and distinct, that every host sees the same ports and shared
    secrets, and the platform (O(platforms), systemd, python3) from the probe and fact results
    registered before it (O(probe_var), O(facts_var)).
  - This is an action plugin. It runs on the controller only, so C(delegate_to) has no effect.
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
options:
  components:
    description:
      - The table of components. Each entry has C(name), C(groups) (inventory groups, or C(all)),
        optional C(when) (a condition evaluated per host), C(optional) (when true its groups may be empty,
        for a component a deployment may leave out), C(roles) (roles whose defaults supply
        values the inventory does not set), C(ports) (variable names) and C(checks)
        (variable -> rule with C(kind), C(when), C(required), C(min_length), C(https), C(pattern),
        C(shared_as), C(reason)).
      - "Kinds: C(secret) (the default: set, not empty, not a placeholder or well-known default,
        at least C(min_length) characters), C(slack_webhook_url), C(pagerduty_routing_key),
        C(smtp_smarthost), C(email), C(email_list), C(url), C(url_list) (each entry; C(https): plain
        http only to loopback/private addresses), C(mongodb_uri), C(version) (matches C(pattern)),
        C(port), C(enabled) (must be true), C(local_address) (one of the host's own addresses, not
        a wildcard) and C(controller_python) (the controller interpreter it names runs the host's
        Python version)."
      - C(required) (a boolean or a condition, default true) - false lets an optional receiver stay
        empty. C(shared_as) names the setting a role reads under its own name; all of its values
        (secrets, ports) must be equal on every host.
    type: list
    elements: dict
    required: true
  platforms:
    description: Supported distributions and their major releases, e.g. C(Debian) with C(["12", "13"]).
    type: dict
    required: true
  address_var:
    description: The variable holding the address other hosts reach a host on.
    type: str
    default: adg_private_address
  probe_var:
    description: Registered result of a C(raw) probe for python3 (C(ignore_unreachable)) on each host.
    type: str
    default: preflight_probe
  facts_var:
    description: Registered result of the C(setup) task on each host.
    type: str
    default: preflight_setup
"""

EXAMPLES = r"""
- name: Check the whole deployment before anything changes
  autodealgenie.ops.preflight:
    components:
      - name: redis
        groups: [redis]
        roles: [autodealgenie.ops.redis]
        ports: [redis_port]
        checks:
          redis_app_password: {kind: secret, min_length: 16}
    platforms:
      Debian: ["12", "13"]
  run_once: true
"""

RETURN = r"""
problem_count:
  description: Number of problems found over all hosts.
  returned: always
  type: int
  sample: 21
msg:
  description: "The report, one line per problem: host, variable (and its vault_* source), what is wrong."
  returned: always
  type: str
"""
