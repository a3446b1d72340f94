"""Static consistency of the monitoring content: job names and database names against the
topology, alert labels/annotations, runbooks, dashboards, and promtool test coverage."""

from __future__ import annotations

import re
from functools import cache

import pytest
import yaml

from tests.support import content
from tests.support.paths import PROMTOOL_TESTS, RUNBOOKS
from tests.support.promql import selectors

# The product's alert set: severity and component of each alert.
EXPECTED_ALERTS = {
    "ServiceDown": ("critical", "backend"),
    "HighErrorRate": ("critical", "backend"),
    "DatabaseDown": ("critical", "database"),
    "RedisDown": ("critical", "cache"),
    "DiskSpaceLow": ("critical", "infrastructure"),
    "MongoDBDown": ("critical", "database"),
    "WALArchivingFailing": ("critical", "database"),
    "HighAPILatency": ("warning", "backend"),
    "HighRequestRate": ("warning", "backend"),
    "DatabaseConnectionPoolHigh": ("warning", "database"),
    "LowCacheHitRate": ("warning", "cache"),
    "HighRedisMemoryUsage": ("warning", "cache"),
    "SlowQueries": ("warning", "database"),
    "HighMemoryUsage": ("warning", "infrastructure"),
    "HighCPUUsage": ("warning", "infrastructure"),
    "ExporterDown": ("warning", "infrastructure"),
    "SystemdUnitFailed": ("warning", "infrastructure"),
    "BackupTooOld": ("warning", "database"),
    "BackupRepositoryDiskLow": ("warning", "database"),
    "LowUserSignupRate": ("info", "business"),
    "HighAuthenticationFailureRate": ("info", "security"),
}
DASHBOARD_UIDS = {
    "system-overview": "autodealgenie-system-overview",
    "business-metrics": "autodealgenie-business-metrics",
    "database-performance": "autodealgenie-database-performance",
}
JOB_MATCHER_VALUE = re.compile(r"^[a-zA-Z0-9_-]+(\|[a-zA-Z0-9_-]+)*$")


def _job_names_in(op: str, value: str, where: str) -> set[str]:
    assert op in ("=", "=~"), f"{where}: job matcher {op}{value!r} cannot be checked against the topology"
    if op == "=":
        return {value}
    assert JOB_MATCHER_VALUE.match(value), f"{where}: job regex {value!r} must be a plain alternation"
    return set(value.split("|"))


@pytest.mark.parametrize(("where", "expr"), [pytest.param(w, e, id=w) for w, e in content.all_expressions()])
def test_job_names_exist_in_topology(where, expr):
    jobs = content.scrape_job_names()
    for selector in selectors(expr):
        job = selector.label("job")
        if job:
            used = _job_names_in(*job, where)
            assert used <= jobs, (
                f"{where}: job(s) {sorted(used - jobs)} not in adg_scrape_jobs {sorted(jobs)}"
            )


def test_alertmanager_job_names_exist_in_topology():
    jobs = content.scrape_job_names()
    used = [(op, value) for label, op, value in content.alertmanager_matchers() if label == "job"]
    assert used, "expected the ServiceDown inhibit rule to match on job"
    for op, value in used:
        assert _job_names_in(op, value, "alertmanager.yml.j2") <= jobs


@pytest.mark.parametrize(("where", "expr"), [pytest.param(w, e, id=w) for w, e in content.all_expressions()])
def test_every_selector_is_scoped_to_a_job(where, expr):
    """Unscoped selectors were the reference's HighCPUUsage defect (every target matched)."""
    for selector in selectors(expr):
        if selector.name == "up" and where.startswith("dashboard"):
            continue  # the scrape-targets panel shows every job on purpose
        assert selector.label("job"), f"{where}: {selector.name} has no job matcher"


def test_database_names_match_topology():
    database = content.topology()["postgresql_app_database"]
    found = [
        (where, selector.label("datname"))
        for where, expr in content.all_expressions()
        for selector in selectors(expr)
        if selector.label("datname")
    ]
    assert found
    for where, (op, value) in found:
        assert (op, value) == ("=", database), where


def test_alert_set_severity_and_component():
    rules = content.alert_rules()
    assert set(rules) == set(EXPECTED_ALERTS)
    for name, rule in rules.items():
        assert (rule["labels"]["severity"], rule["labels"]["component"]) == EXPECTED_ALERTS[name], name
        assert set(rule["labels"]) == {"severity", "component"}, name
        assert "for" in rule, name


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_annotations_point_at_real_runbook_and_dashboard(name):
    annotations = content.alert_rules()[name]["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard"}
    assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"
    assert (RUNBOOKS / f"{name}.md").is_file()
    match = re.fullmatch(r"/d/([a-z0-9-]+)", annotations["dashboard"])
    assert match and match.group(1) in DASHBOARD_UIDS.values(), annotations["dashboard"]


@cache  # parsed once, not once per parametrized alert
def _promtool_cases():
    firing, quiet = {}, {}
    for path in sorted(PROMTOOL_TESTS.glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                target = firing if case.get("exp_alerts") else quiet
                target.setdefault(case["alertname"], []).append((path.name, test["name"], case))
    return firing, quiet


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_every_alert_has_firing_and_quiet_promtool_cases(name):
    firing, quiet = _promtool_cases()
    assert name in firing, f"no promtool case where {name} fires"
    assert name in quiet, f"no promtool case where {name} must not fire"
    for where, test, case in firing[name]:
        for alert in case["exp_alerts"]:
            assert "exp_annotations" in alert, f"{where} / {test}: annotations not asserted"
            assert {"severity", "component"} <= set(alert["exp_labels"]), f"{where} / {test}"


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_runbook_content(name):
    text = (RUNBOOKS / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n")
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Remediation", "## Escalation"):
        assert section in text, f"{name}.md lacks {section}"
    assert "systemctl" in text or "journalctl" in text
    assert "docker" not in text.lower()


def test_no_orphan_runbooks():
    """Every page beside the README is an alert's (procedures live in a subdirectory)."""
    documented = {path.stem for path in RUNBOOKS.glob("*.md") if path.stem != "README"}
    assert documented == set(EXPECTED_ALERTS)


def test_dashboard_uids_and_datasource():
    models = content.dashboards()
    assert {stem: model["uid"] for stem, model in models.items()} == DASHBOARD_UIDS
    for uid, panel in content.panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, (uid, panel["title"])
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}, (uid, panel["title"])
    for model in models.values():
        assert model["id"] is None
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), model["uid"]


def test_dashboard_panels_do_not_overlap():
    for model in content.dashboards().values():
        cells = {}
        for panel in model["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (model["uid"], panel["title"])
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{model['uid']}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def _steps(*values):
    return [{"color": color, "value": value} for color, value in values]


# The dashboards' panels as the product specifies them: title -> (type, unit, threshold steps).
GUIDE_PANELS = {
    "autodealgenie-system-overview": {
        "Request Rate (req/s)": ("timeseries", "reqps", _steps(("green", None))),
        "Error Rate (5xx)": (
            "gauge",
            "percentunit",
            _steps(("green", None), ("yellow", 0.01), ("red", 0.05)),
        ),
        "API Latency Percentiles": ("timeseries", "s", _steps(("green", None), ("yellow", 1), ("red", 2))),
        "HTTP Status Codes": ("timeseries", "short", _steps(("green", None))),
        "PostgreSQL Active Connections": (
            "gauge",
            "short",
            _steps(("green", None), ("yellow", 50), ("red", 80)),
        ),
        "Redis Memory Usage": (
            "gauge",
            "percentunit",
            _steps(("green", None), ("yellow", 0.7), ("red", 0.9)),
        ),
        "Application Memory Usage": ("timeseries", "bytes", _steps(("green", None))),
    },
    "autodealgenie-business-metrics": {
        "Deals Created (per hour)": ("timeseries", "short", _steps(("green", None))),
        "User Signups (per hour)": ("timeseries", "short", _steps(("green", None))),
        "Authentication Success Rate": (
            "gauge",
            "percentunit",
            _steps(("red", None), ("yellow", 0.8), ("green", 0.95)),
        ),
        "Total Deals (24h)": ("stat", "short", _steps(("green", None))),
        "Top API Endpoints by Usage": ("piechart", None, _steps(("green", None))),
        "Deals by Status (24h)": ("table", None, _steps(("green", None))),
    },
    "autodealgenie-database-performance": {
        "PostgreSQL Connection Pool": (
            "timeseries",
            "short",
            _steps(("green", None), ("yellow", 50), ("red", 80)),
        ),
        "Connection Pool Utilization": (
            "gauge",
            "percentunit",
            _steps(("green", None), ("yellow", 0.7), ("red", 0.8)),
        ),
        "Database Transactions (per second)": ("timeseries", "short", _steps(("green", None))),
        "Database Operations (per second)": ("timeseries", "short", _steps(("green", None))),
        "Redis Memory Usage": ("timeseries", "bytes", _steps(("green", None))),
        "Redis Cache Hit Rate": (
            "gauge",
            "percentunit",
            _steps(("red", None), ("yellow", 0.7), ("green", 0.8)),
        ),
        "Redis Commands (per second)": ("timeseries", "ops", _steps(("green", None))),
        "Redis Connected Clients": ("timeseries", "short", _steps(("green", None))),
    },
}


@pytest.mark.parametrize(
    ("uid", "title"), [(uid, title) for uid, wanted in GUIDE_PANELS.items() for title in wanted]
)
def test_guide_panel_type_unit_and_thresholds(uid, title):
    kind, unit, thresholds = GUIDE_PANELS[uid][title]
    panel = next(p for u, p in content.panels() if u == uid and p["title"] == title)
    defaults = panel["fieldConfig"]["defaults"]
    assert panel["type"] == kind
    assert defaults.get("unit") == unit
    assert defaults["thresholds"]["steps"] == thresholds


def test_latency_quantiles_aggregate_by_le():
    panel = next(p for u, p in content.panels() if p["title"] == "API Latency Percentiles")
    assert [t["legendFormat"] for t in panel["targets"]] == ["p50", "p90", "p95", "p99"]
    for target in panel["targets"]:
        assert "sum by (le)" in target["expr"]


def _threshold(alert: str) -> float:
    """The one number an alert compares against (``> N`` / ``< N``) in its expression."""
    found = re.findall(r"[<>]=?\s*([0-9.]+)\b", content.alert_rules()[alert]["expr"])
    assert len(found) == 1, (alert, found)
    return float(found[0])


def test_backup_age_panel_turns_red_at_the_alert_threshold():
    """The threshold lives in the rule; the panel's red step and both descriptions follow it."""
    panel = next(p for u, p in content.panels() if p["title"] == "Backup Age")
    defaults = panel["fieldConfig"]["defaults"]
    seconds = _threshold("BackupTooOld")
    assert defaults["unit"] == "s"
    assert defaults["thresholds"]["steps"] == _steps(("green", None), ("red", seconds))
    hours = f"{seconds / 3600:g}"
    assert f"above {hours} h" in panel["description"]
    description = content.alert_rules()["BackupTooOld"]["annotations"]["description"]
    assert f"(threshold {hours}h;" in description
    # per stanza and type, like the metric
    assert [t["legendFormat"] for t in panel["targets"]] == ["{{stanza}} {{type}}"]
    assert "by (stanza, type)" in panel["targets"][0]["expr"]


@pytest.mark.parametrize(("alert", "quoted"), [("BackupRepositoryDiskLow", "threshold {:.0%}")])
def test_description_quotes_the_threshold(alert, quoted):
    description = content.alert_rules()[alert]["annotations"]["description"]
    assert quoted.format(_threshold(alert)) in description
