"""Static consistency of the monitoring content: job names and database names against the
topology, alert labels/annotations, runbooks, dashboards, and promtool test coverage."""

from __future__ import annotations

import re
from functools import cache

import pytest
import yaml

from tests.support import content
from tests.support.paths import PROMTOOL_TESTS, REPO, RUNBOOKS
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
    # the monitoring watching itself (self-monitoring.yml); Watchdog always fires, severity none
    "Watchdog": ("none", "infrastructure"),
    "HostDown": ("critical", "infrastructure"),
    "APIProbeFailing": ("critical", "backend"),
    "GrafanaDown": ("warning", "infrastructure"),
    "PrometheusRuleEvaluationFailures": ("critical", "infrastructure"),
    "AlertmanagerNotificationsFailing": ("critical", "infrastructure"),
    "PrometheusNotConnectedToAlertmanager": ("critical", "infrastructure"),
    "PrometheusConfigReloadFailed": ("warning", "infrastructure"),
    "AlertmanagerConfigReloadFailed": ("warning", "infrastructure"),
    "PrometheusTSDBCompactionsFailing": ("warning", "infrastructure"),
    "PrometheusTSDBWALCorruptions": ("warning", "infrastructure"),
    "PrometheusScrapeSlow": ("warning", "infrastructure"),
    # SLO burn rates (slo.yml): page on a fast burn, ticket on a slow one
    "SLOErrorBudgetBurnFast": ("critical", "backend"),
    "SLOErrorBudgetBurnSlow": ("warning", "backend"),
    # the HA topology (ha.yml): Patroni + etcd, Redis Sentinel, HAProxy, the monitoring pair
    "PatroniNoLeader": ("critical", "database"),
    "PatroniLeaderChanged": ("warning", "database"),
    "PostgreSQLReplicationLagHigh": ("warning", "database"),
    "PostgreSQLReplicaMissing": ("warning", "database"),
    "EtcdMemberDown": ("warning", "database"),
    "EtcdNoLeader": ("critical", "database"),
    "RedisMasterMissing": ("critical", "cache"),
    "RedisReplicasDisconnected": ("warning", "cache"),
    "HAProxyBackendDown": ("warning", "backend"),
    "HAProxyNoBackend": ("critical", "backend"),
    "AlertmanagerClusterDegraded": ("warning", "infrastructure"),
    "PrometheusReplicaDown": ("warning", "infrastructure"),
    "PrometheusRemoteWriteBehind": ("warning", "infrastructure"),
}
# Alerts meant to fire always (their expression reads no series, e.g. vector(1)): a promtool case
# where they stay quiet would contradict their purpose.
ALWAYS_FIRING = {name for name, rule in content.alert_rules().items() if not selectors(rule["expr"])}
DASHBOARD_UIDS = {
    "system-overview": "autodealgenie-system-overview",
    "business-metrics": "autodealgenie-business-metrics",
    "database-performance": "autodealgenie-database-performance",
    "slo": "autodealgenie-slo",
    "high-availability": "autodealgenie-ha",
}
# The template variables every dashboard offers, and the matcher each panel query applies them with.
VARIABLE_MATCHERS = {"job": ("=~", "$job"), "instance": ("=~", "$instance")}
# Series a variable cannot filter, because they lack its label: metric -> {variable: why}.
VARIABLE_EXEMPT = {
    "slo:objective:ratio": {
        "job": "the objectives are the SLOs' constants (labelled by slo only), the same for every job",
        "instance": "the objectives are the SLOs' constants (labelled by slo only)",
    },
    **{
        record: {
            "instance": "the SLO recording rules aggregate per job: an SLO is the service's, not a host's"
        }
        for rules in content.rule_files().values()
        for group in rules["groups"]
        for record in (rule.get("record", "") for rule in group["rules"])
        if record.startswith("slo:") and record != "slo:objective:ratio"
    },
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
        for job in _fixed_job_matchers(selector):
            used = _job_names_in(*job, where)
            assert used <= jobs, (
                f"{where}: job(s) {sorted(used - jobs)} not in adg_scrape_jobs {sorted(jobs)}"
            )


def _fixed_job_matchers(selector):
    """(op, value) of the selector's job matchers, without the dashboards' $job filter."""
    return [(op, value) for label, op, value in selector.matchers if label == "job" and "$" not in value]


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
        if "job" in VARIABLE_EXEMPT.get(selector.name, {}):
            continue  # no job label at all
        assert _fixed_job_matchers(selector), f"{where}: {selector.name} has no job matcher"


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
    assert (name in quiet) != (name in ALWAYS_FIRING), f"no promtool case where {name} must not fire"
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


# -- template variables and descriptions --------------------------------------------------------
@pytest.mark.parametrize("stem", sorted(DASHBOARD_UIDS))
def test_dashboard_offers_job_and_instance_variables(stem):
    """Multi-value with All (= any value, so All also shows series of targets found later), read
    from the targets Prometheus scrapes; the instances follow the chosen jobs."""
    variables = {v["name"]: v for v in content.dashboards()[stem]["templating"]["list"]}
    assert set(variables) == set(VARIABLE_MATCHERS), stem
    queries = {"job": "label_values(up, job)", "instance": 'label_values(up{job=~"$job"}, instance)'}
    for name, var in variables.items():
        assert var["type"] == "query" and var["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert var["query"]["query"] == var["definition"] == queries[name], (stem, name)
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".+", (stem, name)
        assert var["current"]["value"] == ["$__all"], (stem, name)
        assert var["description"], (stem, name)


@pytest.mark.parametrize(
    ("where", "expr"),
    [pytest.param(f"{u} / {t} / {r}", e, id=f"{u} / {t} / {r}") for u, t, r, e in content.panel_queries()],
)
def test_every_panel_query_applies_job_and_instance(where, expr):
    """Each selector filters by both variables, unless its series lack the label (VARIABLE_EXEMPT)."""
    found = selectors(expr)
    assert found, f"{where}: no selector"
    for selector in found:
        for variable, matcher in VARIABLE_MATCHERS.items():
            if variable in VARIABLE_EXEMPT.get(selector.name, {}):
                assert (variable, *matcher) not in selector.matchers, f"{where}: {selector.name} lacks it"
                continue
            assert (variable, *matcher) in selector.matchers, (
                f'{where}: {selector.name} lacks {variable}{matcher[0]}"{matcher[1]}"'
            )


def test_variable_exemptions_are_used_and_explained():
    read = {s.name for _, _, _, expr in content.panel_queries() for s in selectors(expr)}
    for reasons in VARIABLE_EXEMPT.values():
        assert set(reasons) <= set(VARIABLE_MATCHERS) and all(len(why) > 20 for why in reasons.values())
    assert {"slo:objective:ratio", "slo:error_budget_remaining:ratio"} <= read & set(VARIABLE_EXEMPT)


def test_every_panel_has_a_description():
    for uid, panel in content.panels():
        assert panel.get("description", "").strip(), f"{uid} / {panel['title']} has no description"


# -- thresholds defined once: a panel that mirrors an alert is checked against the rule -----------
ALERT_LINK = re.compile(r"^Alert: ([A-Za-z0-9]+)$")
_COMPARISON = re.compile(r"(?<![=!])([<>]=?)\s*(-?[0-9][0-9.]*(?:e[+-]?[0-9]+)?)(?![0-9a-zA-Z_.])")


def _comparisons(alert: str):
    """(metrics of the clause, operator, number) for each `> N` / `< N` of the alert's expression;
    `and`/`or`/`unless` separate clauses (a guard such as `and max > 0` is its own clause)."""
    found = []
    for clause in re.split(r"\b(?:and|or|unless)\b", content.alert_rules()[alert]["expr"]):
        names = {s.name for s in selectors(re.sub(r"\bon\s*\([^)]*\)", "", clause)) if s.name}
        for op, number in _COMPARISON.findall(clause):
            found.append((names, op, float(number)))
    return found


def _mirrors():
    """(uid, panel, alert) for every panel link titled "Alert: <name>"."""
    for uid, panel in content.panels():
        for link in panel.get("links", []):
            match = ALERT_LINK.match(link.get("title", ""))
            if match:
                yield uid, panel, match.group(1)


def test_some_panels_mirror_alerts():
    assert {alert for _, _, alert in _mirrors()} >= {"HighErrorRate", "HighAPILatency", "BackupTooOld"}


@pytest.mark.parametrize(
    ("uid", "title", "alert"), [(u, p["title"], a) for u, p, a in _mirrors()], ids=lambda v: str(v)
)
def test_mirrored_threshold_equals_the_rule(uid, title, alert):
    """The panel's last threshold step is a number the rule compares the same series with: red
    from it on for `>`, green from it on for `<`; the link opens the alert in Grafana's list."""
    panel = next(p for u, p in content.panels() if u == uid and p["title"] == title)
    assert alert in content.alert_rules(), f"{uid} / {title}: no alert {alert}"
    link = next(link for link in panel["links"] if link["title"] == f"Alert: {alert}")
    assert link["url"] == f"/alerting/list?search={alert}"
    read = {s.name for t in panel["targets"] for s in selectors(t["expr"]) if s.name}
    candidates = [(op, n) for names, op, n in _comparisons(alert) if names and names <= read]
    assert candidates, (
        f"{uid} / {title}: {alert} compares none of the series the panel reads ({sorted(read)})"
    )
    last = panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]
    colour = {">": "red", ">=": "red", "<": "green", "<=": "green"}
    assert (last["value"], last["color"]) in {(n, colour[op]) for op, n in candidates}, (
        f"{uid} / {title}: last step {last} is not the threshold of {alert} {candidates}"
    )


def test_panels_naming_an_alert_with_a_threshold_link_it():
    """A panel with threshold steps whose description names a threshold alert must declare it, so
    the test above checks its steps (otherwise a typed-again number could drift)."""
    thresholds = {name for name in content.alert_rules() if _comparisons(name)}
    linked = {(u, p["title"], a) for u, p, a in _mirrors()}
    for uid, panel in content.panels():
        if len(panel["fieldConfig"]["defaults"]["thresholds"]["steps"]) < 2:
            continue
        for alert in thresholds:
            if re.search(rf"\b{alert}\b", panel.get("description", "")):
                assert (uid, panel["title"], alert) in linked, (
                    f"{uid} / {panel['title']} names {alert} without a link"
                )


# -- the SLO dashboard reads the objectives, never types them ---------------------------------------
def _recorded() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for rules in content.rule_files().values():
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    found.setdefault(rule["record"], []).append(str(rule["expr"]))
    return found


def test_slo_dashboard_reads_recorded_series_only():
    recorded = _recorded()
    uid = DASHBOARD_UIDS["slo"]
    read = {s.name for u, _, _, e in content.panel_queries() if u == uid for s in selectors(e)}
    assert "slo:objective:ratio" in read
    assert read <= set(recorded), f"not recorded by any rule: {sorted(read - set(recorded))}"


# The windows of the contract (issue 15); slo.yml writes each out (promtool tests exactly that file).
SLI_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
BURN_WINDOWS = SLI_WINDOWS[:-1]
LONG_WINDOWS = {"1d", "3d", "30d"}  # evaluated in the slower group (they read days of samples)


def _slo_rules():
    """record name -> {slo label (None without one): (group name, expr)} of slo.yml."""
    found: dict[str, dict] = {}
    for group in content.rule_files()["slo.yml"]["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                slo = rule.get("labels", {}).get("slo")
                assert slo not in found.get(rule["record"], {}), f"{rule['record']} {slo} twice"
                found.setdefault(rule["record"], {})[slo] = (group["name"], str(rule["expr"]))
    return found


def test_slo_windows_are_copies_of_one_expression():
    """Each window's SLI is the 5m expression with only the range changed, for every SLO; each
    burn rate divides its window's SLI by the budget; no window is missing or extra."""
    rules = _slo_rules()
    slos = set(rules["slo:objective:ratio"])
    sli = {r.removeprefix("slo:sli_error:ratio_rate") for r in rules if r.startswith("slo:sli_error:")}
    burn = {r.removeprefix("slo:burn_rate:ratio_rate") for r in rules if r.startswith("slo:burn_rate:")}
    assert (sli, burn) == (set(SLI_WINDOWS), set(BURN_WINDOWS))
    template = rules["slo:sli_error:ratio_rate5m"]
    assert set(template) == slos == {"availability", "latency_500ms", "latency_2s"}
    for window in SLI_WINDOWS:
        series = rules[f"slo:sli_error:ratio_rate{window}"]
        assert set(series) == slos, window
        for slo, (group, expr) in series.items():
            assert expr == template[slo][1].replace("[5m]", f"[{window}]"), (window, slo)
            assert (group == "autodealgenie_slo_long") == (window in LONG_WINDOWS), (window, group)
    budget = "/ on (slo) group_left () (1 - slo:objective:ratio)"
    for window in BURN_WINDOWS:
        (group, expr), *others = rules[f"slo:burn_rate:ratio_rate{window}"].values()
        assert not others and expr == f"slo:sli_error:ratio_rate{window} {budget}", window
        assert (group == "autodealgenie_slo_long") == (window in LONG_WINDOWS), (window, group)
    ((_, remaining),) = rules["slo:error_budget_remaining:ratio"].values()
    assert remaining == f"1 - slo:sli_error:ratio_rate30d {budget}"


def test_slo_objectives_are_not_typed_into_the_dashboard():
    objectives = {
        float(n)
        for expr in _recorded().get("slo:objective:ratio", [])
        for n in re.findall(r"\b0\.[0-9]+\b", expr)
    }
    assert objectives, "slo:objective:ratio records no objective"
    model = content.dashboards()["slo"]
    numbers = set()
    for panel in model["panels"]:
        numbers |= {s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        for target in panel["targets"]:
            numbers |= {float(n) for n in re.findall(r"(?<![\w.])[0-9]*\.?[0-9]+(?![\w.])", target["expr"])}
    percentages = {round(o * 100, 6) for o in objectives}
    assert not numbers & (objectives | percentages), sorted(numbers & (objectives | percentages))


# -- the panel data check's allowances (playbooks/verify.yml) ---------------------------------------
ADVISOR_METRICS = re.compile(r"^autodealgenie_(llm|external_api)_")


def _verify_vars() -> dict:
    plays = yaml.safe_load((REPO / "playbooks/verify.yml").read_text())
    return next(play["vars"] for play in plays if "verify_advisor_panels_default" in play.get("vars", {}))


def _panel_keys() -> set[str]:
    return {f"{uid}:{panel['title']}" for uid, panel in content.panels()}


def test_verify_group_and_advisor_panels_exist():
    variables = _verify_vars()
    named = [*variables["verify_advisor_panels_default"]]
    for panels in variables["verify_group_panels_default"].values():
        named += panels
    assert set(named) <= _panel_keys(), sorted(set(named) - _panel_keys())


def test_verify_skips_exactly_the_advisor_fed_panels():
    """The panels allowed to be empty under the built-in advisor are those reading only LLM or
    external-API series, no more (a blanket ignore would hide a broken panel) and no less."""
    fed = set()
    for uid, panel in content.panels():
        names = {s.name for t in panel["targets"] for s in selectors(t["expr"]) if s.name}
        if names and all(ADVISOR_METRICS.match(name) for name in names):
            fed.add(f"{uid}:{panel['title']}")
    assert fed, "no LLM/external API panel found"
    assert set(_verify_vars()["verify_advisor_panels_default"]) == fed


# -- deploys and maintenance windows show on every dashboard -----------------------------------------
ANNOTATION_TAGS = {"deploy": "playbooks/rolling_upgrade.yml", "maintenance": "playbooks/maintenance.yml"}


@pytest.mark.parametrize("stem", sorted(DASHBOARD_UIDS))
def test_dashboard_shows_deploy_and_maintenance_annotations(stem):
    """The organisation annotations those playbooks post (first tag) appear on every dashboard."""
    queries = [
        a
        for a in content.dashboards()[stem]["annotations"]["list"]
        if a.get("target", {}).get("type") == "tags"
    ]
    shown = {tag for query in queries if query["enable"] for tag in query["target"]["tags"]}
    assert shown == set(ANNOTATION_TAGS), stem
    for query in queries:
        assert query["datasource"] == {"type": "datasource", "uid": "grafana"}
        assert len(query["target"]["tags"]) == 1 and not query["target"]["matchAny"]
    for tag, playbook in ANNOTATION_TAGS.items():
        assert f"['{tag}']" in (REPO / playbook).read_text(), (
            f"{playbook} no longer tags its annotations {tag}"
        )


def test_fresh_stack_ignores_name_existing_panels():
    """Each "<uid>:<title>" the fresh-stack verify may skip names a real panel (a renamed panel
    would otherwise be checked strictly on a stack that has served no traffic, or be ignored forever)."""
    fresh = yaml.safe_load((REPO / "inventories/sandbox/group_vars/all/fresh_stack.yml").read_text())
    existing = {f"{uid}:{panel['title']}" for uid, panel in content.panels()}
    unknown = sorted(set(fresh["verify_panel_ignore"]) - existing)
    assert not unknown, f"fresh_stack.yml names panels no dashboard has: {unknown}"
