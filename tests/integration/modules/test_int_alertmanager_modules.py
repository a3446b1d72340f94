"""alertmanager_silence and alertmanager_delivery_check against a real Alertmanager (Debian binary)."""

from __future__ import annotations

import datetime
import json
import urllib.parse

import pytest

from tests.support.monitoring import http_json


@pytest.fixture
def am(stack):
    return stack["alertmanager"]


def live_silences(am, **labels):
    found = []
    for silence in http_json(am.url + "/api/v2/silences"):
        names = {m["name"]: m["value"] for m in silence["matchers"]}
        if silence["status"]["state"] != "expired" and all(names.get(k) == v for k, v in labels.items()):
            found.append(silence)
    return found


def test_silence_create_is_idempotent_then_updates_and_expires(run, run_ansible, am):
    args = {
        "url": am.url,
        "matchers": ['instance="app1"', 'job=~"autodealgenie-.*"'],
        "duration": "30m",
        "comment": "rolling upgrade of app1",
        "created_by": "pytest",
    }
    preview = run_ansible("autodealgenie.ops.alertmanager_silence", args, check_mode=True)
    assert preview["changed"] and preview["silence_id"] is None and live_silences(am, instance="app1") == []

    created = run_ansible("autodealgenie.ops.alertmanager_silence", args)
    assert created["changed"] and created["silence_id"]
    [stored] = live_silences(am, instance="app1")
    assert stored["id"] == created["silence_id"] and stored["comment"] == "rolling upgrade of app1"
    start = datetime.datetime.fromisoformat(stored["startsAt"].replace("Z", "+00:00"))
    end = datetime.datetime.fromisoformat(stored["endsAt"].replace("Z", "+00:00"))
    assert abs((end - start).total_seconds() - 1800) < 2

    # Same matchers in another order and as dicts: same silence, nothing to do (window anchored at start).
    same = dict(
        args,
        matchers=[
            {"name": "job", "value": "autodealgenie-.*", "is_regex": True},
            {"name": "instance", "value": "app1"},
        ],
    )
    again = run("alertmanager_silence", same)
    assert again["changed"] is False and again["silence_id"] == created["silence_id"]

    longer = run("alertmanager_silence", dict(args, duration="2h", comment="upgrade takes longer"), diff=True)
    assert longer["changed"] and longer["diff"]["before"]["comment"] == "rolling upgrade of app1"
    [updated] = live_silences(am, instance="app1")
    assert updated["id"] == longer["silence_id"] and updated["comment"] == "upgrade takes longer"
    assert longer["silence_id"] == created["silence_id"] and "previous_id" not in longer, "updated in place"
    assert (
        run("alertmanager_silence", dict(args, duration="2h", comment="upgrade takes longer"))["changed"]
        is False
    )

    expired = run("alertmanager_silence", {"url": am.url, "matchers": args["matchers"], "state": "absent"})
    assert expired["changed"] and expired["expired_ids"] == [updated["id"]]
    assert live_silences(am, instance="app1") == []
    assert (
        run("alertmanager_silence", {"url": am.url, "matchers": args["matchers"], "state": "absent"})[
            "changed"
        ]
        is False
    )


def test_silence_with_fixed_end_and_bad_input(run, am):
    end = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = {"url": am.url, "matchers": ['component="database"'], "ends_at": end, "comment": "db maintenance"}
    first = run("alertmanager_silence", args)
    assert first["changed"] and run("alertmanager_silence", args)["changed"] is False
    assert live_silences(am, component="database")[0]["endsAt"].startswith(end[:19])
    run("alertmanager_silence", {"url": am.url, "matchers": ['component="database"'], "state": "absent"})

    for bad, message in (
        (dict(args, matchers=["instance app1"]), "cannot parse matcher"),
        (dict(args, ends_at="tomorrow"), "ends_at"),
        (dict(args, ends_at="2001-01-01T00:00:00Z"), "not after"),
        (dict(args, comment=None), "requires comment"),
        (dict(args, matchers=['alertname=~".*"']), "match every alert"),
    ):
        result = run("alertmanager_silence", bad)
        assert result["failed"] and message in result["msg"], (bad, result["msg"])
    assert live_silences(am, component="database") == []


def test_delivery_confirmed_by_webhook_sink_then_resolved(run_ansible, am, stack):
    sink = stack["sink"]
    args = {
        "url": am.url,
        "receiver": "critical-alerts",
        "labels": {"severity": "critical", "component": "backend"},
        "sink_url": sink.url + "/notifications",
        "wait_timeout": 30,
        "poll_interval": 0.5,
    }
    result = run_ansible("autodealgenie.ops.alertmanager_delivery_check", args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["confirmed_by"] == "webhook" and result["delivered"] and result["routed"]
    assert result["receivers"] == ["critical-alerts"] and result["resolved"]
    check_id = result["check_id"]
    [payload, *_] = sink.received("critical-alerts", adg_delivery_check=check_id)
    assert payload["alerts"][0]["labels"]["alertname"] == "AdgDeliveryCheck"
    # resolved: Alertmanager no longer lists it as active, and the resolved notification follows
    assert sink.wait_for("critical-alerts", timeout=15, adg_delivery_check=check_id) and _eventually_resolved(
        sink, check_id
    )


def _eventually_resolved(sink, check_id, timeout=15):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for payload in sink.received("critical-alerts", adg_delivery_check=check_id):
            if payload.get("status") == "resolved":
                return True
        time.sleep(0.3)
    return False


def test_delivery_via_alertmanager_view_and_misrouting(run, am):
    info_alert = {"url": am.url, "labels": {"severity": "info"}, "poll_interval": 0.5}
    ok = run("alertmanager_delivery_check", dict(info_alert, receiver="default", wait_timeout=15))
    assert ok.get("failed") is not True, ok.get("msg")
    assert ok["confirmed_by"] == "alertmanager" and ok["delivered"] is None

    wrong = run("alertmanager_delivery_check", dict(info_alert, receiver="critical-alerts", wait_timeout=2))
    assert wrong["failed"] and "did not reach receiver critical-alerts" in wrong["msg"]
    assert "routed it to: default" in wrong["msg"] and wrong["resolved"] is True
    active = http_json(
        am.url
        + "/api/v2/alerts?"
        + urllib.parse.urlencode({"filter": f'adg_delivery_check="{wrong["check_id"]}"', "active": "true"})
    )
    assert active == [] or all(a["status"]["state"] != "active" for a in active)


def test_delivery_unknown_receiver_fails_before_sending_and_check_mode_sends_nothing(run, am):
    unknown = run("alertmanager_delivery_check", {"url": am.url, "receiver": "pagerduty"})
    assert unknown["failed"] and "receiver pagerduty is not configured" in unknown["msg"]
    assert "critical-alerts" in unknown["msg"]
    preview = run("alertmanager_delivery_check", {"url": am.url, "receiver": "default"}, check_mode=True)
    assert preview["changed"] is False and preview["check_id"] not in json.dumps(
        http_json(am.url + "/api/v2/alerts")
    )


def test_silence_managed_by_id(run, am):
    created = run(
        "alertmanager_silence", {"url": am.url, "matchers": ['job="redis"'], "duration": "1h", "comment": "a"}
    )
    by_id = {"url": am.url, "id": created["silence_id"], "duration": "1h", "comment": "b"}
    updated = run("alertmanager_silence", by_id)
    assert updated["changed"] and updated["matchers"] == ['job="redis"']
    assert live_silences(am, job="redis")[0]["comment"] == "b"
    assert run("alertmanager_silence", by_id)["changed"] is False
    gone = run("alertmanager_silence", {"url": am.url, "id": created["silence_id"], "state": "absent"})
    assert gone["changed"] and live_silences(am, job="redis") == []
    missing = run("alertmanager_silence", dict(by_id, id="00000000-0000-0000-0000-000000000000"))
    assert missing["failed"] and "does not exist" in missing["msg"]
