"""alert_rules: render the project's static Prometheus rule file with site overrides."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import yaml
from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: alert_rules
short_description: Apply site overrides to a Prometheus alerting rule file
description:
  - Takes the rule file shipped in C(roles/prometheus/files/rules/) (YAML text or the parsed
    structure) and returns a new rule structure with hold times, group intervals and annotation
    URL bases overridden. The input is not modified.
  - Unknown alert names, group names or annotation names in the overrides are errors, so a typo
    never silently leaves a rule unchanged. With O(rule_set), unknown means in none of the files
    of the set, so the same overrides can be applied to each file of a rule set in turn.
options:
  _input:
    description: Rule file as YAML text or as a mapping with a C(groups) list.
    type: raw
    required: true
  for_overrides:
    description: Alert name to new C(for) duration (Prometheus duration, e.g. C(10s), C(0s)).
    type: dict
  interval:
    description:
      - Evaluation interval for every group (a duration), or a mapping of group name to duration.
    type: raw
  annotations_base:
    description:
      - Annotation name to base URL. Relative annotation values are joined to the base; a base
        that already ends with the value's leading directories (e.g. C(.../docs/runbooks) for
        C(docs/runbooks/X.md)) is not repeated. Absolute values and empty bases are left alone.
    type: dict
  rule_set:
    description:
      - Every rule file deployed together with this one (YAML texts or parsed), this one included.
        Override names found in another file of the set are accepted (and left to that file);
        names found in none of them are errors. Default - this file alone.
    type: list
    elements: raw
"""

EXAMPLES = r"""
- name: Render the rules with drill hold times and site URLs
  ansible.builtin.copy:
    content: >-
      {{ lookup('ansible.builtin.file', 'rules/autodealgenie.yml')
         | autodealgenie.ops.alert_rules(for_overrides={'ServiceDown': '10s'}, interval='5s',
                           annotations_base={'runbook_url': 'https://git.example.com/ops/-/blob/main',
                                             'dashboard': 'http://grafana.example.com:3000'})
         | ansible.builtin.to_nice_yaml(sort_keys=false) }}
    dest: /etc/prometheus/rules/autodealgenie.yml
    mode: "0644"

- name: Render each file of a rule set with overrides that may name alerts of any of its files
  ansible.builtin.copy:
    content: >-
      {{ lookup('ansible.builtin.file', item)
         | autodealgenie.ops.alert_rules(for_overrides={'ServiceDown': '10s'},
                           rule_set=query('ansible.builtin.file', *rule_files))
         | ansible.builtin.to_nice_yaml(sort_keys=false) }}
    dest: /etc/prometheus/rules/{{ item | basename }}
    mode: "0644"
  loop: "{{ rule_files }}"
"""

RETURN = r"""
_value:
  description: The rule structure (C(groups) list), ready for C(to_nice_yaml).
  type: dict
"""

# Prometheus' model.ParseDuration grammar (units in descending order, each at most once).
_DURATION = re.compile(r"^(?:0|(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?)$")


def _plain(value):
    """Deep copy into plain dict/list/str/scalars (Ansible passes tagged subclasses)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return str(value)
    return value


def _duration(value, what):
    text = str(value) if value is not None else ""
    if not text or not _DURATION.match(text):
        raise AnsibleFilterError(
            f"alert_rules: {what}: {value!r} is not a Prometheus duration (e.g. 30s, 5m)"
        )
    return text


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"alert_rules: {what} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _unknown(requested, known, what):
    missing = sorted(set(requested) - set(known))
    if missing:
        raise AnsibleFilterError(
            f"alert_rules: unknown {what} {', '.join(missing)} (known: {', '.join(sorted(known))})"
        )


def join_url(base, ref):
    """Join a relative annotation value to a base URL without repeating shared directories."""
    if not base or urlsplit(ref).scheme:
        return ref
    base = base.rstrip("/")
    parts = ref.lstrip("/").split("/")
    for keep in range(len(parts) - 1, 0, -1):
        if base.endswith("/" + "/".join(parts[:keep])):
            return base + "/" + "/".join(parts[keep:])
    return base + "/" + "/".join(parts)


def _load(rules):
    if isinstance(rules, str | bytes):
        try:
            rules = yaml.safe_load(rules)
        except yaml.YAMLError as exc:
            raise AnsibleFilterError(f"alert_rules: input is not valid YAML: {exc}") from exc
    if not isinstance(rules, Mapping) or not isinstance(rules.get("groups"), Sequence):
        raise AnsibleFilterError("alert_rules: input must be a rule file with a 'groups' list")
    rules = _plain(rules)
    for group in rules["groups"]:
        if not isinstance(group, dict) or "name" not in group or not isinstance(group.get("rules"), list):
            raise AnsibleFilterError(f"alert_rules: malformed group {group!r}")
    return rules


def _alerts(groups):
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def _annotation_names(alerts):
    return {key for rule in alerts.values() for key in rule.get("annotations", {})}


def alert_rules(rules, for_overrides=None, interval=None, annotations_base=None, rule_set=None):
    """Return a copy of ``rules`` with the given overrides applied (see DOCUMENTATION)."""
    result = _load(rules)
    groups = result["groups"]
    alerts = _alerts(groups)
    if rule_set is not None and (
        isinstance(rule_set, str | bytes | Mapping) or not isinstance(rule_set, Sequence)
    ):
        raise AnsibleFilterError("alert_rules: rule_set must be a list of rule files")
    # The names an override may use: those of the whole set the file is deployed with.
    set_groups = [groups, *(_load(other)["groups"] for other in rule_set or ())]
    set_alerts = [_alerts(each) for each in set_groups]
    known_alerts = {name for each in set_alerts for name in each}
    known_groups = {group["name"] for each in set_groups for group in each}
    known_annotations = {key for each in set_alerts for key in _annotation_names(each)}

    for_overrides = _mapping(for_overrides, "for_overrides")
    _unknown(for_overrides, known_alerts, "alert name(s) in for_overrides")
    for name, hold in for_overrides.items():
        hold = _duration(hold, f"for_overrides[{name}]")
        if name in alerts:
            alerts[name]["for"] = hold

    if interval is not None and interval != "":
        if isinstance(interval, Mapping):
            by_group = _mapping(interval, "interval")
            _unknown(by_group, known_groups, "group name(s) in interval")
        else:
            by_group = {group["name"]: interval for group in groups}
        for group in groups:
            if group["name"] in by_group:
                group["interval"] = _duration(by_group[group["name"]], f"interval of group {group['name']}")

    annotations_base = _mapping(annotations_base, "annotations_base")
    _unknown(annotations_base, known_annotations, "annotation name(s) in annotations_base")
    for rule in alerts.values():
        annotations = rule.get("annotations", {})
        for key, base in annotations_base.items():
            if key in annotations:
                annotations[key] = join_url(str(base or ""), str(annotations[key]))
    return result


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self):
        return {"alert_rules": alert_rules}
