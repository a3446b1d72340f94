"""grafana_annotation against the Grafana API double, and the double's annotation endpoints themselves
(answering as Grafana 11's pkg/api/annotations.go and its SQL store do)."""

from __future__ import annotations

import json
import time
import urllib.parse

from tests.integration.modules.adg_stack import ADMIN_PASSWORD
from tests.integration.modules.test_int_grafana_double import call  # (status, JSON body), as admin

T0 = 1_764_633_600_000  # 2025-12-02T00:00:00Z
MINUTE = 60_000


def find(grafana, **params):
    query = urllib.parse.urlencode(
        [(k, v) for k, values in params.items() for v in (values if isinstance(values, list) else [values])]
    )
    status, body = call(grafana, "/api/annotations?" + query)
    assert status == 200, body
    return body


# -- the double answers as Grafana ------------------------------------------------------------------
def test_double_annotation_create_defaults_tags_and_errors(grafana):
    status, body = call(
        grafana, "/api/annotations", {"text": "x", "time": T0, "tags": ["a: b ", "a:b", "c:d:e", " "]}
    )
    assert status == 200 and body["message"] == "Annotation added" and isinstance(body["id"], int)
    stored = call(grafana, f"/api/annotations/{body['id']}")[1]
    # point: timeEnd = time; tags parsed as Grafana's ParseTagPairs (trimmed, deduplicated, 2nd ':' lost)
    assert (stored["time"], stored["timeEnd"], stored["tags"]) == (T0, T0, ["a:b", "c:d"])
    assert stored["dashboardId"] == 0 and stored["dashboardUID"] is None and stored["login"] == "admin"

    before = int(time.time() * 1000)
    now_id = call(grafana, "/api/annotations", {"text": "now"})[1]["id"]
    now = call(grafana, f"/api/annotations/{now_id}")[1]
    assert before <= now["time"] == now["timeEnd"] <= int(time.time() * 1000)

    swapped_id = call(grafana, "/api/annotations", {"text": "r", "time": T0 + MINUTE, "timeEnd": T0})[1]["id"]
    swapped = call(grafana, f"/api/annotations/{swapped_id}")[1]
    assert (swapped["time"], swapped["timeEnd"]) == (T0, T0 + MINUTE)  # swapped, not refused

    assert call(grafana, "/api/annotations", {"time": T0}) == (400, {"message": "Failed to save annotation"})
    assert call(grafana, "/api/annotations/999999") == (404, {"message": "Annotation not found"})
    assert call(grafana, "/api/annotations/999999", {"text": "y"}, "PATCH")[0] == 404
    assert call(grafana, "/api/annotations/999999", method="DELETE")[0] == 404
    assert call(grafana, "/api/annotations/abc")[0] == 400
    assert call(grafana, "/api/annotations", headers={})[0] == 401
    # an unknown dashboardUID: Grafana stores an organisation annotation on POST, refuses it on GET
    org_id = call(grafana, "/api/annotations", {"text": "d", "time": T0, "dashboardUID": "nope"})[1]["id"]
    assert call(grafana, f"/api/annotations/{org_id}")[1]["dashboardId"] == 0
    assert call(grafana, "/api/annotations?dashboardUID=nope") == (
        400,
        {"message": "Invalid dashboard UID in annotation request"},
    )
    tags = call(grafana, "/api/annotations/tags?tag=a")[1]
    assert {"tag": "a:b", "count": 1} in tags["result"]["tags"]


def test_double_annotation_filters_patch_and_delete(grafana):
    def post(text, start, end, tags):
        return call(grafana, "/api/annotations", {"text": text, "time": start, "timeEnd": end, "tags": tags})[
            1
        ]["id"]

    deploy = post("deploy", T0, T0 + 10 * MINUTE, ["deploy", "release:1.0"])
    maint = post("maint", T0 + 20 * MINUTE, T0 + 30 * MINUTE, ["maintenance"])
    both = post("both", T0 + 40 * MINUTE, T0 + 40 * MINUTE, ["deploy", "maintenance"])

    def ids(**params):
        return [a["id"] for a in find(grafana, **params)]

    assert ids(tags="deploy") == [both, deploy]  # newest end first
    assert ids(tags=["deploy", "release:1.0"]) == [deploy]  # AND
    assert ids(tags="release") == [deploy]  # a bare key matches any value of it
    assert ids(tags="release:2.0") == []
    assert ids(tags=["release:1.0", "maintenance"], matchAny="true") == [both, maint, deploy]
    # from/to is an overlap with the region, applied only when both are given
    assert ids(**{"from": T0 + 5 * MINUTE, "to": T0 + 25 * MINUTE}) == [maint, deploy]
    assert ids(**{"from": T0 + 11 * MINUTE, "to": T0 + 19 * MINUTE}) == []
    assert len(ids(**{"from": T0 + 11 * MINUTE})) == 3
    assert ids(tags="deploy", limit=1) == [both]
    assert ids(type="alert") == [] and len(ids(type="annotation")) == 3

    assert call(grafana, f"/api/annotations/{deploy}", {"timeEnd": T0 + 15 * MINUTE}, "PATCH") == (
        200,
        {"message": "Annotation patched"},
    )
    patched = call(grafana, f"/api/annotations/{deploy}")[1]
    assert (patched["time"], patched["timeEnd"], patched["text"]) == (T0, T0 + 15 * MINUTE, "deploy")
    assert patched["tags"] == ["deploy", "release:1.0"]
    # a start moved past the stored end is swapped by Grafana, not refused
    call(grafana, f"/api/annotations/{maint}", {"time": T0 + 35 * MINUTE}, "PATCH")
    moved = call(grafana, f"/api/annotations/{maint}")[1]
    assert (moved["time"], moved["timeEnd"]) == (T0 + 30 * MINUTE, T0 + 35 * MINUTE)
    call(grafana, f"/api/annotations/{maint}", {"tags": ["other"], "text": "new"}, "PATCH")
    assert ids(tags="maintenance") == [both] and ids(tags="other") == [maint]
    # PUT replaces the text even with an empty one
    assert (
        call(grafana, f"/api/annotations/{maint}", {"tags": ["other"]}, "PUT")[1]["message"]
        == "Annotation updated"
    )
    assert call(grafana, f"/api/annotations/{maint}")[1]["text"] == ""
    assert call(grafana, f"/api/annotations/{both}", method="DELETE") == (
        200,
        {"message": "Annotation deleted"},
    )
    assert ids(tags="deploy") == [deploy]


def test_double_dashboard_annotations(grafana):
    model = {"uid": "dash-a", "title": "A", "panels": []}
    assert call(grafana, "/api/dashboards/db", {"dashboard": model, "folderUid": ""})[0] == 200
    dash_id = call(grafana, "/api/dashboards/uid/dash-a")[1]["dashboard"]["id"]
    ann = call(
        grafana, "/api/annotations", {"text": "p", "time": T0, "dashboardUID": "dash-a", "panelId": 2}
    )[1]
    stored = call(grafana, f"/api/annotations/{ann['id']}")[1]
    assert (stored["dashboardId"], stored["dashboardUID"], stored["panelId"]) == (dash_id, "dash-a", 2)
    call(grafana, "/api/annotations", {"text": "org", "time": T0})
    assert [a["text"] for a in find(grafana, dashboardUID="dash-a")] == ["p"]
    # the other filters Grafana has: dashboardId, panelId, userId, alertId (no alert annotations here)
    assert [a["text"] for a in find(grafana, dashboardId=dash_id)] == ["p"]
    assert [a["text"] for a in find(grafana, panelId=2)] == ["p"] and find(grafana, panelId=3) == []
    assert len(find(grafana, userId=stored["userId"])) == 2 and find(grafana, userId=987654) == []
    assert find(grafana, alertId=1) == []
    assert call(grafana, "/api/annotations", {"text": "x", "dashboardId": 987654})[0] == 403


# -- the module -------------------------------------------------------------------------------------
def region_args(grafana_args, **extra):
    base = {"key": "deploy-1", "text": "Rolling upgrade started", "tags": ["deploy"], "time": T0}
    return {**grafana_args, **base, **extra}


def only(grafana, key="deploy-1"):
    found = find(grafana, tags=f"adg-key:{key}")
    assert len(found) == 1, found
    return found[0]


def test_create_rerun_check_mode_and_diff(run, grafana, grafana_args):
    args = region_args(grafana_args)
    check = run("grafana_annotation", args, check_mode=True, diff=True)
    assert check["changed"] and check["id"] is None and not check["found"]
    assert check["diff"]["before"] == {}
    assert check["diff"]["after"]["time"] == "2025-12-02T00:00:00.000Z"
    assert find(grafana, tags="deploy") == []  # check mode wrote nothing

    first = run("grafana_annotation", args)
    assert first["changed"] and isinstance(first["id"], int) and not first["region"]
    stored = only(grafana)
    assert stored["id"] == first["id"] and stored["text"] == "Rolling upgrade started"
    assert sorted(stored["tags"]) == ["adg-key:deploy-1", "deploy"]
    assert (stored["time"], stored["timeEnd"]) == (T0, T0)

    again = run("grafana_annotation", args, diff=True)
    assert again["changed"] is False and again["found"] and again["id"] == first["id"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert run("grafana_annotation", args, check_mode=True)["changed"] is False
    assert len(find(grafana, tags="deploy")) == 1  # never a second one


def test_region_closed_later_and_reruns_keep_it(run, grafana, grafana_args):
    """The rolling upgrade's interface: open with the start, close with the same key and an end."""
    opened = run("grafana_annotation", region_args(grafana_args))
    end = T0 + 7 * MINUTE
    close = dict(
        grafana_args, key="deploy-1", time_end=end, tags=["deploy", "release:1.4.0-ab12"], text="done"
    )
    check = run("grafana_annotation", close, check_mode=True, diff=True)
    assert check["changed"] and check["time_end"] == end
    assert check["diff"]["before"]["time_end"] == "2025-12-02T00:00:00.000Z"
    assert check["diff"]["after"]["time_end"] == "2025-12-02T00:07:00.000Z"
    assert only(grafana)["timeEnd"] == T0  # check mode left it open

    closed = run("grafana_annotation", close)
    assert closed["changed"] and closed["region"] and closed["id"] == opened["id"]
    stored = only(grafana)
    assert (stored["time"], stored["timeEnd"], stored["text"]) == (T0, end, "done")
    assert sorted(stored["tags"]) == ["adg-key:deploy-1", "deploy", "release:1.4.0-ab12"]
    assert run("grafana_annotation", close)["changed"] is False
    # the opening step run again does not move the end back (it names no end) nor post another
    reopened = run("grafana_annotation", dict(region_args(grafana_args), text="done", tags=close["tags"]))
    assert reopened["changed"] is False and only(grafana)["timeEnd"] == end

    # moving the start past the end is refused (Grafana would swap them)
    late = run("grafana_annotation", dict(grafana_args, key="deploy-1", time=end + MINUTE))
    assert late["failed"] and "before it starts" in late["msg"]
    # ISO 8601 times with an offset (Alertmanager's startsAt) and 'now'
    iso = run("grafana_annotation", dict(grafana_args, key="deploy-1", time="2025-12-02T01:00:00.5+01:00"))
    assert iso["changed"] and iso["time"] == T0 + 500 and iso["time_end"] == end
    before = int(time.time() * 1000)
    now = run("grafana_annotation", dict(grafana_args, key="deploy-1", time_end="now"))
    assert before <= only(grafana)["timeEnd"] == now["time_end"] <= int(time.time() * 1000)


def test_create_false_absent_and_keyless(run, grafana, grafana_args):
    missing = run("grafana_annotation", dict(grafana_args, key="nothing", time_end="now", create=False))
    assert missing["changed"] is False and missing["found"] is False and missing["id"] is None
    assert find(grafana, tags="adg-key:nothing") == []

    created = run("grafana_annotation", region_args(grafana_args, time_end=T0 + MINUTE))
    assert run("grafana_annotation", dict(grafana_args, key="deploy-1", state="absent"), check_mode=True)[
        "changed"
    ]
    assert len(find(grafana, tags="adg-key:deploy-1")) == 1
    gone = run("grafana_annotation", dict(grafana_args, key="deploy-1", state="absent"), diff=True)
    assert gone["changed"] and gone["deleted_ids"] == [created["id"]] and gone["diff"]["after"] == {}
    assert find(grafana, tags="adg-key:deploy-1") == []
    assert run("grafana_annotation", dict(grafana_args, key="deploy-1", state="absent"))["changed"] is False

    # without a key: identified by the exact tag set and start
    keyless = dict(grafana_args, tags=["load-test"], time="2025-12-02T00:00:00Z", text="begins")
    first = run("grafana_annotation", keyless)
    assert first["changed"] and run("grafana_annotation", keyless)["changed"] is False
    longer = run("grafana_annotation", dict(keyless, time_end=T0 + MINUTE))
    assert longer["changed"] and longer["id"] == first["id"]
    other_time = run("grafana_annotation", dict(keyless, time=T0 + 1))
    assert other_time["changed"] and other_time["id"] != first["id"]  # another event
    assert len(find(grafana, tags="load-test")) == 2
    refused = run("grafana_annotation", dict(grafana_args, tags=["x"], time="now", text="t"))
    assert refused["failed"] and "without key" in refused["msg"]


def test_dashboard_annotation_and_bad_input(run, grafana, grafana_args):
    missing = run("grafana_annotation", dict(region_args(grafana_args), dashboard_uid="nope"))
    assert missing["failed"] and "does not exist" in missing["msg"]
    assert find(grafana, tags="deploy") == []
    call(grafana, "/api/dashboards/db", {"dashboard": {"uid": "dash-a", "title": "A", "panels": []}})
    on_panel = run("grafana_annotation", dict(region_args(grafana_args), dashboard_uid="dash-a", panel_id=3))
    stored = only(grafana)
    assert on_panel["changed"] and (stored["dashboardUID"], stored["panelId"]) == ("dash-a", 3)
    moved = run("grafana_annotation", dict(region_args(grafana_args)))
    assert moved["failed"] and "cannot move" in moved["msg"]

    for bad, needle in (
        ({"key": "a:b"}, "without ':'"),
        ({"tags": ["a:b:c"]}, "more than one ':'"),
        ({"tags": ["adg-key:other"]}, "set key instead"),
        ({"time": 1764633600}, "looks like seconds"),
        ({"time": "yesterday"}, "is not a time"),
        ({"time_end": T0 - 1}, "before time"),
        ({"text": " "}, "must not be empty"),
    ):
        result = run("grafana_annotation", {**region_args(grafana_args, key="k2"), **bad})
        assert result["failed"] and needle in result["msg"], (bad, result)
    assert find(grafana, tags="adg-key:k2") == []
    no_text = run("grafana_annotation", dict(grafana_args, key="k3"))
    assert no_text["failed"] and "text is required" in no_text["msg"]


def test_warn_only_reports_without_failing_and_masks_secrets(run, run_ansible, grafana, grafana_args):
    wrong = dict(region_args(grafana_args), url_password="Wr0ng-secret-pw", warn_only=True)
    result = run("grafana_annotation", wrong)
    assert not result.get("failed") and result["changed"] is False
    assert "401" in result["warning"] and "Wr0ng-secret-pw" not in json.dumps(result)
    strict = run("grafana_annotation", dict(wrong, warn_only=False))
    assert strict["failed"] and "Wr0ng-secret-pw" not in json.dumps(strict)

    # through ansible: FQCN resolution, AnsiballZ, /usr/bin/python3; a closed port warns too
    down = dict(region_args(grafana_args), url="http://127.0.0.1:9", retries=0, warn_only=True)
    via_ansible = run_ansible("autodealgenie.ops.grafana_annotation", down)
    assert not via_ansible.get("failed") and "not written" in via_ansible["warning"]
    assert "Grafana annotation not written" in json.dumps(via_ansible["warnings"])  # shown as a task warning
    ok = run_ansible("autodealgenie.ops.grafana_annotation", region_args(grafana_args))
    assert ok["changed"] and only(grafana)["id"] == ok["id"]
    assert ADMIN_PASSWORD not in json.dumps(ok)
