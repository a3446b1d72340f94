"""Loaders for the monitoring content under test: rules, dashboards, topology, PromQL expressions.

Rules and dashboards are read from the directories their variables name (tests/support/paths.py).
"""

from __future__ import annotations

import json
import re
from functools import cache

import yaml

from tests.support.paths import ALERTMANAGER_TEMPLATE, TOPOLOGY, dashboards_dir, rules_dir


@cache
def rule_files() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(rules_dir().glob("*.yml"))}


def alert_rules() -> dict[str, dict]:
    """Alert name -> rule (with the group name under '_group')."""
    rules = {}
    for content in rule_files().values():
        for group in content["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = {**rule, "_group": group["name"]}
    return rules


@cache
def dashboards() -> dict[str, dict]:
    """File stem -> dashboard model."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(dashboards_dir().glob("*.json"))}


def panels():
    """(dashboard uid, panel) for every panel, rows' nested panels included."""
    for model in dashboards().values():
        for panel in model["panels"]:
            yield model["uid"], panel
            for nested in panel.get("panels", []):
                yield model["uid"], nested


def panel_queries():
    """(dashboard uid, panel title, refId, expr) for every Prometheus target."""
    for uid, panel in panels():
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield uid, panel["title"], target["refId"], target["expr"]


@cache
def topology() -> dict:
    return yaml.safe_load(TOPOLOGY.read_text())


def scrape_job_names() -> set[str]:
    return {job["job_name"] for job in topology()["adg_scrape_jobs"]}


def all_expressions():
    """(where, expr) for every rule and every panel query."""
    for name, rule in alert_rules().items():
        yield f"rule {name}", rule["expr"]
    for uid, title, ref, expr in panel_queries():
        yield f"dashboard {uid} / {title} / {ref}", expr


def alertmanager_matchers():
    """(label, op, value) of every matcher in the Alertmanager template's routes and inhibit rules."""
    text = ALERTMANAGER_TEMPLATE.read_text()
    return re.findall(r"""'([a-zA-Z_]+)(=~|!~|!=|=)"([^"]*)"'""", text)
