"""Dashboard model helpers: normalisation, loading, variables, interpolation, query extraction."""

from __future__ import annotations

import json

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    GrafanaError,
    builtin_variables,
    check_uid,
    interpolate,
    iter_panels,
    load_dashboard,
    normalise_dashboard,
    panel_targets,
    resolve_template_variables,
)


def test_normalise_ignores_server_set_fields_and_nulls_only_at_top_level():
    stored = {
        "id": 7,
        "uid": "u",
        "title": "T",
        "version": 4,
        "iteration": 123,
        "gnetId": None,
        "panels": [{"id": 1, "datasource": None}],
    }
    desired = {"uid": "u", "title": "T", "panels": [{"id": 1, "datasource": None}]}
    assert normalise_dashboard(stored) == normalise_dashboard(desired)
    assert normalise_dashboard(dict(desired, refresh="10s")) != normalise_dashboard(desired)
    assert normalise_dashboard(dict(desired, time={"from": "now-6h"}), ignored_keys=["time"]) == desired
    assert "version" in stored, "the input is not mutated"


def test_load_dashboard_variants(tmp_path):
    model = {"uid": "u", "title": "T", "panels": []}
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"dashboard": model, "meta": {}}))
    assert load_dashboard(path=str(path)) == model
    assert load_dashboard(json.dumps(model)) == model
    with pytest.raises(GrafanaError, match="not valid JSON"):
        load_dashboard("{")
    with pytest.raises(GrafanaError, match="cannot read"):
        load_dashboard(path=str(tmp_path / "missing.json"))
    with pytest.raises(GrafanaError, match="JSON object"):
        load_dashboard([1, 2])


@pytest.mark.parametrize("uid", ["", "has space", "x" * 41, None])
def test_bad_uids(uid):
    with pytest.raises(GrafanaError):
        check_uid(uid, "dashboard")


def test_builtin_variables_follow_grafana_rate_interval_rule():
    values = builtin_variables(range_seconds=3600, step_seconds=30, scrape_interval_seconds=15)
    assert values["__rate_interval"] == "1m"  # max(30 + 15, 4 * 15)
    assert values["__interval"] == "30s" and values["__interval_ms"] == "30000"
    assert values["__range"] == "1h" and values["__range_s"] == "3600"
    assert builtin_variables(3600, 120, 15)["__rate_interval"] == "135s"


def test_interpolate_formats():
    variables = {
        "job": {"values": ["api", "db.1"], "all_value": None},
        "one": {"values": ["x"], "all_value": None},
        "all": {"values": ["a"], "all_value": ".+"},
        "__rate_interval": "1m",
    }
    assert (
        interpolate('rate(x{job=~"$job"}[$__rate_interval])', variables) == r'rate(x{job=~"(api|db\.1)"}[1m])'
    )
    assert (
        interpolate("${job:pipe} ${job:csv} [[one]] $one ${one:regex}", variables)
        == "api|db.1 api,db.1 x x x"
    )
    assert interpolate('{job=~"$all"} $unknown', variables) == '{job=~".+"} $unknown'


def test_resolve_variables_precedence_and_label_values():
    calls = []

    def label_values(label, match):
        calls.append((label, match))
        return {"job": ["api", "db", "node"], "instance": ["app1", "app2"]}[label]

    model = {
        "templating": {
            "list": [
                {
                    "name": "job",
                    "type": "query",
                    "query": {"query": "label_values(up, job)"},
                    "regex": "/^(api|db)$/",
                    "includeAll": True,
                    "current": {"value": "$__all"},
                },
                {
                    "name": "instance",
                    "type": "query",
                    "query": 'label_values(up{job=~"$job"}, instance)',
                    "current": {"value": "app2"},
                },
                {"name": "env", "type": "custom", "query": "prod,staging"},
                {"name": "window", "type": "interval", "query": "5m,10m", "current": {"value": "10m"}},
                {"name": "ds", "type": "datasource", "current": {"value": "prometheus"}},
                {"name": "pinned", "type": "constant", "query": "autodealgenie"},
                {"name": "weird", "type": "query", "query": "query_result(up)"},
            ]
        }
    }
    variables, notes = resolve_template_variables(
        model, {"env": "staging"}, label_values, {"__interval": "15s"}
    )
    assert variables["job"] == {"values": ["api", "db"], "all_value": None}
    assert variables["instance"] == {"values": ["app2"], "all_value": None}, "saved current value wins"
    assert variables["env"] == {"values": ["staging"], "all_value": None}, "override wins"
    assert (variables["window"], variables["ds"], variables["pinned"]) == (
        "10m",
        "prometheus",
        "autodealgenie",
    )
    assert ("instance", 'up{job=~"(api|db)"}') in calls, "chained variables are interpolated first"
    assert notes == [
        "weird: only label_values() queries are resolved (query_result(up))",
        "weird: no values found",
    ]


def test_panel_targets_and_nested_panels():
    model = {
        "panels": [
            {
                "id": 1,
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "targets": [{"refId": "A", "expr": "up"}, {"refId": "B", "expr": "x", "hide": True}],
            },
            {"id": 2, "datasource": "Prometheus", "targets": [{"refId": "A", "expr": "y", "instant": True}]},
            {
                "id": 3,
                "datasource": {"type": "loki", "uid": "l"},
                "targets": [{"refId": "A", "expr": '{a="b"}'}],
            },
            {
                "id": 4,
                "datasource": {"uid": "-- Mixed --"},
                "targets": [
                    {"refId": "A", "expr": "z", "datasource": {"type": "prometheus", "uid": "p"}},
                    {"refId": "B", "expr": "w", "datasource": {"type": "loki", "uid": "l"}},
                ],
            },
            {"id": 5, "type": "row", "panels": [{"id": 6, "targets": [{"refId": "A", "expr": "nested"}]}]},
        ]
    }
    found = {p["id"]: list(panel_targets(p)) for p in iter_panels(model)}
    assert found[1] == [("A", "up", False)]
    assert found[2] == [("A", "y", True)]
    assert found[3] == [] and found[5] == []
    assert found[4] == [("A", "z", False)]
    assert found[6] == [("A", "nested", False)], "a panel without a datasource uses the default (Prometheus)"
