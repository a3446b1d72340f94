"""prometheus_verify and grafana_panel_data against a real Prometheus (Debian binary) on loopback."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.modules.adg_stack import ADMIN_PASSWORD
from tests.support.monitoring import GrafanaDouble, Prometheus


@pytest.fixture(scope="module")
def prom(stack):
    """The session stack's Prometheus, once every target has been scraped at least once."""
    prometheus = stack["prometheus"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        targets = prometheus.api("/api/v1/targets")["activeTargets"]
        if targets and all(t["health"] != "unknown" for t in targets):
            break
        time.sleep(0.3)
    return prometheus


def wait_for_series(prom, query, count, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(prom.api("/api/v1/query", query=query)["result"]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{query} never returned {count} series")


def verify_args(prom, **extra):
    args = {"url": prom.url, "wait_timeout": 5, "poll_interval": 0.5, "require_all_up": False}
    args.update(extra)
    return args


def test_expected_targets_rules_and_alertmanager_ok_in_check_mode(run_ansible, prom, stack):
    args = verify_args(
        prom,
        expected_jobs=["prometheus", "alertmanager"],
        expected_targets=[
            {"job": "grafana", "instance": "mon1"},
            {"job": "prometheus", "address": prom.address},
        ],
        expected_rule_groups=["adg-test-availability"],
        min_rules=2,
        expected_alertmanagers=[stack["alertmanager"].address],
        min_alertmanagers=1,
    )
    result = run_ansible("autodealgenie.ops.prometheus_verify", args, check_mode=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["ok"] and result["changed"] is False and result["problems"] == []
    assert {(t["job"], t["status"]) for t in result["targets"]} == {
        ("prometheus", "ok"),
        ("alertmanager", "ok"),
        ("grafana", "ok"),
    }
    assert result["rules_total"] == 2 and result["rule_groups"][0]["health"] == "ok"
    assert result["alertmanagers"] == [f"http://{stack['alertmanager'].address}/api/v2/alerts"]
    assert set(result["checks"]) == {"targets", "rules", "alertmanagers"}


def test_missing_target_is_caught_not_only_down_ones(run, prom):
    result = run(
        "prometheus_verify",
        verify_args(
            prom,
            expected_targets=[
                {"job": "grafana", "instance": "mon1"},
                {"job": "node", "instance": "app1", "address": "10.9.9.9:9100"},
                {"job": "grafana", "instance": "mon2"},
            ],
            check_rules=False,
            check_alertmanagers=False,
            wait_timeout=1,
        ),
    )
    assert result["failed"] and result["ok"] is False
    assert "target job=node instance=app1 is missing" in result["msg"]
    assert "target job=grafana instance=mon2 is missing" in result["msg"]
    missing = [t for t in result["targets"] if t["status"] == "missing"]
    assert {(t["job"], t["instance"]) for t in missing} == {("node", "app1"), ("grafana", "mon2")}


def test_down_target_reports_health_last_error_and_scrape_url(run, prom, stack):
    result = run(
        "prometheus_verify",
        verify_args(
            prom, expected_jobs=["redis"], check_rules=False, check_alertmanagers=False, wait_timeout=1
        ),
    )
    assert result["failed"]
    row = next(t for t in result["targets"] if t["job"] == "redis")
    assert row["health"] == "down" and row["status"] == "down"
    assert "connection refused" in row["last_error"]
    assert row["scrape_url"] == f"http://{stack['dead']}/metrics"
    assert f"scrapeUrl=http://{stack['dead']}/metrics" in result["msg"]


def test_require_all_up_reports_unexpected_down_targets(run, prom):
    result = run(
        "prometheus_verify",
        verify_args(prom, require_all_up=True, check_rules=False, check_alertmanagers=False, wait_timeout=0),
    )
    assert result["failed"] and "job=redis instance=db1 is down" in result["msg"]
    assert all(t["expected"] is False for t in result["targets"])


def test_missing_rule_group_and_alertmanager(run, prom):
    result = run(
        "prometheus_verify",
        verify_args(
            prom,
            check_targets=False,
            expected_rule_groups=["nope"],
            expected_alertmanagers=["10.9.9.9:9093"],
            wait_timeout=0,
        ),
    )
    assert result["failed"]
    assert "rule group nope is not loaded" in result["msg"]
    assert "Alertmanager 10.9.9.9:9093 is not among" in result["msg"]
    assert result["checks"]["rules"]["ok"] is False and result["checks"]["alertmanagers"]["ok"] is False


def test_rule_evaluation_error_is_reported(run, tmp_path):
    bad_rules = {
        "groups": [
            {
                "name": "adg-broken",
                "rules": [
                    # two `up` series on each side of a one-to-one match on nothing: an evaluation error
                    {"record": "adg:broken", "expr": "up * on() up"}
                ],
            }
        ]
    }
    prom = Prometheus(tmp_path / "prom")
    scrape = [
        {"job_name": name, "static_configs": [{"targets": [prom.address]}]} for name in ("self1", "self2")
    ]
    prom.write_config(scrape, {"bad.yml": bad_rules})
    with prom:
        wait_for_series(prom, "up", 2)
        time.sleep(1.5)  # one more rule evaluation (every 1s) now that both series exist
        result = run(
            "prometheus_verify",
            {
                "url": prom.url,
                "check_targets": False,
                "check_alertmanagers": False,
                "wait_timeout": 3,
                "poll_interval": 0.5,
            },
        )
    assert result["failed"]
    group = result["rule_groups"][0]
    assert group["name"] == "adg-broken" and group["health"] == "err"
    assert "rule group adg-broken: rule adg:broken:" in result["msg"]


def test_waits_for_a_target_that_comes_up_late(run, tmp_path):
    late = GrafanaDouble(tmp_path / "late", admin_password=ADMIN_PASSWORD)
    prom = Prometheus(tmp_path / "prom")
    prom.write_config(
        [
            {
                "job_name": "grafana",
                "static_configs": [{"targets": [late.address], "labels": {"instance": "mon1"}}],
            }
        ]
    )
    with prom:
        timer = threading.Timer(3.0, late.start)
        timer.start()
        try:
            started = time.monotonic()
            result = run(
                "prometheus_verify",
                {
                    "url": prom.url,
                    "expected_targets": [{"job": "grafana", "instance": "mon1"}],
                    "check_rules": False,
                    "check_alertmanagers": False,
                    "wait_timeout": 30,
                    "poll_interval": 0.5,
                },
            )
            waited = time.monotonic() - started
        finally:
            timer.join()
            late.stop()
    assert result.get("failed") is not True, result.get("msg")
    assert result["ok"] and 2.5 < waited < 30 and result["elapsed"] >= 2.5


def test_unreachable_prometheus_fails_readably_after_the_wait(run):
    from tests.support.monitoring import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = run("prometheus_verify", {"url": url, "wait_timeout": 1, "poll_interval": 0.5, "retries": 0})
    assert result["failed"] and "Prometheus API unavailable" in result["msg"] and url in result["msg"]


# -- grafana_panel_data ---------------------------------------------------------------------------
PROM_DS = {"type": "prometheus", "uid": "prometheus"}


def panel_dashboard():
    return {
        "uid": "adg-panels",
        "title": "Panels",
        "templating": {
            "list": [
                {
                    "name": "job",
                    "type": "query",
                    "query": "label_values(up, job)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": ["$__all"]},
                },
                {"name": "scrape_job", "type": "custom", "query": "prometheus,grafana", "current": {}},
            ]
        },
        "panels": [
            {
                "id": 1,
                "title": "Up",
                "type": "stat",
                "datasource": PROM_DS,
                "targets": [{"refId": "A", "expr": 'up{job=~"$job"}'}],
            },
            {
                "id": 2,
                "title": "Request rate",
                "type": "timeseries",
                "datasource": PROM_DS,
                "targets": [
                    {
                        "refId": "A",
                        "expr": 'sum(rate(scrape_samples_scraped{job="${scrape_job}"}[$__rate_interval]))',
                    },
                    {"refId": "B", "expr": "this_metric_does_not_exist", "hide": True},
                ],
            },
            {
                "id": 3,
                "title": "Nothing here",
                "type": "timeseries",
                "datasource": PROM_DS,
                "targets": [{"refId": "A", "expr": 'adg_no_such_metric_total{job="$job"}'}],
            },
            {"id": 4, "title": "Notes", "type": "text"},
            {
                "id": 5,
                "title": "Loki logs",
                "type": "logs",
                "datasource": {"type": "loki", "uid": "loki"},
                "targets": [{"refId": "A", "expr": '{job="x"}'}],
            },
            {
                "id": 6,
                "title": "Row",
                "type": "row",
                "collapsed": True,
                "panels": [
                    {
                        "id": 7,
                        "title": "Grafana dashboards (instant)",
                        "type": "stat",
                        "datasource": PROM_DS,
                        "targets": [{"refId": "A", "expr": "grafana_stat_totals_dashboard", "instant": True}],
                    }
                ],
            },
            {
                "id": 8,
                "title": "NaN only",
                "type": "gauge",
                "datasource": PROM_DS,
                "targets": [{"refId": "A", "expr": 'up{job="redis"} / up{job="redis"}'}],
            },
        ],
    }


def test_panel_data_reports_empty_panels_only(run, prom):
    args = {"url": prom.url, "dashboards": [panel_dashboard()], "scrape_interval": "1s", "lookback": "5m"}
    result = run("grafana_panel_data", args)
    assert result["failed"]
    by_id = {p["panel_id"]: p for p in result["panels"]}
    assert set(by_id) == {1, 2, 3, 7, 8}, "text, loki and row panels are not Prometheus queries"
    assert by_id[1]["status"] == "ok" and by_id[2]["status"] == "ok" and by_id[7]["status"] == "ok"
    assert by_id[3]["status"] == "no_data" and by_id[8]["status"] == "no_data"
    assert result["no_data"] == ["adg-panels / Nothing here", "adg-panels / NaN only"]
    rate = by_id[2]["targets"]
    assert len(rate) == 1 and rate[0]["query"] == 'sum(rate(scrape_samples_scraped{job="prometheus"}[4s]))'
    up_query = by_id[1]["targets"][0]["query"]
    assert up_query.startswith('up{job=~"(') and "grafana" in up_query and "prometheus" in up_query
    assert by_id[7]["targets"][0]["instant"] is True
    assert "2 of 5 panel(s) show no data" in result["msg"]


def test_panel_data_ignores_and_overrides(run, prom):
    args = {
        "url": prom.url,
        "dashboards": [panel_dashboard()],
        "scrape_interval": "1s",
        "ignore_panels": ["adg-panels:3", "NaN only"],
        "variables": {"scrape_job": "grafana"},
    }
    result = run("grafana_panel_data", args, check_mode=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["ok"] and result["summary"] == {"ok": 3, "no_data": 0, "error": 0, "ignored": 2}
    rate = next(p for p in result["panels"] if p["panel_id"] == 2)
    # default lookback 15m -> step 7.5s -> $__rate_interval = step + scrape interval
    assert rate["targets"][0]["query"] == 'sum(rate(scrape_samples_scraped{job="grafana"}[8s]))'


def test_panel_data_query_error_is_reported(run, prom):
    dashboard = {
        "uid": "bad",
        "title": "Bad",
        "panels": [
            {"id": 1, "title": "Broken", "datasource": PROM_DS, "targets": [{"refId": "A", "expr": "sum(up"}]}
        ],
    }
    result = run("grafana_panel_data", {"url": prom.url, "dashboards": [dashboard]})
    assert result["failed"] and result["panels"][0]["status"] == "error"
    assert "bad_data" in result["panels"][0]["targets"][0]["error"]
