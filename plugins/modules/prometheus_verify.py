#!/usr/bin/python
"""Verify a running Prometheus: scrape targets, rule groups, Alertmanagers."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpError,
    client_from_module,
    http_argument_spec,
    run_module,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_prometheus import (
    evaluate_alertmanagers,
    evaluate_rules,
    evaluate_targets,
    prometheus_data,
    wait_until,
)

DOCUMENTATION = r"""
---
module: prometheus_verify
short_description: Wait until Prometheus scrapes every expected target, and check its rules and Alertmanagers
description:
  - Polls a running Prometheus, bounded by O(wait_timeout), until every expected scrape target is up,
    every rule group is loaded with health C(ok), and the expected Alertmanagers are discovered.
  - Expected targets are given as jobs (O(expected_jobs)) and/or as individual targets
    (O(expected_targets), for example derived from the inventory), so a target that is
    B(missing) entirely is caught, not only one that is down.
  - On failure returns, per target, C(health), C(lastError) and C(scrapeUrl), and fails with a readable
    list of everything that is wrong.
  - Read-only; runs the same in check mode.
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  expected_jobs:
    description: Scrape jobs that must have at least one active target, all of them up.
    type: list
    elements: str
    default: []
  expected_targets:
    description:
      - Individual targets that must exist and be up.
      - A target matches when its C(job) label (or scrape pool) equals O(expected_targets[].job) and
        either its C(instance) label equals O(expected_targets[].instance) or its address equals
        O(expected_targets[].address).
    type: list
    elements: dict
    default: []
    suboptions:
      job:
        description: Job name.
        type: str
        required: true
      instance:
        description: Expected C(instance) label (for example the inventory hostname).
        type: str
      address:
        description: Expected scrape address C(host:port).
        type: str
  require_all_up:
    description: Also report active targets that nobody listed as expected when they are not up.
    type: bool
    default: true
  check_targets:
    description: Check scrape targets.
    type: bool
    default: true
  check_rules:
    description: Check that rule groups are loaded and no rule has health C(err).
    type: bool
    default: true
  expected_rule_groups:
    description: Rule group names that must be loaded.
    type: list
    elements: str
    default: []
  min_rules:
    description: Minimum number of loaded rules (alerting plus recording).
    type: int
    default: 0
  check_alertmanagers:
    description: Check the Alertmanagers Prometheus has discovered.
    type: bool
    default: true
  expected_alertmanagers:
    description:
      - Strings that must each appear in the URL of an active Alertmanager, for example C(10.0.0.5:9093).
    type: list
    elements: str
    default: []
  min_alertmanagers:
    description: Minimum number of active Alertmanagers.
    type: int
    default: 0
  wait_timeout:
    description: Seconds to keep polling before failing. C(0) checks once.
    type: int
    default: 120
  poll_interval:
    description: Seconds between polls.
    type: float
    default: 5
  url_username:
    description: User for basic auth (Prometheus C(--web.config.file)). Ignored when O(token) is set.
    type: str
    aliases: [username]
  retries:
    description: Extra attempts, with exponential backoff, after connection errors and HTTP 5xx (Prometheus
      answers 503 until ready).
    type: int
    default: 3
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.prometheus
attributes:
  check_mode:
    support: full
    details: Read-only; behaves the same in check mode.
  diff_mode:
    support: none
notes:
  - Targets with health C(unknown) (not scraped yet, normal right after a start or reload) are waited for.
seealso:
  - module: autodealgenie.ops.grafana_panel_data
  - module: autodealgenie.ops.alertmanager_delivery_check
"""

EXAMPLES = r"""
- name: Every inventory host is scraped by its job, rules are healthy, Alertmanager is discovered
  autodealgenie.ops.prometheus_verify:
    url: "http://127.0.0.1:{{ prometheus_port }}"
    expected_targets:
      - {job: autodealgenie-backend, instance: app1, address: "10.0.0.11:8000"}
      - {job: node, instance: app1, address: "10.0.0.11:9100"}
    expected_jobs: [prometheus, alertmanager]
    expected_rule_groups: [autodealgenie-availability]
    min_rules: 1
    expected_alertmanagers: ["127.0.0.1:{{ alertmanager_port }}"]
    wait_timeout: 180

- name: Only check that the rules are loaded (no waiting)
  autodealgenie.ops.prometheus_verify:
    url: http://127.0.0.1:9090
    check_targets: false
    check_alertmanagers: false
    wait_timeout: 0
"""

RETURN = r"""
ok:
  description: Whether every requested check passed.
  returned: always
  type: bool
problems:
  description: Human-readable list of everything that is wrong (empty when RV(ok)).
  returned: always
  type: list
  elements: str
  sample: ["target job=redis instance=db1 is down (connection refused) scrapeUrl=http://10.0.0.6:9121/metrics"]
checks:
  description: Per check (C(targets), C(rules), C(alertmanagers)) whether it passed and a one-line detail.
  returned: always
  type: dict
  sample: {"targets": {"ok": true, "detail": "12/12 up"}}
targets:
  description: One row per relevant target (expected ones, missing ones, and others when O(require_all_up)).
  returned: when O(check_targets)
  type: list
  elements: dict
  contains:
    job: {description: Job label., type: str}
    instance: {description: Instance label., type: str}
    health: {description: "C(up), C(down), C(unknown), or null when missing.", type: str}
    status: {description: "C(ok), C(down), C(unknown) or C(missing).", type: str}
    last_error: {description: Prometheus's lastError for the target., type: str}
    scrape_url: {description: URL Prometheus scrapes., type: str}
    last_scrape: {description: Time of the last scrape., type: str}
    expected: {description: Whether the target was expected by the caller., type: bool}
rule_groups:
  description: Loaded rule groups with rule counts, health and errors.
  returned: when O(check_rules)
  type: list
  elements: dict
rules_total:
  description: Number of loaded rules.
  returned: when O(check_rules)
  type: int
alertmanagers:
  description: URLs of the Alertmanagers Prometheus sends alerts to.
  returned: when O(check_alertmanagers)
  type: list
  elements: str
  sample: ["http://127.0.0.1:9093/api/v2/alerts"]
dropped_alertmanagers:
  description: URLs of discovered but dropped Alertmanagers.
  returned: when O(check_alertmanagers)
  type: list
  elements: str
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
"""

CHECKS = ("targets", "rules", "alertmanagers")


def snapshot(client, params):
    """One look at Prometheus. Returns (done, result)."""
    result, problems, pending = {"checks": {}}, [], False
    if params["check_targets"]:
        data = prometheus_data(client, "/api/v1/targets", params={"state": "active"})
        active = data.get("activeTargets") or []
        rows, found, waiting = evaluate_targets(
            active, params["expected_jobs"], params["expected_targets"], params["require_all_up"]
        )
        up = sum(1 for r in rows if r["status"] == "ok")
        result["targets"] = rows
        result["checks"]["targets"] = {
            "ok": not found,
            "detail": f"{up}/{len(rows)} up"
            if not found
            else f"{len(found)} problem(s): " + "; ".join(found),
        }
        problems += found
        pending = pending or waiting
    if params["check_rules"]:
        groups = prometheus_data(client, "/api/v1/rules").get("groups") or []
        summary, found, waiting = evaluate_rules(groups, params["expected_rule_groups"], params["min_rules"])
        total = sum(g["rules"] for g in summary)
        result.update(rule_groups=summary, rules_total=total)
        result["checks"]["rules"] = {
            "ok": not found,
            "detail": f"{len(summary)} group(s), {total} rule(s), health ok"
            if not found
            else "; ".join(found),
        }
        problems += found
        pending = pending or waiting
    if params["check_alertmanagers"]:
        data = prometheus_data(client, "/api/v1/alertmanagers")
        active, dropped, found = evaluate_alertmanagers(
            data, params["expected_alertmanagers"], params["min_alertmanagers"]
        )
        result.update(alertmanagers=active, dropped_alertmanagers=dropped)
        detail = (", ".join(active) or "none") if not found else "; ".join(found)
        result["checks"]["alertmanagers"] = {"ok": not found, "detail": detail}
        problems += found
    result["problems"] = problems
    result["ok"] = not problems
    return not problems and not pending, result


def run(module, client):
    params = module.params
    for spec in params["expected_targets"]:
        if not spec.get("instance") and not spec.get("address"):
            module.fail_json(
                msg="expected_targets entry for job {} needs instance or address".format(spec["job"])
            )

    def attempt():
        try:
            return snapshot(client, params)
        except HttpError as exc:  # not up yet, or restarting: keep waiting until the deadline
            problem = f"Prometheus API unavailable: {exc}"
            checks = {name: {"ok": False, "detail": problem} for name in CHECKS if params["check_" + name]}
            return False, {"ok": False, "problems": [problem], "checks": checks}

    _done, result, elapsed = wait_until(attempt, params["wait_timeout"], params["poll_interval"])
    result.update(changed=False, elapsed=elapsed)
    if not result["ok"]:
        module.fail_json(
            msg="Prometheus at {} is not healthy after {}s:\n- {}".format(
                params["url"], elapsed, "\n- ".join(result["problems"])
            ),
            **result,
        )
    return result


def main():
    spec = http_argument_spec()
    spec.update(
        expected_jobs={"type": "list", "elements": "str", "default": []},
        expected_targets={
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "job": {"type": "str", "required": True},
                "instance": {"type": "str"},
                "address": {"type": "str"},
            },
        },
        require_all_up={"type": "bool", "default": True},
        check_targets={"type": "bool", "default": True},
        check_rules={"type": "bool", "default": True},
        expected_rule_groups={"type": "list", "elements": "str", "default": []},
        min_rules={"type": "int", "default": 0},
        check_alertmanagers={"type": "bool", "default": True},
        expected_alertmanagers={"type": "list", "elements": "str", "default": []},
        min_alertmanagers={"type": "int", "default": 0},
        wait_timeout={"type": "int", "default": 120},
        poll_interval={"type": "float", "default": 5.0},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_module(module, run, module, client_from_module(module))


if __name__ == "__main__":
    main()
