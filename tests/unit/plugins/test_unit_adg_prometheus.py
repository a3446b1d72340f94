"""Pure evaluation helpers for Prometheus targets/rules/Alertmanagers and silence matchers."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import ModuleFailure
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_prometheus import (
    evaluate_alertmanagers,
    evaluate_rules,
    evaluate_targets,
    format_matcher,
    matcher_key,
    parse_duration,
    parse_matcher,
    parse_rfc3339,
    wait_until,
)


def target(job, instance, health="up", address=None, error=""):
    address = address or f"{instance}:9100"
    return {
        "labels": {"job": job, "instance": instance},
        "scrapePool": job,
        "health": health,
        "lastError": error,
        "scrapeUrl": f"http://{address}/metrics",
        "discoveredLabels": {"__address__": address},
        "lastScrape": "2026-01-01T00:00:00Z",
    }


def test_targets_missing_down_unknown_and_address_matching():
    active = [
        target("node", "app1"),
        target("node", "db1", "down", error="connection refused"),
        target("redis", "db1", "unknown"),
        target("backend", "10.0.0.5:8000", address="10.0.0.5:8000"),
    ]
    rows, problems, pending = evaluate_targets(
        active,
        expected_jobs=["redis", "mongodb"],
        expected_targets=[
            {"job": "node", "instance": "app1"},
            {"job": "node", "instance": "db1"},
            {"job": "node", "instance": "app2"},
            {"job": "backend", "instance": "app1", "address": "10.0.0.5:8000"},
        ],
        require_all_up=False,
    )
    status = {(r["job"], r["instance"]): r["status"] for r in rows}
    assert status == {
        ("node", "app1"): "ok",
        ("node", "db1"): "down",
        ("node", "app2"): "missing",
        ("backend", "10.0.0.5:8000"): "ok",
        ("redis", "db1"): "unknown",
        ("mongodb", None): "missing",
    }
    assert pending is True
    assert (
        "target job=node instance=db1 is down (connection refused) scrapeUrl=http://db1:9100/metrics"
        in problems
    )
    assert "target job=node instance=app2 is missing: Prometheus has no such active target" in problems
    assert "job mongodb is missing: Prometheus has no active target for it" in problems
    assert len(problems) == 4


def test_require_all_up_adds_unexpected_targets_once():
    active = [target("node", "a"), target("node", "b", "down")]
    rows, problems, _ = evaluate_targets(active, expected_jobs=["node"], require_all_up=True)
    assert len(rows) == 2 and len(problems) == 1 and all(r["expected"] for r in rows)


def test_rules_health():
    groups = [
        {
            "name": "g1",
            "file": "a.yml",
            "rules": [{"name": "A", "health": "ok"}, {"name": "B", "health": "err", "lastError": "boom"}],
        },
        {"name": "g2", "rules": [{"name": "C", "health": "unknown"}]},
    ]
    summary, problems, pending = evaluate_rules(groups, expected_groups=["g1", "g3"], min_rules=5)
    assert [g["health"] for g in summary] == ["err", "unknown"] and pending
    assert problems == [
        "rule group g1: rule B: boom",
        "rule group g3 is not loaded",
        "3 rule(s) loaded, expected at least 5",
    ]
    assert evaluate_rules([], min_rules=0) == ([], [], False)


def test_alertmanagers():
    data = {
        "activeAlertmanagers": [{"url": "http://10.0.0.9:9093/api/v2/alerts"}],
        "droppedAlertmanagers": [{"url": "http://x:1/api/v2/alerts"}],
    }
    active, dropped, problems = evaluate_alertmanagers(data, ["10.0.0.9:9093"], 1)
    assert problems == [] and dropped == ["http://x:1/api/v2/alerts"]
    assert active == ["http://10.0.0.9:9093/api/v2/alerts"]
    _, _, problems = evaluate_alertmanagers({"activeAlertmanagers": []}, ["10.0.0.9:9093"], 1)
    assert len(problems) == 2 and "none" in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('instance="app1"', {"name": "instance", "value": "app1", "isRegex": False, "isEqual": True}),
        ("severity!=info", {"name": "severity", "value": "info", "isRegex": False, "isEqual": False}),
        ('job=~"redis|pg"', {"name": "job", "value": "redis|pg", "isRegex": True, "isEqual": True}),
        ('path!~"/api/.*"', {"name": "path", "value": "/api/.*", "isRegex": True, "isEqual": False}),
        (r'msg="say \"hi\""', {"name": "msg", "value": 'say "hi"', "isRegex": False, "isEqual": True}),
    ],
)
def test_parse_matcher_strings(text, expected):
    assert parse_matcher(text) == expected
    assert parse_matcher(format_matcher(expected)) == expected


def test_matcher_dicts_keys_and_errors():
    a = [parse_matcher('a="1"'), parse_matcher({"name": "b", "value": "2", "is_regex": True})]
    b = [parse_matcher({"name": "b", "value": "2", "isRegex": True}), parse_matcher("a=1")]
    assert matcher_key(a) == matcher_key(b)
    with pytest.raises(ModuleFailure):
        parse_matcher("no operator")
    with pytest.raises(ModuleFailure):
        parse_matcher({"name": "x"})


def test_time_and_duration_parsing():
    parsed = parse_rfc3339("2026-04-01T10:00:00.123456789Z")
    assert parsed == datetime.datetime(2026, 4, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)
    assert parse_rfc3339("2026-04-01T12:00:00+02:00") == parse_rfc3339("2026-04-01T10:00:00Z")
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")
    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90 and parse_duration("500ms") == 0.5
    assert parse_duration("1x") is None and parse_duration("") is None


def test_wait_until_is_bounded():
    now = [0.0]
    calls = []

    def check():
        calls.append(now[0])
        return False, len(calls)

    done, value, elapsed = wait_until(
        check, timeout=10, interval=3, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]
    )
    assert done is False and calls == [0, 3, 6, 9, 10] and elapsed == 10 and value == 5
    done, value, _ = wait_until(lambda: (True, "x"), timeout=10, interval=1, sleep=None, clock=lambda: 0)
    assert (done, value) == (True, "x")
